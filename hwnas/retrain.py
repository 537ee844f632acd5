"""Retrain a search run's winners and baselines with one recipe, and re-measure them on the device.

``run_retrain(RetrainSettings(run=...))`` closes the loop of a search run ``runs/RUN/``:

1. **select** winners from the run's Pareto front (:func:`select_winners`: ``top`` K spread
   along the front, the ``knee``, the best within the run's latency ``budget``, or ``all``)
   and build the baselines (MobileNetV2 widths, MobileNetV3-small) at the run's resolution
   with the dataset's classes;
2. **train** every model from scratch with the same :class:`~hwnas.train.Recipe` for each
   seed (:func:`hwnas.train.train_arch`; fixed seeds), evaluate on the dataset's test
   split, and export the first seed's trained network to ``runs/RUN/models/<name>.onnx``;
3. **measure** all the ONNX files on the device in ONE interleaved call with the
   profiler's protocol (:func:`hwnas.measure.measure`; by default the protocol the
   device's latency table was measured with, so measured and predicted are comparable),
   with the table's sentinels: the drift goes into retrain.json and the summary;
4. **predict** each model's latency with the device's latency predictor;
5. write ``runs/RUN/retrain.csv`` (:data:`COLUMNS`) and ``runs/RUN/retrain.json`` (settings,
   recipe, protocol, the summary of :func:`summarize`).

Files, all written atomically::

    runs/RUN/retrain/<recipe id>/<name>/seed<S>.pt     training checkpoint (torch.save of
                                                       state dicts; read with weights_only)
    runs/RUN/retrain/<recipe id>/<name>/seed<S>.json   the finished training's result
    runs/RUN/retrain/measured-<device>.json            the last interleaved measurement
    runs/RUN/models/<name>.onnx                        deployable model (first seed's weights)

The recipe id (``e<epochs>-<hash>``) hashes the recipe, the dataset and the resolution, so
another ``--epochs`` or learning rate trains anew next to the old results instead of
mixing with them. Resuming: a finished (model, seed) -- its ``.json`` exists -- is never
retrained; an unfinished one continues from its per-epoch checkpoint; the measurement is
reused when it holds exactly the same models measured with the same protocol (a new model
re-measures all of them together, for fairness).

On many machines (``storage``: a work queue in an Optuna storage, by default the run's own
RDB storage), each (model, seed) is an item that any process claims; ``train_only`` workers
train and stop, ``collect`` gathers the results for the measurement
(:mod:`hwnas.retrain_queue`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .arch import Arch
from .context import Device
from .errors import HwnasError
from .io import atomic_write_json, atomic_write_text
from .measure import measurement_protocol, protocol_matches_table
from .runs import RETRAIN_FILE, csv_text, load_retrain, load_run, retrain_labels, winner_arch
from .search.pareto import knee_index, spread_indices

log = logging.getLogger(__name__)

#: the columns of retrain.csv, in order (the report viewer reads these)
COLUMNS = ["name", "kind", "arch", "params", "macs", "peak_act_bytes", "predicted_ms",
           "measured_median_ms", "measured_iqr_ms", "measured_n", "error_pct", "acc_mean",
           "acc_std", "seeds", "epochs", "onnx"]
#: extra columns after :data:`COLUMNS`: the statistic the predictor predicts (the device
#: table's) and the measured value of that statistic, which ``error_pct`` compares with
EXTRA_COLUMNS = ["statistic", "measured_stat_ms", "predicted_by", "search_accuracy",
                 "search_latency_ms"]
DEFAULT_BASELINES = ("mbv2-0.35", "mbv2-0.5", "mbv2-0.75", "mbv2-1.0")
SELECTIONS = ("top", "knee", "budget", "all")
RESULT_FORMAT = "hwnas-retrain-result/1"
MEASURE_FORMAT = "hwnas-retrain-measure/1"
CSV_FILE = RETRAIN_FILE
JSON_FILE = "retrain.json"

__all__ = ["COLUMNS", "DEFAULT_BASELINES", "SELECTIONS", "Model", "RetrainResult",
           "RetrainSettings", "format_summary", "format_table", "knee_index", "load_retrain",
           "parse_seeds", "retrain_labels", "run_retrain", "select_winners", "spread_indices",
           "summarize"]


# ---- settings ---------------------------------------------------------------------------------

@dataclass
class RetrainSettings:
    """What ``hwnas retrain`` does; ``None`` means "the run's" (device, data)."""

    run: str
    select: str = "top"
    top: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    device: str | None = None
    data: str | None = None
    recipe: Any = None  # a hwnas.train.Recipe (default: Recipe())
    protocol: Any = None  # a hwnas.device.bench.Protocol (default: measurement_protocol())
    quick: bool = False  # the quick measurement preset (tests, smoke runs)
    protocol_overrides: dict = field(default_factory=dict)  # warmup, passes, ... (None: keep)
    feedback: bool = False  # add the measurements to the device's networks.json
    torch_device: str = "cpu"  # where to train: cpu, cuda, mps or auto (hwnas.train)
    drift: Any = None  # a hwnas.drift.DriftSettings (default: DriftSettings())
    storage: str | None = None  # the work queue's storage (None: the run's RDB; "none": here)
    train_only: bool = False  # claim and train queue items, no measurement
    collect: bool = False  # no training: gather every result, measure, tabulate
    int8: bool = False  # also each model quantized: fp32 and int8 accuracy with onnxruntime

    def validate(self) -> RetrainSettings:
        if self.train_only and self.collect:
            raise HwnasError("--train-only and --collect exclude each other")
        if self.select not in SELECTIONS:
            raise HwnasError(f"--select '{self.select}': choose from {', '.join(SELECTIONS)}")
        if self.select == "top" and self.top < 1:
            raise HwnasError(f"--top must be >= 1, got {self.top}")
        if not self.seeds:
            raise HwnasError("--seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise HwnasError(f"--seeds {','.join(map(str, self.seeds))}: a seed is listed twice")
        from .baselines import BASELINES

        for b in self.baselines:
            if b not in BASELINES:
                raise HwnasError(f"unknown baseline '{b}' (known: {', '.join(BASELINES)})")
        if len(set(self.baselines)) != len(self.baselines):
            raise HwnasError("--baselines: a baseline is listed twice")
        return self


def parse_seeds(text: str | int) -> tuple[int, ...]:
    """``"3"`` -> (0, 1, 2) (a count); ``"0,5,7"`` or ``"7,"`` -> those seeds."""
    s = str(text).strip()
    try:
        if "," in s:
            seeds = tuple(int(x) for x in s.split(",") if x.strip())
        else:
            n = int(s)
            if n < 1:
                raise ValueError
            seeds = tuple(range(n))
    except ValueError:
        raise HwnasError(f"--seeds '{text}': a count (3 = seeds 0,1,2) or a comma list of "
                         "seeds (0,5,7; one seed: 7,)") from None
    if not seeds or any(x < 0 for x in seeds):
        raise HwnasError(f"--seeds '{text}': seeds must be integers >= 0")
    return seeds


# ---- selecting winners --------------------------------------------------------------------------

def select_winners(pareto: Sequence[dict], select: str = "top", top: int = 3,
                   budget_ms: float | None = None) -> list[dict]:
    """The Pareto rows to retrain (each with ``arch``, ``latency_ms``, ``accuracy``), sorted
    by predicted latency. ``top``: ``top`` spread along the front (:func:`spread_indices`);
    ``knee``: :func:`knee_index`; ``budget``: the most accurate with ``latency_ms <=
    budget_ms``; ``all``: the whole front."""
    rows = [r for r in pareto if r.get("arch")]
    rows.sort(key=lambda r: (float(r.get("latency_ms") or 0.0), -float(r.get("accuracy") or 0.0)))
    if not rows:
        raise HwnasError("the run's Pareto front is empty (pareto.csv has no feasible trial); "
                         "run the search longer or relax its budgets")
    if select == "all":
        return rows
    if select == "top":
        return [rows[i] for i in spread_indices(len(rows), top)]
    if select == "knee":
        i = knee_index([float(r["latency_ms"]) for r in rows], [float(r["accuracy"]) for r in rows])
        return [rows[i]]
    if select == "budget":
        if budget_ms is None:
            raise HwnasError("--select budget: the run has no latency budget (searched without "
                             "--latency-budget); use --select knee|all or --top K")
        ok = [r for r in rows if float(r["latency_ms"]) <= budget_ms]
        if not ok:
            raise HwnasError(f"--select budget: no winner within {budget_ms:g} ms")
        return [max(ok, key=lambda r: (float(r["accuracy"]), -float(r["latency_ms"])))]
    raise HwnasError(f"--select '{select}': choose from {', '.join(SELECTIONS)}")


# ---- models -------------------------------------------------------------------------------------

@dataclass
class Model:
    """One network to retrain: a winner (named by its arch file's stem) or a baseline."""

    name: str
    kind: str  # "winner" | "baseline"
    arch: Arch
    search: dict = field(default_factory=dict)  # the winner's Pareto row

    @property
    def onnx_rel(self) -> str:
        return f"models/{self.name}.onnx"


def _winner_models(run, settings: RetrainSettings, adapt) -> list[Model]:
    budget = run.config.get("latency_budget_ms")
    rows = select_winners(run.pareto, settings.select, settings.top, budget)
    out = []
    for r in rows:
        arch = winner_arch(run.path, r)
        name = Path(str(r.get("file") or "")).stem or arch.file_stem()
        out.append(Model(name, "winner", adapt(arch), dict(r)))
    return out


def _baseline_models(names: Sequence[str], resolution: int, adapt) -> list[Model]:
    from .baselines import baseline

    return [Model(n, "baseline", adapt(baseline(n, resolution))) for n in names]


# ---- training -----------------------------------------------------------------------------------

def recipe_id(recipe, data_spec: str, resolution: int) -> str:
    """``e<epochs>-<hash>``: what makes two trainings of one arch and seed the same."""
    d = {k: v for k, v in recipe.to_dict().items() if k != "threads"}
    blob = json.dumps({"recipe": d, "data": data_spec, "resolution": resolution}, sort_keys=True)
    return f"e{recipe.epochs}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_result(path: Path, model: Model, seed: int) -> dict | None:
    """A finished training's result, or None if it is of another arch (retrain then)."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HwnasError(f"{path}: unreadable training result ({str(e).splitlines()[0]}); "
                         "delete it to train that model again") from None
    if not isinstance(d, dict) or d.get("format") != RESULT_FORMAT:
        raise HwnasError(f"{path}: not an hwnas retrain result (format must be "
                         f"'{RESULT_FORMAT}'); delete it to train that model again")
    if d.get("arch") != model.arch.to_string() or d.get("seed") != seed:
        log.warning("%s: holds another arch or seed; training again", path)
        return None
    try:
        float(d["test_acc"])
    except (KeyError, TypeError, ValueError):
        raise HwnasError(f"{path}: training result without a test accuracy; delete it to "
                         "train that model again") from None
    return d


def _export(model: Model, net, run_dir: Path) -> str:
    from .export import export_arch

    path = run_dir / model.onnx_rel
    try:
        export_arch(model.arch, path, module=net)
    except OSError as e:
        raise HwnasError(f"cannot write {path}: {e.strerror or e}") from None
    return _sha1(path)


def _ensure_onnx(model: Model, result: dict, ckpt: Path, run_dir: Path, res_path: Path) -> None:
    """Re-export the first seed's trained network if its ONNX file is missing or is not the
    one exported from this result (another recipe's run overwrote it)."""
    path = run_dir / model.onnx_rel
    if path.is_file() and result.get("onnx_sha1") == _sha1(path):
        return
    from .train import load_trained

    arch, net, _ = load_trained(ckpt)
    if arch.to_string() != model.arch.to_string():
        raise HwnasError(f"{ckpt}: checkpoint is of another arch ({arch.to_string()[:60]}...)")
    result["onnx_sha1"] = _export(model, net, run_dir)
    atomic_write_json(res_path, result)
    log.info("%s: exported %s from %s", model.name, path, ckpt.name)


# ---- measuring and predicting -----------------------------------------------------------------------

def _measure(dev: Device, models: list[Model], run_dir: Path, protocol, feedback: bool,
             progress: bool, drift=None, files: Sequence[str] = ()) -> tuple[dict[str, Any], Any]:
    """Stats per arch string (and per ONNX file in ``files``, relative to ``run_dir``: the
    int8 models), measured in one interleaved call with the table's sentinels (or the stored
    measurement of exactly these models with this protocol), and the drift."""
    from .drift import Drift
    from .lut import Stats
    from .measure import measure

    device = dev.name
    archs = {m.arch.to_string(): m for m in models}
    cache = run_dir / "retrain" / f"measured-{device}.json"
    proto = protocol.to_dict()
    if cache.is_file():
        try:
            c = json.loads(cache.read_text())
            ok = (c.get("format") == MEASURE_FORMAT and c.get("protocol") == proto
                  and set(c.get("stats", {})) == set(archs) | set(files)
                  and (c.get("feedback") or not feedback))
            if ok:
                log.info("measurement of these %d models on %s: from %s", len(archs), device,
                         cache)
                return ({k: Stats.from_dict(v, f"{cache}: {k[:40]}") for k, v in c["stats"].items()},
                        Drift.from_dict(c.get("drift")))
        except (OSError, ValueError, HwnasError) as e:
            log.warning("%s: unreadable (%s); measuring again", cache, e)
    onnx = {s: run_dir / m.onnx_rel for s, m in archs.items()}
    log.info("measuring %d models on %s, interleaved (%d passes, >= %d samples each)",
             len(archs), device, protocol.passes, protocol.min_repeats)
    res = measure(dev, [m.arch for m in archs.values()], [run_dir / f for f in files],
                  onnx=onnx, protocol=protocol, source="retrain" if feedback else None,
                  progress=progress, drift=drift, what="retrain measurement")
    res.stats.update({f: res.stats.pop(str(run_dir / f)) for f in files})
    atomic_write_json(cache, {"format": MEASURE_FORMAT, "device": device, "protocol": proto,
                              "feedback": feedback, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "stats": {k: v.to_dict() for k, v in res.stats.items()},
                              "drift": res.drift.to_dict() if res.drift else None})
    return res.stats, res.drift


def _predict(dev: Device, archs: list[Arch]) -> tuple[list[float | None], str, str]:
    """(predicted ms per arch, what predicted them, the statistic predicted)."""

    from .lut import DEFAULT_STATISTIC, lut_sum

    table = dev.table if dev.has_table else None
    statistic = table.statistic if table is not None else DEFAULT_STATISTIC
    try:
        pred = dev.predictor()
        vals, why = pred.predict_each(archs)
        if why:  # the others are still predicted
            log.warning("%d of %d models not predicted: %s", vals.count(None), len(vals), why)
        return vals, "predictor", getattr(pred, "statistic", None) or statistic
    except HwnasError as e:
        log.warning("no latency predictor for '%s' (%s); predicting with the table's block sum",
                    dev.name, str(e).splitlines()[0] if str(e) else type(e).__name__)
    blocks = table.latencies()[0] if table is not None else {}
    return ([lut_sum(blocks, a) for a in archs],  # None where the table lacks a block
            "lut-sum" if table is not None else "none", statistic)


# ---- rows and summary ---------------------------------------------------------------------------------

def _mean_std(v: Sequence[float]) -> tuple[float, float]:
    return float(statistics.fmean(v)), (float(statistics.stdev(v)) if len(v) > 1 else 0.0)


def _rows(models, results, stats, predicted, predicted_by, statistic, seeds, epochs) -> list[dict]:
    from .model import arch_costs

    rows = []
    for m, pred in zip(models, predicted, strict=True):
        s = m.arch.to_string()
        st = stats[s]
        mean, std = _mean_std([r["test_acc"] for r in results[m.name]])
        c = arch_costs(m.arch)
        meas = st.value(statistic)
        rows.append({
            "name": m.name, "kind": m.kind, "arch": s, "params": c.params, "macs": c.macs,
            "peak_act_bytes": c.peak_act_bytes,
            "predicted_ms": None if pred is None else round(pred, 6),
            "measured_median_ms": round(st.median_ms, 6), "measured_iqr_ms": round(st.iqr_ms, 6),
            "measured_n": st.n,
            "error_pct": (None if pred is None or meas <= 0
                          else round(100.0 * (pred - meas) / meas, 3)),
            "acc_mean": round(mean, 6), "acc_std": round(std, 6),
            "seeds": ";".join(map(str, seeds)), "epochs": epochs, "onnx": m.onnx_rel,
            "statistic": statistic, "measured_stat_ms": round(meas, 6), "predicted_by": predicted_by,
            "search_accuracy": m.search.get("accuracy"), "search_latency_ms": m.search.get("latency_ms"),
        })
    return rows


def _tol(w: dict, b: dict) -> float:
    """Accuracy noise between two rows: the seeds' standard deviations combined."""
    return math.hypot(float(w.get("acc_std") or 0.0), float(b.get("acc_std") or 0.0))


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
    """Winners against baselines, on measured median latency and mean test accuracy.

    * ``dominance``: every (winner W, baseline B) with W faster than B (lower measured
      median) and W's accuracy >= B's minus the noise ``sqrt(std_W^2 + std_B^2)`` over seeds
      (0 with one seed); ``strict`` when W's mean accuracy is >= B's.
    * ``speedups``: per baseline, the fastest winner with accuracy >= B's (``strict``) and
      the fastest within noise (``noise``): speedup = B's ms / W's ms (> 1: W is faster).
    """
    ws = [r for r in rows if r["kind"] == "winner"]
    bs = [r for r in rows if r["kind"] == "baseline"]

    def ms(r: dict) -> float:
        return float(r["measured_median_ms"])

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
    return {"statistic": "median", "dominance": dom, "speedups": speed,
            "best_strict_speedup": max(strict) if strict else None}


def _f(v: Any, fmt: str, empty: str = "-") -> str:
    return empty if v is None or v == "" else format(float(v), fmt)


def _acc(r: dict) -> str:
    """mean +- std over the seeds; one seed has no spread to show."""
    if len(str(r.get("seeds", "")).split(";")) < 2:
        return f"{float(r['acc_mean']):.4f} (1 seed)"
    return f"{float(r['acc_mean']):.4f} +- {float(r['acc_std']):.4f}"


def format_table(rows: Sequence[dict], drift: float | None = None) -> str:
    """The models: params, MACs, peak memory, predicted vs measured latency, accuracy (with
    ``drift``: also the drift-corrected prediction, predicted x drift, and its error)."""
    from .drift import corrected_error

    lab = retrain_labels(rows)
    out = [f"  {'model':<10} {'params':>8} {'MACs':>8} {'peak':>8} {'pred.':>8} "
           f"{'measured (median +- IQR)':>24} {'err%':>7} {'accuracy':>16}"
           + (f" {'drift-corr.':>11} {'err%':>7}" if drift else "")]
    for r in rows:
        corr = "" if not drift else (
            f" {_f(None if r['predicted_ms'] is None else r['predicted_ms'] * drift, '.3f'):>11} "
            f"{_f(corrected_error(r['predicted_ms'], r.get('measured_stat_ms'), drift), '+.1f'):>7}")
        out.append(
            f"  {lab[r['name']]:<10} {r['params'] / 1e6:>7.3f}M {r['macs'] / 1e6:>7.1f}M "
            f"{r['peak_act_bytes'] / 2**20:>6.2f}Mi {_f(r['predicted_ms'], '.3f'):>8} "
            f"{float(r['measured_median_ms']):>11.3f} +- {float(r['measured_iqr_ms']):<6.3f} ms "
            f"{_f(r['error_pct'], '+.1f'):>7} {_acc(r):>16}" + corr)
    ws = sorted((r for r in rows if r["kind"] == "winner"), key=lambda r: lab[r["name"]])
    for r in ws:
        out.append(f"  {lab[r['name']]} = {r['arch']}")
    return "\n".join(out)


def format_summary(rows: Sequence[dict], meta: dict | None = None) -> str:
    """Table, how it was measured, the dominance grid and the speedups at matched accuracy."""
    meta = meta or {}
    s = summarize(rows)
    lab = retrain_labels(rows)
    ws = sorted((r for r in rows if r["kind"] == "winner"), key=lambda r: lab[r["name"]])
    bs = [r for r in rows if r["kind"] == "baseline"]
    seeds = rows[0]["seeds"] if rows else ""
    from .drift import Drift, note

    dr = Drift.from_dict(meta.get("drift"))
    out = [format_table(rows, dr.median if dr is not None and meta.get("drift_correct") else None),
           ""]
    p = meta.get("protocol") or {}
    out.append(
        f"measured on '{meta.get('device', '?')}' ({meta.get('target', '?')}): onnxruntime, "
        f"{p.get('threads', '?')} thread(s), batch 1, all models interleaved in one run "
        f"({p.get('passes', '?')} passes, >= {p.get('min_repeats', '?')} samples, n = "
        f"{min((r['measured_n'] for r in rows), default=0)}..{max((r['measured_n'] for r in rows), default=0)}); "
        f"latency = median; predicted = {meta.get('predicted_by', '?')} "
        f"({meta.get('statistic', '?')}; err% against the measured {meta.get('statistic', '?')}"
        f"{'; NOTE: not the protocol of the table' if meta.get('protocol_matches_table') is False else ''})")
    if dr is not None:
        out.append(note(dr) + ("; drift-corr. = predicted x drift" if meta.get("drift_correct")
                               else ""))
    out.append(f"accuracy = test top-1 on {meta.get('data', '?')}, mean +- std over seeds {seeds}, "
               f"{rows[0]['epochs'] if rows else '?'} epochs, one recipe for all "
               f"({meta.get('recipe_text', '')})")
    from .retrain_int8 import format_int8

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
                sp = float(b["measured_median_ms"]) / float(w["measured_median_ms"])
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


# ---- the whole step -----------------------------------------------------------------------------------

@dataclass
class RetrainResult:
    run_dir: Path
    rows: list[dict]
    meta: dict
    trained: int  # (model, seed) trainings finished in this call

    def summary(self) -> str:
        return format_summary(self.rows, self.meta)


def _recipe_text(r) -> str:
    return (f"{r.optimizer} lr {r.lr:g}, cosine, batch {r.batch_size}, wd {r.weight_decay:g}, "
            f"label smoothing {r.label_smoothing:g}, augment {'on' if r.augment else 'off'}"
            + (f", subset {r.subset}" if r.subset else ""))


def run_retrain(settings: RetrainSettings, progress: bool = True) -> RetrainResult:
    """Train, export, measure, predict and tabulate (see the module docstring)."""
    from . import retrain_queue as rq
    from .data import load_dataset
    from .train import Recipe, adapt_arch, resolve_torch_device

    settings.validate()
    run = load_run(settings.run)
    cfg = run.config
    device = settings.device or cfg.get("device")
    if not device and not settings.train_only:
        raise HwnasError(f"run '{run.name}' names no device; give --device")
    resolution = int(cfg.get("resolution") or 0)
    if resolution <= 0:
        raise HwnasError(f"{run.path / 'config.json'}: no resolution")
    data_spec = settings.data or cfg.get("data") or "digits"
    recipe = settings.recipe or Recipe()
    rid = recipe_id(recipe, data_spec, resolution)
    if settings.train_only:
        dev = target = protocol = None
    else:  # measuring needs a registered device: fail before training
        dev = Device.load(device)
        target = dev.config.target
        protocol = settings.protocol or measurement_protocol(dev, settings.quick,
                                                             **settings.protocol_overrides)
    url = rq.queue_url(settings.storage, cfg, run.path)
    queue = rq.open_queue(url, rq.queue_name(rid, cfg.get("study_name") or run.name), run.path,
                          optional=settings.collect)  # --collect: the queue only gives hints
    data = load_dataset(data_spec, resolution, 0)  # the fixed split: one test set for all

    def adapt(a: Arch) -> Arch:
        return adapt_arch(replace(a, resolution=resolution), data)

    models = [*_winner_models(run, settings, adapt),
              *_baseline_models(settings.baselines, resolution, adapt)]
    log.info("%s %d winner(s) and %d baseline(s) on %s at %d px, %d epoch(s), seeds %s%s",
             "collecting" if settings.collect else "retraining", sum(m.kind == "winner" for m in models), len(settings.baselines), data_spec,
             resolution, recipe.epochs, ",".join(map(str, settings.seeds)),
             f" (work queue {queue.name} in {url})" if queue else "")
    torch_device = resolve_torch_device(settings.torch_device)  # fails before any training
    trained = 0
    if queue is not None and not settings.collect:
        trained = rq.train_queue(queue, models, settings.seeds, data, data_spec, recipe, run.path,
                                 rid, progress, torch_device, wait=not settings.train_only)
    elif not settings.collect:
        trained = rq.train_local(models, data, data_spec, recipe, settings.seeds, run.path, rid,
                                 progress, torch_device)
    if settings.train_only:
        left = queue.pending([rq.Item.of(m, s, False) for m in models for s in settings.seeds]) \
            if queue is not None else []
        return RetrainResult(run.path, [], {"run": run.name, "recipe_id": rid, "queue": url,
                                            "pending": [it.key for it in left]}, trained)
    results = rq.collect_results(models, settings.seeds, run.path, rid, queue,
                                 "--collect" if settings.collect else "retrain")
    same = protocol_matches_table(dev, protocol)
    q8 = {}
    if settings.int8:  # seed 0's ONNX models quantized, timed beside fp32 (hwnas.retrain_int8)
        from .device.isa import detect
        from .quantize import resolve_format
        from .retrain_int8 import quantize_models

        local = dev.config_or_default.is_local
        table = dev.table_or_new()
        isa = table.provenance.get("isa") or (detect() if local else None)
        q8 = quantize_models({m.name: m.onnx_rel for m in models}, run.path, data, progress=progress,
                             fmt=resolve_format(table=table, local=local), device_isa=isa)
    stats, drift = _measure(dev, models, run.path, protocol, settings.feedback, progress,
                            settings.drift, files=[q["onnx_int8"] for q in q8.values()])
    if settings.feedback:  # the measurements joined (or made) the table: read it afresh
        dev = Device.load(device)
    predicted, predicted_by, statistic = _predict(dev, [m.arch for m in models])
    rows = _rows(models, results, stats, predicted, predicted_by, statistic, settings.seeds,
                 recipe.epochs)
    if settings.int8:
        from . import retrain_int8

        retrain_int8.add_columns(rows, models, q8, stats,
                                 retrain_int8.predict_int8(dev, [m.arch for m in models]),
                                 cfg.get("precision"))
    meta = {"run": run.name, "device": device, "target": target,
            "protocol": protocol.to_dict(), "statistic": statistic,
            "predicted_by": predicted_by, "protocol_matches_table": same, "data": data_spec, "resolution": resolution,
            "recipe": recipe.to_dict(), "recipe_id": rid, "recipe_text": _recipe_text(recipe),
            "seeds": list(settings.seeds), "select": settings.select,
            "top": settings.top if settings.select == "top" else None,
            "baselines": list(settings.baselines), "feedback": settings.feedback,
            "drift": drift.to_dict() if drift is not None else None,
            "drift_correct": bool(settings.drift is not None and settings.drift.correct),
            "queue": url, "trained_here": trained,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    from .retrain_int8 import COLUMNS as INT8_COLUMNS

    cols = COLUMNS + EXTRA_COLUMNS + (list(INT8_COLUMNS) if settings.int8 else [])
    atomic_write_text(run.path / CSV_FILE, csv_text(rows, cols, extra=False))
    atomic_write_json(run.path / JSON_FILE, {**meta, "summary": summarize(rows),
                                             "settings": _settings_dict(settings)})
    if settings.feedback:
        log.info("added %d whole-network measurements to %s's networks.json (source retrain); "
                 "the predictor refits from them when next loaded", len(stats), device)
    return RetrainResult(run.path, rows, meta, trained)


def _settings_dict(s: RetrainSettings) -> dict:
    d = asdict(replace(s, recipe=None, protocol=None))
    d["recipe"] = s.recipe.to_dict() if s.recipe is not None else None
    d["protocol"] = s.protocol.to_dict() if s.protocol is not None else None
    d["drift"] = asdict(s.drift) if s.drift is not None else None
    return d
