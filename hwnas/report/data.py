"""The report's figure and table *data*: plain dataclasses computed from a run's rows, with no
plotly and no files (Optuna's visualization shape; tested without plotting or a browser).

* **objective space** (:func:`objective_space_data`) -- every COMPLETE trial as predicted
  latency vs estimated accuracy: the Pareto front (the run's feasible non-dominated trials,
  ``pareto.csv``) highlighted, infeasible trials grey, the latency budget as a line; below
  it, on the same latency axis, the retrained winners and baselines (trained accuracy,
  mean +- std over seeds) with an arrow from predicted to measured latency;
* **parity** (:func:`parity_data`) -- the latency predictor's prediction vs the measured
  latency of the device's whole-network measurements and of the re-measured models, with
  the +-10 % band;
* **hypervolume history** (:func:`hypervolume_history`) -- the hypervolume of the feasible
  front after each complete trial, objectives min-max normalised over the run;
* a **table** of the retrained winners and baselines (:func:`results_table`) and one of the
  Pareto front (:func:`pareto_table`).

Every figure's caption says how the numbers were measured (:func:`measurement_info`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runs import config_score_column, finite, retrain_labels
from ..search.pareto import hypervolume, pareto_mask
from ..search.settings import OBJECTIVES, objective_column
from .int8 import (
    CHOSEN_NOTE,
    INT8_FIGURE_NOTE,
    INT8_TABLE_NOTE,
    PRECISION_NOTE,
    Int8Result,
    any_int8,
    chosen_precision,
    int8_cells,
    int8_columns,
    int8_result,
    marks_precision,
    point_precision,
)
from .labels import fmt_acc, log_ticks, score_label, seed_count, trials_archs

__all__ = [
    "BAND", "HV_REFERENCE", "HypervolumeData", "Measurement", "ObjectiveSpaceData", "ParityData",
    "ParitySeries", "PointGroup", "ReportData", "Retrained", "TableData", "complete_trials",
    "finite", "fmt", "fmt_bytes", "fmt_count", "hypervolume_history", "measurement_info",
    "objective_space_data", "parity_data", "parity_metrics", "pareto_table", "results_table",
    "as_retrained", "retrain_labels",
]

#: reference point of the hypervolume, in normalised objectives (0 = best seen, 1 = worst seen)
HV_REFERENCE = 1.1
BAND = 0.10  # the parity plot's band: +-10 %


# ---- formatting cells ------------------------------------------------------------------------

def fmt_count(v: Any, unit: str = "") -> str:
    x = finite(v)
    if x is None:
        return "-"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3f} M{unit}"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.1f} k{unit}"
    return f"{x:.0f}{(' ' + unit) if unit else ''}"


def fmt_bytes(v: Any) -> str:
    x = finite(v)
    return "-" if x is None else f"{x / 2**20:.2f} MiB"


def fmt(v: Any, spec: str = ".4g", suffix: str = "") -> str:
    x = finite(v)
    return "-" if x is None else f"{x:{spec}}{suffix}"


def _short(s: str, n: int = 70) -> str:
    s = str(s or "")
    return s if len(s) <= n else s[: n - 3] + "..."


def _wrap(s: str, n: int = 60) -> str:
    """A long arch string broken into lines for hover boxes."""
    s = str(s or "")
    return "<br>".join(s[i:i + n] for i in range(0, len(s), n)) or "-"


# ---- how it was measured -----------------------------------------------------------------------

@dataclass
class Measurement:
    """Where and how latencies were measured (from the run's config and the device's table)."""

    device: str
    statistic: str | None = None
    threads: int | None = None
    onnxruntime: str | None = None
    cpu: str | None = None
    cores: int | None = None
    machine: str | None = None
    os: str | None = None
    date: str | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    estimators_injected: bool = False

    def text(self) -> str:
        """One sentence for figure captions."""
        parts = [f"device {self.device}"]
        if not (self.cpu or self.machine or self.onnxruntime or self.threads):
            s = f"device {self.device} (no provenance: the device has no latency table here)"
            if self.estimators_injected:
                s += "; this run's latencies came from an injected function"
            return s
        if self.cpu or self.machine:
            hw = self.cpu or ""
            if self.cores:
                hw += f", {self.cores} cores"
            if self.machine:
                hw += f", {self.machine}"
            parts.append(hw.strip(", "))
        parts.append(f"onnxruntime {self.onnxruntime or '?'}")
        parts.append(f"{self.threads if self.threads is not None else '?'} thread(s)")
        if self.statistic:
            parts.append(f"table statistic: {self.statistic}")
        p = self.protocol
        if p:
            parts.append(f"protocol: warmup {p.get('warmup')}, >= {p.get('min_repeats')} samples "
                         f"and >= {p.get('min_time_s')} s in {p.get('passes')} interleaved passes")
        if self.date:
            parts.append(f"measured {self.date}")
        s = "; ".join(parts)
        if self.estimators_injected:
            s += " (this run's latencies came from an injected function, not a device's predictor)"
        return s


def measurement_info(config: dict[str, Any], table: Any = None) -> Measurement:
    """A :class:`Measurement` from a run's ``config.json`` (its ``device_provenance``) and the
    device's :class:`~hwnas.profiling.lut.LatencyTable` (used where the config says nothing)."""
    prov = dict(getattr(table, "provenance", None) or {})
    prov.update(config.get("device_provenance") or {})
    statistic = config.get("latency_statistic") or getattr(table, "statistic", None)
    return Measurement(
        device=str(config.get("device", "?")), statistic=statistic,
        threads=prov.get("threads"), onnxruntime=prov.get("onnxruntime"),
        cpu=prov.get("cpu_model"), cores=prov.get("cores"), machine=prov.get("machine"),
        os=prov.get("os"), date=prov.get("date"), protocol=dict(prov.get("protocol") or {}),
        estimators_injected=bool(config.get("injected_estimators")))


# ---- (a) objective space -----------------------------------------------------------------------

@dataclass
class PointGroup:
    """One set of trial points drawn alike (a plotly trace)."""

    name: str
    kind: str  # front | feasible | infeasible
    x: list[float]
    y: list[float]
    numbers: list[int]
    hover: list[str]
    archs: list[str] = field(default_factory=list)  # each point's arch string
    precision: str | None = None  # fp32 | int8 when the run marks precision, else None

    @property
    def n_archs(self) -> int:
        """Distinct archs among the points (a search may evaluate an arch twice)."""
        return len(set(self.archs))

    @property
    def legend(self) -> str:
        """The legend entry: both counts, as the front table counts archs."""
        return f"{self.name} ({trials_archs(len(self.x), self.n_archs)})"


@dataclass
class Retrained:
    """A retrained winner or baseline: predicted and measured latency, trained accuracy."""

    name: str
    label: str  # W1, W2, ... for winners (by measured latency); the name for baselines
    kind: str  # winner | baseline
    arch: str
    predicted_ms: float | None
    measured_ms: float | None  # the statistic the prediction targets (retrain.csv's statistic)
    statistic: str  # which statistic measured_ms is
    median_ms: float | None
    iqr_ms: float | None
    acc_mean: float | None
    acc_std: float | None
    error_pct: float | None
    hover: str
    n_seeds: int | None = None  # seeds the accuracy is averaged over (1: no spread)
    precision: str | None = None  # the precision the search chose (retrain.csv), if recorded
    int8: Int8Result | None = None  # its int8 version (hwnas retrain --int8), if any


@dataclass
class ObjectiveSpaceData:
    x_label: str
    y_label: str
    groups: list[PointGroup]
    retrained: list[Retrained]
    budget_ms: float | None
    objectives: list[str]
    n_complete: int
    caption: str
    n_archs: int = 0  # distinct archs among the complete trials

    @property
    def n_points(self) -> int:
        return sum(len(g.x) for g in self.groups)


def complete_trials(trials: Sequence[dict[str, Any]], column: str = "score") -> list[dict[str, Any]]:
    """COMPLETE trials, by number, with a finite latency and score (``column``: Run.score)."""
    out = [t for t in trials if t.get("state") == "COMPLETE"
           and finite(t.get(column)) is not None and finite(t.get("latency_ms")) is not None]
    return sorted(out, key=lambda t: t.get("number", 0))


def _trial_hover(t: dict[str, Any], objectives: Sequence[str], front: bool,
                 score: str, precision: str | None = None, column: str = "score") -> str:
    lines = [f"<b>trial {t.get('number')}</b>" + (" (Pareto front)" if front else "")
             + (f" seed: {t['seed']}" if t.get("seed") else "")
             + ("" if t.get("feasible") is not False else " <i>infeasible</i>"),
             *([f"precision: <b>{precision}</b>"] if precision else []),
             f"{score}: {fmt(t.get(column))}",
             f"latency (predicted{', ' + precision if precision else ''}): "
             f"{fmt(t.get('latency_ms'), '.3f', ' ms')}",
             f"params: {fmt_count(t.get('params'))}   MACs: {fmt_count(t.get('macs'))}",
             f"peak act. memory: {fmt_bytes(t.get('memory_bytes'))}",
             "objectives: " + ", ".join(objectives),
             _wrap(t.get("arch", ""))]
    return "<br>".join(lines)


def objective_space_data(trials: Sequence[dict[str, Any]], pareto: Sequence[dict[str, Any]],
                         config: dict[str, Any], retrain: Sequence[dict[str, Any]] = (),
                         measurement: Measurement | None = None) -> ObjectiveSpaceData:
    """Every COMPLETE trial as (predicted latency, estimated accuracy), split into the Pareto
    front (``pareto`` rows' trials and archs), other feasible and infeasible trials; and the
    retrained models of ``retrain`` (rows of ``retrain.csv``). A run searched with
    ``--precision int8|search`` has one group per kind and precision (:mod:`.int8`)."""
    objectives = list(config.get("objectives") or [])
    column = config_score_column(config)
    done = complete_trials(trials, column)
    mark = marks_precision([*done, *pareto], config)
    front_trials = {r.get("trial") for r in pareto}
    front_archs = {(r.get("arch"), point_precision(r, config)) for r in pareto}
    score = score_label(config)
    names = (("infeasible", "infeasible trials"), ("feasible", "feasible trials"),
             ("front", "Pareto front"))
    groups = {(k, None): PointGroup(n, k, [], [], [], []) for k, n in names}
    for t in done:
        feasible = t.get("feasible") is not False
        prec = point_precision(t, config)
        on_front = feasible and (t.get("number") in front_trials
                                 or (t.get("arch"), prec) in front_archs)
        kind = "front" if on_front else "feasible" if feasible else "infeasible"
        key = (kind, prec if mark else None)
        if key not in groups:
            groups[key] = PointGroup(f"{dict(names)[kind]}, {prec}", kind, [], [], [], [],
                                     precision=prec)
        g = groups[key]
        g.x.append(float(t["latency_ms"]))
        g.y.append(float(t[column]))
        g.numbers.append(int(t.get("number", -1)))
        g.archs.append(str(t.get("arch", "")))
        g.hover.append(_trial_hover(t, objectives, on_front, score, prec if mark else None,
                                    column))
    order = [k for k, _ in names]
    shown = sorted((g for (_, p), g in groups.items() if (p is None) != mark),
                   key=lambda g: (order.index(g.kind), g.precision or ""))
    labels = retrain_labels(retrain)
    retrained = [as_retrained(r, labels) for r in retrain]
    est = config.get("accuracy_estimator") or config.get("accuracy") or "?"
    budget = finite(config.get("latency_budget_ms"))
    n_archs = len({str(t.get("arch", "")) for t in done})
    cap = (f"{trials_archs(len(done), n_archs)} (complete) of {config.get('space', '?')} at "
           f"resolution {config.get('resolution', '?')}: latency predicted by the latency "
           f"predictor of {config.get('device', '?')}; y: {score} ({est} on "
           f"{config.get('data', '?')}). The legend counts trials and distinct archs (an arch "
           "evaluated twice is two points at one place); the front table lists archs. "
           f"The front is over the run's objectives ({', '.join(objectives) or '?'})")
    if len(objectives) > 2 or set(objectives) != {"accuracy", "latency"}:
        cap += f", shown here projected on {column} x latency"
    cap += "."
    if budget is not None:
        cap += f" Dashed line: the latency budget, {budget:g} ms (trials beyond a budget are grey)."
    if retrained:
        cap += (" Lower panel: the retrained winners and baselines, trained test accuracy "
                "(mean +- std over seeds; no bar where one seed was trained) vs latency; each "
                "arrow goes from the predicted latency (open marker) to the latency measured on "
                f"the device (filled; {retrained[0].statistic} of the samples, the statistic "
                "the predictor predicts; median and IQR in the hover).")
    cap += (PRECISION_NOTE if mark else "") + (INT8_FIGURE_NOTE if any_int8(retrained) else "")
    if measurement is not None:
        cap += f" Measured on {measurement.text()}."
    return ObjectiveSpaceData("latency (ms)", score, shown, retrained, budget, objectives,
                              len(done), cap, n_archs)


def _seeds(v: Any) -> str:
    n = seed_count(v)
    return f"{n} seed{'s' if n != 1 else ''}" if n else "? seeds"


def _epochs(r: dict[str, Any]) -> Any:
    return "?" if r.get("epochs") in (None, "") else r["epochs"]  # 0: supernet weights


def as_retrained(r: dict[str, Any], labels: dict[str, str] | None = None) -> Retrained:
    """One retrain.csv row. The measured value compared with the prediction is the row's
    ``measured_stat_ms`` (the statistic the device's table and predictor use) when present,
    else its median."""
    name = str(r.get("name", ""))
    pred, median = finite(r.get("predicted_ms")), finite(r.get("measured_median_ms"))
    stat_ms = finite(r.get("measured_stat_ms"))
    meas, stat = (stat_ms, str(r.get("statistic") or "?")) if stat_ms is not None else (median, "median")
    err = finite(r.get("error_pct"))
    if err is None and pred is not None and meas:
        err = 100.0 * (pred - meas) / meas
    label = (labels or {}).get(name, name)
    n_seeds = seed_count(r.get("seeds"))
    prec, q = chosen_precision(r), int8_result(r)
    hover = "<br>".join([
        f"<b>{html.escape(label)}</b> ({r.get('kind', '?')})"
        + (f" {html.escape(name)}" if label != name else "")
        + (f"; precision chosen by the search: <b>{prec}</b>" if prec else ""),
        f"test accuracy (trained): {fmt_acc(r.get('acc_mean'), r.get('acc_std'), n_seeds, with_n=False)}"
        f" over {_seeds(r.get('seeds'))}, {_epochs(r)} epoch(s)",
        f"latency predicted {fmt(pred, '.3f', ' ms')}, measured {fmt(meas, '.3f', ' ms')} "
        f"({stat}); error {fmt(err, '+.1f', ' %')}",
        f"measured median {fmt(median, '.3f', ' ms')}, IQR {fmt(r.get('measured_iqr_ms'), '.3f', ' ms')}"
        f", n {r.get('measured_n') or '?'}",
        f"params: {fmt_count(r.get('params'))}   MACs: {fmt_count(r.get('macs'))}   "
        f"peak act.: {fmt_bytes(r.get('peak_act_bytes'))}",
        *(q.hover() if q is not None else []),
        _wrap(r.get("arch", ""))])
    return Retrained(name, label, str(r.get("kind", "")), str(r.get("arch", "")), pred, meas, stat,
                     median, finite(r.get("measured_iqr_ms")), finite(r.get("acc_mean")),
                     None if n_seeds == 1 else finite(r.get("acc_std")), err, hover, n_seeds,
                     prec, q)


# ---- (b) parity ----------------------------------------------------------------------------------

@dataclass
class ParitySeries:
    name: str
    kind: str  # profiled | winner | baseline
    predicted: list[float]
    measured: list[float]
    labels: list[str]


@dataclass
class ParityData:
    series: list[ParitySeries]
    band: float
    lo: float
    hi: float
    metrics: dict[str, dict[str, float]]  # series name -> {n, mape, within_band, kendall_tau}
    caption: str
    ticks: list[float] = field(default_factory=list)  # the same round ticks on both log axes

    @property
    def n_points(self) -> int:
        return sum(len(s.predicted) for s in self.series)


def parity_metrics(predicted: Sequence[float], measured: Sequence[float],
                   band: float = BAND) -> dict[str, float]:
    """n, MAPE (%), share within +-band, Kendall tau of predicted vs measured."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = np.isfinite(p) & np.isfinite(m) & (m > 0)
    p, m = p[ok], m[ok]
    out: dict[str, float] = {"n": float(len(p))}
    if len(p) == 0:
        return out
    rel = np.abs(p - m) / m
    out["mape"] = float(100.0 * rel.mean())
    out["within_band"] = float((rel <= band + 1e-12).mean())
    if len(p) >= 2:
        from scipy.stats import kendalltau

        tau = kendalltau(p, m).statistic
        if tau is not None and math.isfinite(tau):
            out["kendall_tau"] = float(tau)
    return out


def parity_data(measured: dict[str, float] | None = None,
                predict: Callable[[list[str]], Sequence[float]] | None = None,
                retrain: Sequence[dict[str, Any]] = (), *, measurement: Measurement | None = None,
                in_sample: bool = True, band: float = BAND,
                statistic: str | None = None) -> ParityData:
    """Predicted vs measured latency.

    ``measured`` maps canonical arch strings to the device's whole-network measurements (the
    table's statistic) and ``predict`` gives the predictor's latencies for a list of arch
    strings (``in_sample``: the predictor was fitted on these measurements; else held out,
    e.g. cross-validated); ``retrain`` rows contribute their ``predicted_ms`` and measured
    latency (``measured_stat_ms``, else ``measured_median_ms``).
    """
    series: list[ParitySeries] = []
    if measured and predict is not None:
        keys = sorted(measured)
        pred = [float(x) for x in predict(keys)]
        series.append(ParitySeries("profiled networks" + (" (fit data)" if in_sample else
                                                          " (held out)"),
                                   "profiled", pred, [float(measured[k]) for k in keys],
                                   [_short(k, 60) for k in keys]))
    labels = retrain_labels(retrain)
    rts = [as_retrained(r, labels) for r in retrain]
    for kind, name in (("winner", "retrained winners"), ("baseline", "baselines")):
        rows = [r for r in rts if r.kind == kind and r.predicted_ms is not None
                and r.measured_ms is not None]
        if rows:
            series.append(ParitySeries(name + " (re-measured)", kind,
                                       [r.predicted_ms for r in rows],
                                       [r.measured_ms for r in rows],
                                       [r.label for r in rows]))
        q8 = [r for r in rts if r.kind == kind and r.int8 is not None
              and r.int8.predicted_ms is not None and r.int8.measured_ms is not None]
        if q8:  # the int8 predictor against the int8 models measured in the same run
            series.append(ParitySeries(name + ", int8 (re-measured)", kind + "-int8",
                                       [r.int8.predicted_ms for r in q8],
                                       [r.int8.measured_ms for r in q8],
                                       [r.label + " int8" for r in q8]))
    vals = [v for s in series for v in (*s.predicted, *s.measured) if v > 0]
    lo = min(vals) * 0.8 if vals else 0.1
    hi = max(vals) * 1.25 if vals else 10.0
    metrics = {s.name: parity_metrics(s.predicted, s.measured, band) for s in series}
    cap = (f"Latency predicted by the predictor of {measurement.device if measurement else '?'} "
           f"vs measured; the band is +-{band * 100:.0f} % of the measured latency. ")
    if any(s.kind == "profiled" for s in series):
        cap += (f"Profiled networks: the table's statistic ({statistic or '?'}) of their "
                "measurements; " + ("predictions of the predictor fitted on them (in-sample, "
                                    "optimistic)." if in_sample else
                                    "each predicted by a predictor fitted without it (5-fold "
                                    "cross-validation; baselines and other networks held out)."))
    if rts:
        cap += (f" Retrained models: their re-measurement with trained weights "
                f"({rts[0].statistic}), predicted by the device's predictor.")
    for name, m in metrics.items():
        if m.get("n"):
            cap += (f" {name}: n {m['n']:.0f}, MAPE {m.get('mape', float('nan')):.1f} %, "
                    f"{100 * m.get('within_band', 0):.0f} % within +-{band * 100:.0f} %"
                    + (f", Kendall tau {m['kendall_tau']:.3f}" if "kendall_tau" in m else "") + ".")
    if measurement is not None:
        cap += f" Measured on {measurement.text()}."
    return ParityData(series, band, lo, hi, metrics, cap.strip(), log_ticks(lo, hi))


# ---- (c) hypervolume history ---------------------------------------------------------------------

@dataclass
class HypervolumeData:
    trials: list[int]  # x: number of complete trials so far
    numbers: list[int]  # the trial number that completed
    hypervolume: list[float]
    objectives: list[str]
    bounds: dict[str, tuple[float, float]]  # objective -> (best, worst) seen
    reference: float
    caption: str


def hypervolume_history(trials: Sequence[dict[str, Any]], objectives: Sequence[str],
                        reference: float = HV_REFERENCE,
                        score: str = "search's score", column: str = "score") -> HypervolumeData:
    """Hypervolume of the feasible COMPLETE trials after each complete trial (by number).

    Each objective is min-max normalised over all complete trials of the run, so that 0 is
    the best value seen and 1 the worst; the reference point is ``reference`` (1.1: 10 %
    beyond the worst) in every objective. The hypervolume of the whole box is thus
    ``reference ** len(objectives)`` and values of different runs are comparable only with the
    same bounds. ``column``: the run's score column (the objective "accuracy").
    """
    objectives = [o for o in objectives if o in OBJECTIVES]
    cols = [objective_column(o, column) for o in objectives]
    done = [t for t in complete_trials(trials, column)
            if all(finite(t.get(c)) is not None for c in cols)]
    bounds: dict[str, tuple[float, float]] = {}
    if not done or len(objectives) < 2:
        return HypervolumeData([], [], [], list(objectives), bounds, reference,
                               "No complete trials yet.")
    raw = np.array([[float(t[c]) for c in cols] for t in done])
    loss = np.empty_like(raw)
    for j, o in enumerate(objectives):
        col = raw[:, j]
        best, worst = (col.max(), col.min()) if OBJECTIVES[o][0] == "maximize" else (col.min(), col.max())
        bounds[o] = (float(best), float(worst))
        span = worst - best
        loss[:, j] = (col - best) / span if span != 0 else 0.0
    mins = ["minimize"] * len(objectives)
    ref = [reference] * len(objectives)
    front = np.empty((0, len(objectives)))
    hv, xs, nums, cur = [], [], [], 0.0
    for i, t in enumerate(done):
        if t.get("feasible") is not False:
            p = loss[i]
            dominated = len(front) and bool(np.any(np.all(front <= p, axis=1)))
            if not dominated:
                front = np.vstack([front, p])
                front = front[pareto_mask(front, mins)]
                cur = hypervolume(front, mins, ref)
        xs.append(i + 1)
        nums.append(int(t.get("number", i)))
        hv.append(cur)
    names = ", ".join(f"{c} ({OBJECTIVES[o][0][:3]})" for o, c in zip(objectives, cols, strict=True))
    cap = (f"Hypervolume of the feasible trials' front after each complete trial, objectives "
           f"{names} min-max normalised over all {len(done)} complete trials (0 = best seen, "
           f"1 = worst seen), reference point {reference:g} in every objective (the whole box "
           f"is {reference ** len(objectives):.3g}). Computed with hwnas.search.hypervolume "
           f"(Optuna's exact WFG algorithm) on predicted latency and the {score}.")
    return HypervolumeData(xs, nums, hv, list(objectives), bounds, reference, cap)


# ---- (d) tables ------------------------------------------------------------------------------------

@dataclass
class TableData:
    title: str
    columns: list[str]
    rows: list[list[str]]
    titles: list[list[str]]  # per cell: full text for a tooltip ('' = none)
    caption: str
    id: str = "table"  # the <table> id in report.html


def results_table(retrain: Sequence[dict[str, Any]], measurement: Measurement | None = None,
                  drift: dict[str, Any] | None = None, correct: bool = False) -> TableData:
    """The retrained winners and baselines, winners first; ``drift`` (retrain.json's: the
    measurement's sentinels, :mod:`hwnas.profiling.drift`) is told beside the errors, and with
    ``correct`` a column gives the drift-corrected prediction (predicted x drift)."""
    from ..profiling.drift import Drift, corrected_error, note

    dr = Drift.from_dict(drift) if drift else None
    corr = dr.median if dr is not None and correct else None
    labels = retrain_labels(retrain)
    rts = [as_retrained(r, labels) for r in retrain]
    stat = rts[0].statistic if rts else "?"
    cols = ["model", "kind", "test accuracy (trained)", f"measured ({stat})", "median (IQR, n)",
            "predicted", "error", "params", "MACs", "peak act.", "arch"]
    if corr is not None:
        cols.insert(7, f"drift-corrected (x{corr:.3f}, error)")
    q8 = any_int8(rts)  # hwnas retrain --int8: both precisions side by side
    prec = any(rt.precision for rt in rts)
    if q8:
        cols[cols.index("params"):cols.index("params")] = int8_columns(stat)
    if prec:
        cols.insert(2, "precision (search)")
    wcol = cols.index("test accuracy (trained)") + 1  # where the weights came from, their cost
    if any(r.get("weights") for r in retrain):  # retrain.csv since --from-supernet
        cols.insert(wcol, "weights (train s)")
    rows, titles = [], []
    order = sorted(zip(retrain, rts, strict=True),
                   key=lambda x: (x[1].kind != "winner", x[1].measured_ms or math.inf))
    for r, rt in order:
        acc = (f"{fmt_acc(r.get('acc_mean'), r.get('acc_std'), rt.n_seeds, with_n=False)}"
               f" ({_seeds(r.get('seeds'))}, {_epochs(r)} ep.)")
        med = (f"{fmt(rt.median_ms, '.3f')} ms ({fmt(rt.iqr_ms, '.3f')}, "
               f"{r.get('measured_n') or '?'})")
        row = [rt.label, rt.kind, acc, fmt(rt.measured_ms, ".3f", " ms"), med,
               fmt(rt.predicted_ms, ".3f", " ms"), fmt(rt.error_pct, "+.1f", " %"),
               fmt_count(r.get("params")), fmt_count(r.get("macs")),
               fmt_bytes(r.get("peak_act_bytes")), rt.arch]
        if corr is not None:
            p = None if rt.predicted_ms is None else rt.predicted_ms * corr
            row.insert(7, f"{fmt(p, '.3f', ' ms')} "
                          f"({fmt(corrected_error(rt.predicted_ms, rt.measured_ms, corr), '+.1f', ' %')})")
        if q8:
            i = len(row) - 4  # before params, MACs, peak act., arch
            row[i:i] = int8_cells(rt.int8)
        if prec:
            row.insert(2, rt.precision or "-")
        if len(cols) > len(row):
            row.insert(wcol, f"{r.get('weights') or 'stand-alone'} ({fmt(r.get('train_s'), '.1f')})")
        rows.append(row)
        titles.append([rt.name if rt.name != rt.label else ""] + [""] * (len(row) - 1))
    cap = ("Winners (Pareto-front archs, W1... by measured latency) and baselines trained with "
           "the same recipe; accuracy on the test split, mean +- std over seeds (n=1: one "
           "seed, no spread). Latency: the "
           f"ONNX model with trained weights timed on the device -- the {stat} of the samples "
           "(the statistic the predictor predicts), and median, IQR, number of samples; "
           "error = (predicted - measured) / measured. ONNX files: runs/RUN/models/.")
    cap += (INT8_TABLE_NOTE if q8 else "") + (CHOSEN_NOTE if prec else "")
    if dr is not None:
        cap += " " + note(dr)[0].upper() + note(dr)[1:] + "."
        if corr is not None:
            cap += " Drift-corrected = predicted x drift (what the table predicts for the device " \
                   "as fast as it ran in this measurement)."
    if measurement is not None:
        cap += f" Measured on {measurement.text()}."
    return TableData("Retrained winners and baselines", cols, rows, titles, cap, "table-retrain")


def pareto_table(pareto: Sequence[dict[str, Any]], config: dict[str, Any]) -> TableData:
    """The run's Pareto front as the search saw it (estimates): one row per arch."""
    score, column = score_label(config), config_score_column(config)
    mark = marks_precision(pareto, config)
    cols = ["trial", *(["precision"] if mark else []), score, "latency (predicted)", "params",
            "MACs", "peak act.", "arch file"]
    rows, titles = [], []
    for r in pareto:
        rows.append([str(r.get("trial", "")), *([point_precision(r, config)] if mark else []),
                     fmt(r.get(column)), fmt(r.get("latency_ms"), ".3f", " ms"),
                     fmt_count(r.get("params")), fmt_count(r.get("macs")),
                     fmt_bytes(r.get("memory_bytes")), _short(r.get("file", ""), 56)])
        titles.append([""] * (len(cols) - 1) + [str(r.get("arch", ""))])
    n = len({r.get("arch") for r in pareto})
    cap = (f"Feasible non-dominated archs over {', '.join(config.get('objectives') or [])}, one "
           f"row per distinct arch{' and precision' if mark else ''} (the trial that first scored it; pareto.csv; arch files in "
           f"winners/). {score[0].upper() + score[1:]}: what the search's estimator gave.")
    return TableData(f"Pareto front (search estimates): {n} arch{'s' if n != 1 else ''}", cols,
                     rows, titles, cap, "table-pareto")


# ---- everything the page shows --------------------------------------------------------------

@dataclass
class ReportData:
    run: str
    run_dir: Path
    config: dict[str, Any]
    measurement: Measurement
    objective: ObjectiveSpaceData
    parity: ParityData
    hypervolume: HypervolumeData
    tables: list[TableData]
    notes: list[str]  # what is missing (one line each)
    n_trials: int
    n_complete: int
    has_retrain: bool
    n_front: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    ablation: Any = None  # AblationData of the device's latency predictor, or None
    n_archs: int = 0  # distinct archs among the complete trials
