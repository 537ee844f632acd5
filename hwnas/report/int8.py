"""Precision in the report: which precision each trial, Pareto point and retrained model
has, and the int8 columns of retrain.csv. Pure functions and a dataclass, no plotly.

* A run searched with ``--precision int8`` or ``--precision search`` gives every trial a
  precision (trials.csv/pareto.csv column ``precision``; trial parameter ``p_precision``
  with ``search``). :func:`marks_precision` says whether the report marks it: fp32-only
  runs (and runs from before precision existed) look as before.
* ``hwnas retrain --int8`` adds to each retrain.csv row its quantized model's accuracy
  (``acc_int8``, and ``acc_onnx_fp32``: the same seed-0 model in fp32, both evaluated with
  onnxruntime), its int8 latency measured on the device (``measured_int8_*``), the int8
  prediction and the speed-up over fp32; ``precision`` is what the search chose.
  :func:`int8_result` reads them (None for a row without int8).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..profiling.precision import FP32, INT8, PRECISIONS
from ..runs import finite

__all__ = ["CHOSEN_NOTE", "INT8_FIGURE_NOTE", "INT8_TABLE_NOTE", "PRECISION_NOTE",
           "PRECISION_SYMBOLS", "Int8Result", "any_int8", "chosen_precision", "int8_cells",
           "int8_columns", "int8_result", "marks_precision", "point_precision"]

#: the marker symbol of a trial at each precision (the lower panel's retrained int8 points
#: are their fp32 marker, open)
PRECISION_SYMBOLS = {FP32: "circle", INT8: "square"}


def point_precision(row: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """The precision of a trials.csv / pareto.csv row: its ``precision`` column, else its
    ``p_precision`` trial parameter, else the run's ``--precision`` (when not ``search``),
    else fp32."""
    for v in (row.get("precision"), row.get("p_precision"), (config or {}).get("precision")):
        if isinstance(v, str) and v in PRECISIONS:
            return v
    return FP32


def marks_precision(rows: Iterable[dict[str, Any]], config: dict[str, Any]) -> bool:
    """Whether points are told apart (and labelled) by precision: the run was searched with
    ``--precision int8|search`` or one of ``rows`` is int8."""
    if str(config.get("precision") or FP32) != FP32:
        return True
    return any(point_precision(r, config) != FP32 for r in rows)


def _dash(v: float | None, spec: str, suffix: str = "") -> str:
    """``v`` formatted with ``spec`` and ``suffix``; '-' for a missing value."""
    return "-" if v is None else f"{v:{spec}}{suffix}"


@dataclass
class Int8Result:
    """The int8 version of one retrained model (a retrain.csv row's int8 columns)."""

    accuracy: float | None  # acc_int8: the quantized ONNX model's test accuracy (seed 0)
    accuracy_fp32: float | None  # acc_onnx_fp32: the same model's fp32 ONNX test accuracy
    delta_pp: float | None  # acc_int8_delta_pp: int8 - fp32, percentage points
    measured_ms: float | None  # measured_int8_stat_ms (else its median): as fp32's measured_ms
    median_ms: float | None
    iqr_ms: float | None
    predicted_ms: float | None
    speedup: float | None  # fp32 measured / int8 measured (the same statistic)
    onnx: str | None = None

    @property
    def error_pct(self) -> float | None:
        p, m = self.predicted_ms, self.measured_ms
        return None if p is None or not m else 100.0 * (p - m) / m

    def hover(self) -> list[str]:
        """Lines for a hover box."""
        return [f"int8 (static QDQ) test accuracy: {_dash(self.accuracy, '.4f')} "
                f"(fp32 ONNX {_dash(self.accuracy_fp32, '.4f')}, {_dash(self.delta_pp, '+.2f', ' pp')})",
                f"int8 latency predicted {_dash(self.predicted_ms, '.3f', ' ms')}, measured "
                f"{_dash(self.measured_ms, '.3f', ' ms')}; error {_dash(self.error_pct, '+.1f', ' %')}; "
                f"speed-up over fp32 {_dash(self.speedup, '.2f', 'x')}",
                f"int8 measured median {_dash(self.median_ms, '.3f', ' ms')}, IQR "
                f"{_dash(self.iqr_ms, '.3f', ' ms')}"]


def int8_result(r: dict[str, Any]) -> Int8Result | None:
    """The int8 columns of retrain.csv row ``r``; None when it has neither an int8 accuracy
    nor an int8 measurement."""
    acc = finite(r.get("acc_int8"))
    stat, median = finite(r.get("measured_int8_stat_ms")), finite(r.get("measured_int8_median_ms"))
    if acc is None and stat is None and median is None:
        return None
    meas = stat if stat is not None else median
    speed = finite(r.get("int8_speedup"))
    if speed is None and meas:
        fp32 = finite(r.get("measured_stat_ms"))
        fp32 = fp32 if fp32 is not None else finite(r.get("measured_median_ms"))
        speed = None if fp32 is None else fp32 / meas
    return Int8Result(acc, finite(r.get("acc_onnx_fp32")), finite(r.get("acc_int8_delta_pp")), meas,
                      median, finite(r.get("measured_int8_iqr_ms")),
                      finite(r.get("predicted_int8_ms")), speed, r.get("onnx_int8") or None)


def chosen_precision(r: dict[str, Any]) -> str | None:
    """The precision the search chose for retrain.csv row ``r`` (None: not recorded)."""
    v = r.get("precision")
    return v if isinstance(v, str) and v in PRECISIONS else None


def any_int8(results: Sequence[Any]) -> bool:
    """Whether any of ``results`` (objects with an ``int8`` attribute) has an int8 result."""
    return any(getattr(x, "int8", None) is not None for x in results)


#: the retrain table's int8 columns (:func:`int8_cells`), after the fp32 error
def int8_columns(statistic: str) -> list[str]:
    return ["int8 test accuracy (ONNX, vs fp32 ONNX)", f"int8 measured ({statistic})",
            "int8 median (IQR)", "int8 predicted (error)", "int8 speed-up"]


def int8_cells(q: Int8Result | None) -> list[str]:
    """The :func:`int8_columns` cells of one model ('-' each without int8)."""
    if q is None:
        return ["-"] * 5

    return [f"{_dash(q.accuracy, '.4f')} ({_dash(q.delta_pp, '+.2f', ' pp')} vs {_dash(q.accuracy_fp32, '.4f')})",
            _dash(q.measured_ms, ".3f", " ms"),
            f"{_dash(q.median_ms, '.3f', ' ms')} ({_dash(q.iqr_ms, '.3f')})",
            f"{_dash(q.predicted_ms, '.3f', ' ms')} ({_dash(q.error_pct, '+.1f', ' %')})",
            _dash(q.speedup, ".2f", "x")]


#: caption sentences (figure, tables)
PRECISION_NOTE = (" Marker symbol: the trial's precision (circle fp32, square int8; its latency "
                  "predicted at that precision).")
INT8_FIGURE_NOTE = (" Open star/diamond, dotted line from its fp32 point: the same model quantized "
                    "to int8 (static QDQ): the int8 ONNX model's test accuracy (seed 0, "
                    "onnxruntime on the host) vs its int8 latency measured on the device in the "
                    "same run as fp32.")
INT8_TABLE_NOTE = (" int8: each model's seed-0 ONNX file quantized (static QDQ, per-channel int8 "
                   "weights, uint8 activations, calibrated on training images); its test accuracy "
                   "with onnxruntime on the host beside the same fp32 ONNX model's, its latency "
                   "measured on the device in the same interleaved run as fp32; speed-up = fp32 "
                   "measured / int8 measured.")
CHOSEN_NOTE = " Precision (search): the precision the search chose for the model."
