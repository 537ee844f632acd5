"""``hwnas retrain --int8``: every trained model in both precisions.

Each model's seed-0 ONNX export (``models/<name>.onnx``) is quantized next to it
(``models/<name>.int8.onnx``, :func:`hwnas.profiling.quantize.int8_accuracy`: static QDQ, calibrated
on training images), both files' test accuracy is measured with onnxruntime on the host
(the real quantized model, not a simulation), and the int8 files are timed on the device
in the same interleaved run as the fp32 ones (:func:`hwnas.retrain.run._measure`). Quantizing
and the two accuracies are cached in ``retrain/int8.json`` by the fp32 file's hash, so a
retrain run again (e.g. after kill -9) does not redo them.

retrain.csv gains :data:`COLUMNS`: the precision the search chose for the model
(``precision``; baselines ``fp32``), the int8 file, both accuracies and their difference,
the int8 predicted latency (when the device's table has int8 entries) and the int8
measured latency with its speed-up over fp32 (fp32 / int8, the table's statistic).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_json, file_digest

log = logging.getLogger(__name__)

FORMAT = "hwnas-retrain-int8/1"
CACHE = Path("retrain") / "int8.json"
COLUMNS = ("precision", "onnx_int8", "int8_format", "int8_kernels", "acc_onnx_fp32", "acc_int8",
           "acc_int8_delta_pp",
           "predicted_int8_ms", "measured_int8_median_ms", "measured_int8_iqr_ms",
           "measured_int8_stat_ms", "int8_speedup")

__all__ = ["COLUMNS", "quantize_models", "predict_int8", "add_columns", "searched_precision",
           "int8_rows", "format_int8"]


def quantize_models(onnx: Mapping[str, str], run_dir: str | Path, dataset, samples: int = 64,
                    seed: int = 0, progress: bool = True, fmt: str = "u8s8-rr",
                    device_isa: dict | None = None) -> dict[str, dict]:
    """``onnx`` maps a model name to its fp32 file (relative to ``run_dir``); each is quantized
    in the device's int8 ``fmt`` and its int8 accuracy computed as the device (``device_isa``)
    computes it (:func:`hwnas.profiling.quantize.int8_numerics`); per name ``{"onnx_int8" (relative),
    "accuracy_fp32", "accuracy_int8", "calibration", "sha1", "int8_format", "numerics"}``."""
    from tqdm import tqdm

    from ..profiling.quantize import int8_accuracy

    run_dir = Path(run_dir)
    cache_file = run_dir / CACHE
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        cache = cache.get("models", {}) if cache.get("format") == FORMAT else {}
    except (OSError, ValueError, AttributeError):
        log.warning("%s: unreadable; quantizing again", cache_file)
        cache = {}
    out: dict[str, dict] = {}
    for name, rel in tqdm(onnx.items(), desc="int8: quantize + accuracy", unit="model",
                          disable=not progress, leave=False):
        src = run_dir / rel
        sha = file_digest(src)
        c = cache.get(name)
        if (c and c.get("sha1") == sha and c.get("int8_format") == fmt
                and (run_dir / c["onnx_int8"]).is_file()):
            out[name] = c
            continue
        q = int8_accuracy(src, dataset, samples=samples, seed=seed, fmt=fmt, device_isa=device_isa)
        out[name] = cache[name] = {
            "onnx_int8": str(Path(rel).with_name(Path(q["int8_onnx"]).name)),
            "accuracy_fp32": q["accuracy_fp32"], "accuracy_int8": q["accuracy_int8"],
            "calibration": q["calibration"], "sha1": sha, "int8_format": fmt,
            "numerics": q["numerics"]}
        atomic_write_json(cache_file, {"format": FORMAT, "models": cache})
    return out


def predict_int8(dev, archs: Sequence) -> list[float | None]:
    """int8 latency per arch from the device's int8 predictor; None each when its table has
    no int8 entries (``hwnas profile --precision fp32,int8`` adds them)."""
    try:
        vals, why = dev.predictor(precision="int8").predict_each(list(archs))
    except HwnasError as e:
        log.info("no int8 prediction for '%s': %s", dev.name, str(e).splitlines()[0])
        return [None] * len(archs)
    if why:
        log.info("%d of %d models without an int8 prediction: %s", vals.count(None), len(vals),
                 why)
    return vals


def searched_precision(model, run_precision: str | None) -> str:
    """The precision the search chose for a winner (its Pareto row's, else the run's);
    baselines and fp32 runs: fp32."""
    p = str((model.search or {}).get("precision") or "")
    if p in ("fp32", "int8"):
        return p
    return run_precision if run_precision in ("fp32", "int8") else "fp32"


def add_columns(rows: Sequence[dict], models: Sequence, q8: Mapping[str, dict],
                stats: Mapping[str, Any], predicted: Sequence[float | None],
                run_precision: str | None) -> None:
    """Fill :data:`COLUMNS` of each row (one per model, same order); ``stats`` holds the
    int8 files' measurements keyed by their relative path."""
    for r, m, pred in zip(rows, models, predicted, strict=True):
        r["precision"] = searched_precision(m, run_precision)
        q = q8.get(m.name)
        if q is None:
            continue
        st = stats.get(q["onnx_int8"])
        stat = st.value(r["statistic"]) if st is not None else None
        r.update({
            "onnx_int8": q["onnx_int8"], "int8_format": q.get("int8_format"),
            "int8_kernels": (q.get("numerics") or {}).get("kernels"),
            "acc_onnx_fp32": round(q["accuracy_fp32"], 6),
            "acc_int8": round(q["accuracy_int8"], 6),
            "acc_int8_delta_pp": round(100 * (q["accuracy_int8"] - q["accuracy_fp32"]), 3),
            "predicted_int8_ms": None if pred is None else round(pred, 6),
            "measured_int8_median_ms": None if st is None else round(st.median_ms, 6),
            "measured_int8_iqr_ms": None if st is None else round(st.iqr_ms, 6),
            "measured_int8_stat_ms": None if stat is None else round(stat, 6),
            "int8_speedup": (None if not stat or not r.get("measured_stat_ms")
                             else round(float(r["measured_stat_ms"]) / stat, 4))})


def int8_rows(rows: Sequence[dict]) -> list[dict]:
    """The rows as their int8 models: int8 accuracy and measured latency (the statistic, and
    the median) in the fp32 columns (for :func:`hwnas.retrain.run.summarize`; the accuracy
    spread stays the seeds')."""
    return [{**r, "acc_mean": float(r["acc_int8"]),
             "measured_median_ms": float(r["measured_int8_median_ms"]),
             "measured_stat_ms": r.get("measured_int8_stat_ms")}
            for r in rows if r.get("acc_int8") not in (None, "")
            and r.get("measured_int8_median_ms") not in (None, "")]


def format_int8(rows: Sequence[dict], labels: Mapping[str, str], summarize=None) -> list[str]:
    """Lines for the retrain summary: the two precisions side by side (ONNX accuracy,
    measured latency at the table's statistic, the int8 speed-up, the int8 prediction's
    error) and, with ``summarize``, the int8 speed-up of winners over baselines."""
    rs = [r for r in rows if r.get("acc_int8") not in (None, "")]
    if not rs:
        return []
    out = ["", "int8 (static QDQ of seed 0's model, calibrated on training images; accuracy = "
           "test top-1 of the fp32 and int8 ONNX files with onnxruntime; both precisions "
           "measured in the one interleaved run):",
           f"  {'model':<10} {'chosen':>6} {'acc fp32':>9} {'acc int8':>9} {'delta':>8} "
           f"{'fp32 ms':>9} {'int8 ms':>9} {'speed-up':>9} {'int8 pred.':>10} {'err%':>7}"]
    for r in rs:
        m8, p8 = r.get("measured_int8_stat_ms"), r.get("predicted_int8_ms")
        err = (f"{100 * (float(p8) - float(m8)) / float(m8):+.1f}"
               if p8 not in (None, "") and m8 not in (None, "", 0) else "-")
        sp = r.get("int8_speedup")
        out.append(
            f"  {labels.get(r['name'], r['name']):<10} {r.get('precision') or '':>6} "
            f"{float(r['acc_onnx_fp32']):>9.4f} {float(r['acc_int8']):>9.4f} "
            f"{float(r['acc_int8_delta_pp']):>+6.2f}pp {float(r['measured_stat_ms']):>9.3f} "
            f"{'-' if m8 in (None, '') else f'{float(m8):.3f}':>9} "
            f"{'-' if sp in (None, '') else f'{float(sp):.2f}x':>9} "
            f"{'-' if p8 in (None, '') else f'{float(p8):.3f}':>10} {err:>7}")
    r8 = int8_rows(rows)
    if summarize is not None and any(r["kind"] == "winner" for r in r8) \
            and any(r["kind"] == "baseline" for r in r8):
        best = summarize(r8)["best_strict_speedup"]
        out.append("int8 winners vs int8 baselines: best measured speed-up at equal or better "
                   f"int8 accuracy: {'none' if best is None else f'{best:.2f}x'}")
    return out
