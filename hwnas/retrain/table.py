"""retrain.csv's rows and the printed comparison: one row per model (:func:`rows`), the
winners-vs-baselines summary (:func:`summarize`: dominance within the seeds' noise, speedup at
matched accuracy) and its text (:func:`format_table`, :func:`format_summary`). Pure functions of
the rows; :mod:`hwnas.retrain.run` re-exports them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from ..runs import finite, measured_ms, retrain_labels

__all__ = ["format_summary", "format_table", "mean_std", "rows", "summarize"]

# ---- rows and summary ---------------------------------------------------------------------------------

def mean_std(v: Sequence[float]) -> tuple[float, float]:
    return float(statistics.fmean(v)), (float(statistics.stdev(v)) if len(v) > 1 else 0.0)


def rows(models, results, stats, predicted, predicted_by, statistic, seeds, epochs) -> list[dict]:
    """One retrain.csv row per model; ``weights`` says where its weights came from and
    ``train_s`` what they cost (mean wall seconds of one seed's training or deployment)."""
    from ..model import arch_costs

    out = []
    for m, pred in zip(models, predicted, strict=True):
        s = m.arch.to_string()
        st = stats[s]
        mean, std = mean_std([r["test_acc"] for r in results[m.name]])
        c = arch_costs(m.arch)
        meas = st.value(statistic)
        out.append({
            "name": m.name, "kind": m.kind, "arch": s, "params": c.params, "macs": c.macs,
            "peak_act_bytes": c.peak_act_bytes,
            "predicted_ms": None if pred is None else round(pred, 6),
            "measured_median_ms": round(st.median_ms, 6), "measured_iqr_ms": round(st.iqr_ms, 6),
            "measured_n": st.n,
            "error_pct": (None if pred is None or meas <= 0
                          else round(100.0 * (pred - meas) / meas, 3)),
            "acc_mean": round(mean, 6), "acc_std": round(std, 6),
            "seeds": ";".join(map(str, seeds)), "onnx": m.onnx_rel,
            "epochs": int(results[m.name][0].get("epochs", epochs)),
            "statistic": statistic, "measured_stat_ms": round(meas, 6), "predicted_by": predicted_by,
            "search_score": m.search.get("search_score"),
            "search_metric": m.search.get("search_metric"), "search_latency_ms": m.search.get("latency_ms"),
            "weights": m.weights, "train_s": mean_std([float(r.get("seconds") or 0.0)
                                                        for r in results[m.name]])[0],
        })
    return out


def _tol(w: dict, b: dict) -> float:
    """Accuracy noise between two rows: the seeds' standard deviations combined."""
    return math.hypot(float(w.get("acc_std") or 0.0), float(b.get("acc_std") or 0.0))


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
    """Winners against baselines, on measured latency (the table's statistic,
    ``measured_stat_ms``: the one the predictor predicts and errors use; the median in old
    rows) and mean test accuracy.

    * ``dominance``: every (winner W, baseline B) with W faster than B (lower measured
      latency) and W's accuracy >= B's minus the noise ``sqrt(std_W^2 + std_B^2)`` over seeds
      (0 with one seed); ``strict`` when W's mean accuracy is >= B's.
    * ``speedups``: per baseline, the fastest winner with accuracy >= B's (``strict``) and
      the fastest within noise (``noise``): speedup = B's ms / W's ms (> 1: W is faster).
    """
    ws = [r for r in rows if r["kind"] == "winner"]
    bs = [r for r in rows if r["kind"] == "baseline"]

    def ms(r: dict) -> float:
        return float(measured_ms(r) or math.nan)

    def acc(r: dict) -> float:
        return float(r["acc_mean"])

    dom = []
    for w in ws:
        for b in bs:
            if ms(w) < ms(b) and acc(w) >= acc(b) - _tol(w, b):
                dom.append({"winner": w["name"], "baseline": b["name"], "speedup": ms(b) / ms(w),
                            "acc_diff": acc(w) - acc(b), "strict": acc(w) >= acc(b)})
    speed = []
    for b in bs:
        entry: dict[str, Any] = {"baseline": b["name"], "baseline_ms": ms(b),
                                 "baseline_acc": acc(b), "baseline_acc_std": float(b["acc_std"])}
        for key, ok in (("strict", lambda w, b=b: acc(w) >= acc(b)),
                        ("noise", lambda w, b=b: acc(w) >= acc(b) - _tol(w, b))):
            cand = [w for w in ws if ok(w)]
            if cand:
                w = min(cand, key=ms)
                entry[key] = {"winner": w["name"], "winner_ms": ms(w), "winner_acc": acc(w),
                              "speedup": ms(b) / ms(w)}
            else:
                entry[key] = None
        speed.append(entry)
    strict = [e["strict"]["speedup"] for e in speed if e["strict"]]
    return {"statistic": _statistic(rows), "dominance": dom, "speedups": speed,
            "best_strict_speedup": max(strict) if strict else None}


def _statistic(rows: Sequence[dict]) -> str:
    """The statistic the rows' measured latency is (the device table's; "median" in old rows)."""
    have = [r for r in rows if finite(r.get("measured_stat_ms")) is not None]
    return str(have[0].get("statistic") or "min") if have else "median"


def _f(v: Any, fmt: str, empty: str = "-") -> str:
    return empty if v is None or v == "" else format(float(v), fmt)


def _acc(r: dict) -> str:
    """mean +- std over the seeds; one seed has no spread to show."""
    if len(str(r.get("seeds", "")).split(";")) < 2:
        return f"{float(r['acc_mean']):.4f} (1 seed)"
    return f"{float(r['acc_mean']):.4f} +- {float(r['acc_std']):.4f}"


def format_table(rows: Sequence[dict], drift: float | None = None) -> str:
    """The models: params, MACs, peak memory, predicted vs measured latency, accuracy, where
    the weights came from and their cost in seconds (with ``drift``: also the drift-corrected
    prediction, predicted x drift, and its error)."""
    from ..profiling.drift import corrected_error

    lab = retrain_labels(rows)
    stat = _statistic(rows)
    out = [f"  {'model':<10} {'params':>8} {'MACs':>8} {'peak':>8} {'pred.':>8} "
           f"{'measured ' + stat:>12} {'median +- IQR':>17} {'err%':>7} {'accuracy':>16} {'weights':>11} "
           f"{'train s':>8}" + (f" {'drift-corr.':>11} {'err%':>7}" if drift else "")]
    for r in rows:
        corr = "" if not drift else (
            f" {_f(None if r['predicted_ms'] is None else r['predicted_ms'] * drift, '.3f'):>11} "
            f"{_f(corrected_error(r['predicted_ms'], r.get('measured_stat_ms'), drift), '+.1f'):>7}")
        out.append(
            f"  {lab[r['name']]:<10} {r['params'] / 1e6:>7.3f}M {r['macs'] / 1e6:>7.1f}M "
            f"{r['peak_act_bytes'] / 2**20:>6.2f}Mi {_f(r['predicted_ms'], '.3f'):>8} "
            f"{_f(measured_ms(r), '.3f'):>9} ms {float(r['measured_median_ms']):>8.3f} +- "
            f"{float(r['measured_iqr_ms']):<6.3f} "
            f"{_f(r['error_pct'], '+.1f'):>7} {_acc(r):>16} {r.get('weights') or 'stand-alone':>11} "
            f"{_f(r.get('train_s'), '.1f'):>8}" + corr)
    ws = sorted((r for r in rows if r["kind"] == "winner"), key=lambda r: lab[r["name"]])
    for r in ws:
        out.append(f"  {lab[r['name']]} = {r['arch']}")
    return "\n".join(out)


def _epochs_text(rows: Sequence[dict]) -> str:
    """The training epochs of the accuracy line: "8 epochs", or per weights' source when they
    differ ("8 epochs stand-alone, 3 fine-tune epochs from the supernet")."""
    by: dict[str, set[str]] = {}
    for r in rows:  # epochs are ints in memory, strings read back from retrain.csv
        sup = (r.get("weights") or "stand-alone") != "stand-alone"
        by.setdefault("supernet" if sup else "stand-alone", set()).add(str(r.get("epochs")))

    def n(src: str, noun: str) -> str:
        v = sorted(by[src])
        return f"{'/'.join(v)} {noun}{'' if v == ['1'] else 's'}"

    parts = [n("stand-alone", "epoch") + (" stand-alone" if len(by) > 1 else "")] \
        if "stand-alone" in by else []
    if "supernet" in by:
        parts.append(n("supernet", "fine-tune epoch") + " from the supernet")
    return ", ".join(parts) or "? epochs"


def format_summary(rows: Sequence[dict], meta: dict | None = None) -> str:
    """Table, how it was measured, the dominance grid and the speedups at matched accuracy."""
    meta = meta or {}
    s = summarize(rows)
    lab = retrain_labels(rows)
    ws = sorted((r for r in rows if r["kind"] == "winner"), key=lambda r: lab[r["name"]])
    bs = [r for r in rows if r["kind"] == "baseline"]
    seeds = rows[0]["seeds"] if rows else ""
    from ..profiling.drift import Drift, note

    dr = Drift.from_dict(meta.get("drift"))
    out = [format_table(rows, dr.median if dr is not None and meta.get("drift_correct") else None),
           ""]
    p = meta.get("protocol") or {}
    out.append(
        f"measured on '{meta.get('device', '?')}' ({meta.get('target', '?')}): onnxruntime, "
        f"{p.get('threads', '?')} thread(s), batch 1, all models interleaved in one run "
        f"({p.get('passes', '?')} passes, >= {p.get('min_repeats', '?')} samples, n = "
        f"{min((r['measured_n'] for r in rows), default=0)}..{max((r['measured_n'] for r in rows), default=0)}); "
        f"latency = the {s['statistic']} of the samples (the table's statistic: errors and "
        f"speedups use it; median +- IQR beside); predicted = {meta.get('predicted_by', '?')} "
        f"({meta.get('statistic', '?')}; err% against the measured {meta.get('statistic', '?')}"
        f"{'; NOTE: not the protocol of the table' if meta.get('protocol_matches_table') is False else ''})")
    if dr is not None:
        out.append(note(dr) + ("; drift-corr. = predicted x drift" if meta.get("drift_correct")
                               else ""))
    out.append(f"accuracy = test top-1 on {meta.get('data', '?')}, mean +- std over seeds {seeds}, "
               f"{_epochs_text(rows)}, one recipe for all ({meta.get('recipe_text', '')})")
    from .int8 import format_int8

    out += format_int8(rows, lab, summarize)
    if ws and bs:
        out.append("")
        out.append("winner vs baseline: measured speedup (baseline ms / winner ms), accuracy "
                   "difference; * = winner dominates (faster, accuracy >= within noise)")
        head = f"  {'':<6}" + "".join(f"{lab[b['name']]:>20}" for b in bs)
        out.append(head)
        doms = {(d["winner"], d["baseline"]) for d in s["dominance"]}
        for w in ws:
            cells = []
            for b in bs:
                sp = float(measured_ms(b) or math.nan) / float(measured_ms(w) or math.nan)
                da = 100 * (float(w["acc_mean"]) - float(b["acc_mean"]))
                star = "*" if (w["name"], b["name"]) in doms else " "
                cells.append(f"{sp:>8.2f}x {da:+6.1f}pp{star:>2}")
            out.append(f"  {lab[w['name']]:<6}" + "".join(f"{c:>20}" for c in cells))
        out.append("")
        out.append("speedup at matched accuracy (fastest winner with accuracy >= the baseline's; "
                   "in brackets: within noise):")
        for e in s["speedups"]:
            st, nz = e["strict"], e["noise"]
            a = (f"{lab[st['winner']]} {st['speedup']:.2f}x ({st['winner_ms']:.3f} vs "
                 f"{e['baseline_ms']:.3f} ms)" if st else "no winner that accurate")
            b = f"[{lab[nz['winner']]} {nz['speedup']:.2f}x]" if nz else "[none]"
            out.append(f"  {e['baseline']:<11} acc {e['baseline_acc']:.4f}: {a} {b}")
        best = s["best_strict_speedup"]
        best_text = f"{best:.2f}x" if best is not None else "none"
        out.append(f"best speedup at equal or better accuracy: {best_text}")
    return "\n".join(out)
