"""The offline HTML report of a run: figure *data* functions, drawing, and the page.

Optuna's visualization shape: each figure's data is computed by one function that returns
plain dataclasses (tested without plotting or a browser), and drawn by another that only
turns that data into a plotly figure. :func:`build_report` gathers everything a run folder
holds; :func:`render_html` lays it out as one self-contained page (plotly's JavaScript
inlined once, no network needed); :func:`write_report` writes ``runs/RUN/report.html``.

The figures:

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

import csv
import html
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HwnasError
from .io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "FIGURE_IDS", "HV_REFERENCE", "Measurement", "PointGroup", "Retrained", "ObjectiveSpaceData",
    "ParityData", "ParitySeries", "HypervolumeData", "TableData", "ReportData", "ReportResult",
    "measurement_info", "objective_space_data", "parity_data", "hypervolume_history",
    "results_table", "pareto_table", "read_retrain", "build_report", "device_parity",
    "parity_metrics", "draw_objective_space",
    "draw_parity", "draw_hypervolume", "render_html", "write_report", "export_images",
]

#: the <div> ids of the figures in report.html (the browser test looks them up)
FIGURE_IDS = {"objective": "fig-objective", "parity": "fig-parity", "hypervolume": "fig-hypervolume"}
#: reference point of the hypervolume, in normalised objectives (0 = best seen, 1 = worst seen)
HV_REFERENCE = 1.1
BAND = 0.10  # the parity plot's band: +-10 %

_COLORS = {"front": "#d62728", "feasible": "#1f77b4", "infeasible": "#b0b0b0",
           "winner": "#d62728", "baseline": "#2ca02c", "profiled": "#1f77b4"}


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
    device's :class:`~hwnas.lut.LatencyTable` (used where the config says nothing)."""
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

    @property
    def n_points(self) -> int:
        return sum(len(g.x) for g in self.groups)


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt_count(v: Any, unit: str = "") -> str:
    x = _f(v)
    if x is None:
        return "-"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3f} M{unit}"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.1f} k{unit}"
    return f"{x:.0f}{(' ' + unit) if unit else ''}"


def _fmt_bytes(v: Any) -> str:
    x = _f(v)
    return "-" if x is None else f"{x / 2**20:.2f} MiB"


def _fmt(v: Any, spec: str = ".4g", suffix: str = "") -> str:
    x = _f(v)
    return "-" if x is None else f"{x:{spec}}{suffix}"


def _short(s: str, n: int = 70) -> str:
    s = str(s or "")
    return s if len(s) <= n else s[: n - 3] + "..."


def _wrap(s: str, n: int = 60) -> str:
    """A long arch string broken into lines for hover boxes."""
    s = str(s or "")
    return "<br>".join(s[i:i + n] for i in range(0, len(s), n)) or "-"


def complete_trials(trials: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The COMPLETE trials with finite accuracy and latency, by number."""
    out = [t for t in trials if t.get("state") == "COMPLETE"
           and _f(t.get("accuracy")) is not None and _f(t.get("latency_ms")) is not None]
    return sorted(out, key=lambda t: t.get("number", 0))


def _trial_hover(t: dict[str, Any], objectives: Sequence[str], front: bool) -> str:
    lines = [f"<b>trial {t.get('number')}</b>" + (" (Pareto front)" if front else "")
             + (f" seed: {t['seed']}" if t.get("seed") else "")
             + ("" if t.get("feasible") is not False else " <i>infeasible</i>"),
             f"accuracy (estimate): {_fmt(t.get('accuracy'))}",
             f"latency (predicted): {_fmt(t.get('latency_ms'), '.3f', ' ms')}",
             f"params: {_fmt_count(t.get('params'))}   MACs: {_fmt_count(t.get('macs'))}",
             f"peak act. memory: {_fmt_bytes(t.get('memory_bytes'))}",
             "objectives: " + ", ".join(objectives),
             _wrap(t.get("arch", ""))]
    return "<br>".join(lines)


def objective_space_data(trials: Sequence[dict[str, Any]], pareto: Sequence[dict[str, Any]],
                         config: dict[str, Any], retrain: Sequence[dict[str, Any]] = (),
                         measurement: Measurement | None = None) -> ObjectiveSpaceData:
    """Every COMPLETE trial as (predicted latency, estimated accuracy), split into the Pareto
    front (``pareto`` rows' trials and archs), other feasible and infeasible trials; and the
    retrained models of ``retrain`` (rows of ``retrain.csv``)."""
    objectives = list(config.get("objectives") or [])
    done = complete_trials(trials)
    front_trials = {r.get("trial") for r in pareto}
    front_archs = {r.get("arch") for r in pareto}
    groups = {k: PointGroup(n, k, [], [], [], []) for k, n in
              (("front", "Pareto front"), ("feasible", "feasible trials"),
               ("infeasible", "infeasible trials"))}
    for t in done:
        feasible = t.get("feasible") is not False
        on_front = feasible and (t.get("number") in front_trials or t.get("arch") in front_archs)
        g = groups["front" if on_front else "feasible" if feasible else "infeasible"]
        g.x.append(float(t["latency_ms"]))
        g.y.append(float(t["accuracy"]))
        g.numbers.append(int(t.get("number", -1)))
        g.hover.append(_trial_hover(t, objectives, on_front))
    labels = retrain_labels(retrain)
    retrained = [_retrained(r, labels) for r in retrain]
    est = config.get("accuracy_estimator") or config.get("accuracy") or "?"
    budget = _f(config.get("latency_budget_ms"))
    cap = (f"{len(done)} complete trials of {config.get('space', '?')} at resolution "
           f"{config.get('resolution', '?')}: latency predicted by the latency predictor of "
           f"{config.get('device', '?')}, accuracy estimated ({est} on {config.get('data', '?')}). "
           f"The front is over the run's objectives ({', '.join(objectives) or '?'})")
    if len(objectives) > 2 or set(objectives) != {"accuracy", "latency"}:
        cap += ", shown here projected on accuracy x latency"
    cap += "."
    if budget is not None:
        cap += f" Dashed line: the latency budget, {budget:g} ms (trials beyond a budget are grey)."
    if retrained:
        cap += (" Lower panel: the retrained winners and baselines, trained accuracy (mean +- std "
                "over seeds) vs latency; each arrow goes from the predicted latency to the "
                f"latency measured on the device ({retrained[0].statistic} of the samples, the "
                "statistic the predictor predicts; median and IQR in the hover).")
    if measurement is not None:
        cap += f" Measured on {measurement.text()}."
    return ObjectiveSpaceData("latency (ms)", f"accuracy estimate ({est})",
                              [groups["infeasible"], groups["feasible"], groups["front"]],
                              retrained, budget, objectives, len(done), cap)


def retrain_labels(retrain: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Short labels: winners W1, W2, ... by measured latency; baselines keep their name."""
    ws = sorted((r for r in retrain if r.get("kind") == "winner"),
                key=lambda r: (_f(r.get("measured_median_ms")) or math.inf, str(r.get("name"))))
    out = {str(r.get("name")): f"W{i}" for i, r in enumerate(ws, 1)}
    for r in retrain:
        out.setdefault(str(r.get("name")), str(r.get("name")))
    return out


def _seeds(v: Any) -> str:
    s = [x for x in str(v or "").replace(",", ";").split(";") if x.strip()]
    return f"{len(s)} seed{'s' if len(s) != 1 else ''}" if s else "? seeds"


def _retrained(r: dict[str, Any], labels: dict[str, str] | None = None) -> Retrained:
    """One retrain.csv row. The measured value compared with the prediction is the row's
    ``measured_stat_ms`` (the statistic the device's table and predictor use) when present,
    else its median."""
    name = str(r.get("name", ""))
    pred, median = _f(r.get("predicted_ms")), _f(r.get("measured_median_ms"))
    stat_ms = _f(r.get("measured_stat_ms"))
    meas, stat = (stat_ms, str(r.get("statistic") or "?")) if stat_ms is not None else (median, "median")
    err = _f(r.get("error_pct"))
    if err is None and pred is not None and meas:
        err = 100.0 * (pred - meas) / meas
    label = (labels or {}).get(name, name)
    hover = "<br>".join([
        f"<b>{html.escape(label)}</b> ({r.get('kind', '?')})"
        + (f" {html.escape(name)}" if label != name else ""),
        f"accuracy (trained): {_fmt(r.get('acc_mean'), '.4f')} +- {_fmt(r.get('acc_std'), '.4f')}"
        f" over {_seeds(r.get('seeds'))}, {r.get('epochs') or '?'} epoch(s)",
        f"latency predicted {_fmt(pred, '.3f', ' ms')}, measured {_fmt(meas, '.3f', ' ms')} "
        f"({stat}); error {_fmt(err, '+.1f', ' %')}",
        f"measured median {_fmt(median, '.3f', ' ms')}, IQR {_fmt(r.get('measured_iqr_ms'), '.3f', ' ms')}"
        f", n {r.get('measured_n') or '?'}",
        f"params: {_fmt_count(r.get('params'))}   MACs: {_fmt_count(r.get('macs'))}   "
        f"peak act.: {_fmt_bytes(r.get('peak_act_bytes'))}",
        _wrap(r.get("arch", ""))])
    return Retrained(name, label, str(r.get("kind", "")), str(r.get("arch", "")), pred, meas, stat,
                     median, _f(r.get("measured_iqr_ms")), _f(r.get("acc_mean")),
                     _f(r.get("acc_std")), err, hover)


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
    rts = [_retrained(r, labels) for r in retrain]
    for kind, name in (("winner", "retrained winners"), ("baseline", "baselines")):
        rows = [r for r in rts if r.kind == kind and r.predicted_ms is not None
                and r.measured_ms is not None]
        if rows:
            series.append(ParitySeries(name + " (re-measured)", kind,
                                       [r.predicted_ms for r in rows],
                                       [r.measured_ms for r in rows],
                                       [r.label for r in rows]))
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
    return ParityData(series, band, lo, hi, metrics, cap.strip())


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
                        reference: float = HV_REFERENCE) -> HypervolumeData:
    """Hypervolume of the feasible COMPLETE trials after each complete trial (by number).

    Each objective is min-max normalised over all complete trials of the run, so that 0 is
    the best value seen and 1 the worst; the reference point is ``reference`` (1.1: 10 %
    beyond the worst) in every objective. The hypervolume of the whole box is thus
    ``reference ** len(objectives)`` and values of different runs are comparable only with the
    same bounds.
    """
    from .search import OBJECTIVES, hypervolume, pareto_mask

    objectives = [o for o in objectives if o in OBJECTIVES]
    done = [t for t in complete_trials(trials)
            if all(_f(t.get(OBJECTIVES[o][1])) is not None for o in objectives)]
    bounds: dict[str, tuple[float, float]] = {}
    if not done or len(objectives) < 2:
        return HypervolumeData([], [], [], list(objectives), bounds, reference,
                               "No complete trials yet.")
    raw = np.array([[float(t[OBJECTIVES[o][1]]) for o in objectives] for t in done])
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
    names = ", ".join(f"{o} ({OBJECTIVES[o][0][:3]})" for o in objectives)
    cap = (f"Hypervolume of the feasible trials' front after each complete trial, objectives "
           f"{names} min-max normalised over all {len(done)} complete trials (0 = best seen, "
           f"1 = worst seen), reference point {reference:g} in every objective (the whole box "
           f"is {reference ** len(objectives):.3g}). Computed with hwnas.search.hypervolume "
           "(Optuna's exact WFG algorithm) on predicted latency and estimated accuracy.")
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


def results_table(retrain: Sequence[dict[str, Any]], measurement: Measurement | None = None
                  ) -> TableData:
    """The retrained winners and baselines, winners first."""
    labels = retrain_labels(retrain)
    rts = [_retrained(r, labels) for r in retrain]
    stat = rts[0].statistic if rts else "?"
    cols = ["model", "kind", "accuracy (trained)", f"measured ({stat})", "median (IQR, n)",
            "predicted", "error", "params", "MACs", "peak act.", "arch"]
    rows, titles = [], []
    order = sorted(zip(retrain, rts, strict=True),
                   key=lambda x: (x[1].kind != "winner", x[1].measured_ms or math.inf))
    for r, rt in order:
        acc = (f"{_fmt(r.get('acc_mean'), '.4f')} +- {_fmt(r.get('acc_std'), '.4f')}"
               f" ({_seeds(r.get('seeds'))}, {r.get('epochs') or '?'} ep.)")
        med = (f"{_fmt(rt.median_ms, '.3f')} ms ({_fmt(rt.iqr_ms, '.3f')}, "
               f"{r.get('measured_n') or '?'})")
        rows.append([rt.label, rt.kind, acc, _fmt(rt.measured_ms, ".3f", " ms"), med,
                     _fmt(rt.predicted_ms, ".3f", " ms"), _fmt(rt.error_pct, "+.1f", " %"),
                     _fmt_count(r.get("params")), _fmt_count(r.get("macs")),
                     _fmt_bytes(r.get("peak_act_bytes")), rt.arch])
        titles.append([rt.name if rt.name != rt.label else ""] + [""] * 10)
    cap = ("Winners (Pareto-front archs, W1... by measured latency) and baselines trained with "
           "the same recipe; accuracy on the test split, mean +- std over seeds. Latency: the "
           f"ONNX model with trained weights timed on the device -- the {stat} of the samples "
           "(the statistic the predictor predicts), and median, IQR, number of samples; "
           "error = (predicted - measured) / measured. ONNX files: runs/RUN/models/.")
    if measurement is not None:
        cap += f" Measured on {measurement.text()}."
    return TableData("Retrained winners and baselines", cols, rows, titles, cap, "table-retrain")


def pareto_table(pareto: Sequence[dict[str, Any]], config: dict[str, Any]) -> TableData:
    """The run's Pareto front as the search saw it (estimates)."""
    cols = ["trial", "accuracy (estimate)", "latency (predicted)", "params", "MACs", "peak act.",
            "arch file"]
    rows, titles = [], []
    for r in pareto:
        rows.append([str(r.get("trial", "")), _fmt(r.get("accuracy")),
                     _fmt(r.get("latency_ms"), ".3f", " ms"), _fmt_count(r.get("params")),
                     _fmt_count(r.get("macs")), _fmt_bytes(r.get("memory_bytes")),
                     _short(r.get("file", ""), 56)])
        titles.append([""] * 6 + [str(r.get("arch", ""))])
    cap = (f"Feasible non-dominated trials over {', '.join(config.get('objectives') or [])} "
           "(pareto.csv; arch files in winners/).")
    return TableData("Pareto front (search estimates)", cols, rows, titles, cap, "table-pareto")


# ---- gathering a run -------------------------------------------------------------------------------

_RETRAIN_FLOATS = {"predicted_ms", "measured_median_ms", "measured_iqr_ms", "error_pct",
                   "acc_mean", "acc_std", "params", "macs", "peak_act_bytes"}
_RETRAIN_INTS = {"measured_n", "seeds", "epochs"}


def read_retrain(run_dir: Path) -> list[dict[str, Any]] | None:
    """Rows of ``run_dir/retrain.csv`` (None if there is none): :func:`hwnas.retrain.load_retrain`
    when available, else read here with the documented columns."""
    p = Path(run_dir) / "retrain.csv"
    if not p.is_file():
        return None
    try:
        from .retrain import load_retrain
    except ImportError:
        load_retrain = None
    if load_retrain is not None:
        try:
            return list(load_retrain(run_dir))
        except HwnasError:
            raise
        except Exception as e:  # an older/newer signature: fall back to reading the CSV
            log.debug("load_retrain(%s): %s; reading the CSV directly", run_dir, e)
    try:
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:
        raise HwnasError(f"{p}: unreadable ({e})") from None
    out = []
    for r in rows:
        d: dict[str, Any] = {}
        for k, v in r.items():
            if k is None:
                continue
            if v in ("", None):
                d[k] = None
            elif k in _RETRAIN_INTS:
                d[k] = int(float(v)) if _f(v) is not None else None
            elif k in _RETRAIN_FLOATS:
                d[k] = _f(v)
            else:
                d[k] = v
        out.append(d)
    return out


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


def device_parity(device: str, table: Any, spaces: Sequence[Any] = ()
                  ) -> tuple[dict[str, float], Callable | None, bool, str]:
    """(measured networks, predict(arch strings), in-sample?, note) for ``device``: held-out
    predictions (:func:`hwnas.predictor.evaluate`, 5-fold) where possible, else the predictions
    of the predictor fitted on all of them. Networks of ``spaces`` (SearchSpace objects) are
    cross-validated; baselines and other networks are predicted by a predictor fitted on all
    the space's networks."""
    if table is None or not getattr(table, "networks", None):
        return {}, None, True, f"device '{device}' has no whole-network measurements"
    stat = table.statistic
    blocks = {k: s.value(stat) for k, s in table.blocks.items()}
    nets = {k: s.value(stat) for k, s in table.networks.items()}
    try:
        import json

        from .lut import table_dir
        from .predictor import PREDICTOR_FILE, evaluate, network_groups

        settings: dict[str, Any] = {}
        stored = table_dir(device) / PREDICTOR_FILE
        if stored.is_file():
            settings = dict(json.loads(stored.read_text()).get("settings") or {})
        settings["statistic"] = stat
        groups = network_groups(nets, list(spaces))
        if sum(g not in ("baselines", "other") for g in groups.values()) < 10:
            # no (or too few) networks of the run's space: cross-validate them all
            groups = {k: ("baselines" if g == "baselines" else "networks") for k, g in groups.items()}
        ev = evaluate(blocks, nets, groups, settings=settings)
        held = {k: float(p["full"]) for k, p in ev.predictions.items()
                if _f(p.get("full")) is not None}
        if held:
            return ({k: nets[k] for k in held}, lambda keys: [held[k] for k in keys], False, "")
    except HwnasError as e:
        log.info("held-out predictions for %s: %s; showing the in-sample fit", device, e)
    except Exception as e:  # the predictor module is missing or changed
        log.debug("held-out predictions for %s", device, exc_info=True)
        log.info("held-out predictions for %s: %s; showing the in-sample fit", device, e)
    try:
        from .arch import parse_string
        from .predictor import LatencyPredictor

        pred = LatencyPredictor.for_device(device)
    except HwnasError as e:
        return {}, None, True, f"no latency predictor for '{device}' ({e})"
    except Exception as e:  # the predictor module is missing or changed
        log.debug("predictor of %s: %s", device, e, exc_info=True)
        return {}, None, True, f"no latency predictor for '{device}' ({type(e).__name__}: {e})"

    def predict(keys: list[str]) -> list[float]:
        archs = [parse_string(k) for k in keys]
        return [float(x) for x in np.asarray(pred.predict(archs), float).reshape(-1)]

    return nets, predict, True, ""


def _run_spaces(cfg: dict[str, Any]) -> list[Any]:
    """The run's space, as defined and with the run's class count (what its trials are)."""
    try:
        from dataclasses import replace

        from .space import load_space

        sp = load_space(cfg["space"])
    except (HwnasError, KeyError):
        return []
    out = [sp]
    if cfg.get("classes") and cfg["classes"] != sp.classes:
        out.append(replace(sp, classes=int(cfg["classes"])))
    return out


def build_report(run: str | Path, *, predictor: bool = True) -> ReportData:
    """Everything the report shows, from ``runs/RUN`` (or a run folder) and the device's table.

    HwnasError if the run does not exist; what is missing (no trials, no retrain results, no
    device table or predictor) becomes a note and the report shows what exists.
    """
    from .search import load_run

    r = load_run(run)
    cfg = r.config
    device = str(cfg.get("device", ""))
    notes: list[str] = []
    table = None
    if device:
        try:
            from .lut import LatencyTable

            if LatencyTable.exists(device):
                table = LatencyTable.load(device)
        except HwnasError as e:
            notes.append(f"the latency table of '{device}' cannot be read: {e}")
    meas = measurement_info(cfg, table)
    retrain = read_retrain(r.path)
    done = complete_trials(r.trials)
    if not done:
        notes.append(f"run '{r.name}' has no complete trials yet (hwnas search ... --name {r.name})")
    if retrain is None:
        notes.append(f"run '{r.name}' has no retrain results yet (hwnas retrain {r.name})")
    obj = objective_space_data(r.trials, r.pareto, cfg, retrain or [], meas)
    measured, predict, in_sample, why = ({}, None, True, "")
    if predictor and device:
        measured, predict, in_sample, why = device_parity(device, table, _run_spaces(cfg))
    if why:
        notes.append(f"parity plot without profiled networks: {why}")
    par = parity_data(measured, predict, retrain or [], measurement=meas, in_sample=in_sample,
                      statistic=getattr(table, "statistic", None))
    hv = hypervolume_history(r.trials, r.objectives)
    tables = []
    if retrain is not None:
        tables.append(results_table(retrain, meas))
    tables.append(pareto_table(r.pareto, cfg))
    return ReportData(r.name, r.path, cfg, meas, obj, par, hv, tables, notes, len(r.trials),
                      len(done), retrain is not None, len(r.pareto), dict(cfg.get("versions") or {}))


# ---- drawing ---------------------------------------------------------------------------------------

def draw_objective_space(d: ObjectiveSpaceData):
    """The trials (upper panel) and the retrained models (lower panel, if any) on one latency axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    two = bool(d.retrained)
    fig = make_subplots(rows=2 if two else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.62, 0.38] if two else None,
                        subplot_titles=("search trials (estimates)",
                                        "retrained: trained accuracy vs latency") if two else None)
    styles = {"front": dict(size=10, color=_COLORS["front"], line=dict(width=1, color="black")),
              "feasible": dict(size=6, color=_COLORS["feasible"], opacity=0.6),
              "infeasible": dict(size=6, color=_COLORS["infeasible"], opacity=0.6)}
    for g in d.groups:
        fig.add_trace(go.Scatter(
            x=g.x, y=g.y, mode="markers", name=f"{g.name} ({len(g.x)})", marker=styles[g.kind],
            hovertext=g.hover, hoverinfo="text", customdata=g.numbers, meta="trials",
            legendgroup=g.kind), row=1, col=1)
    if d.retrained:
        for kind, label in (("winner", "retrained winners"), ("baseline", "baselines")):
            rs = [r for r in d.retrained if r.kind == kind]
            if not rs:
                continue
            color = _COLORS[kind]
            fig.add_trace(go.Scatter(
                x=[r.predicted_ms for r in rs], y=[r.acc_mean for r in rs], mode="markers",
                name=f"{label}: predicted latency", meta="predicted", legendgroup=kind,
                marker=dict(size=10, color="white", symbol="circle-open", line=dict(width=2, color=color)),
                hovertext=[r.hover for r in rs], hoverinfo="text"), row=2, col=1)
            fig.add_trace(go.Scatter(
                x=[r.measured_ms for r in rs], y=[r.acc_mean for r in rs], mode="markers+text",
                name=f"{label}: measured latency", meta="measured", legendgroup=kind,
                text=[r.label for r in rs], textposition="top center", textfont=dict(size=10),
                marker=dict(size=11, color=color, symbol="diamond" if kind == "baseline" else "star"),
                error_y=dict(type="data", array=[r.acc_std or 0 for r in rs], visible=True,
                             color=color),
                hovertext=[r.hover for r in rs], hoverinfo="text"), row=2, col=1)
            for r in rs:
                if r.predicted_ms is None or r.measured_ms is None or r.acc_mean is None:
                    continue
                fig.add_annotation(x=r.measured_ms, y=r.acc_mean, ax=r.predicted_ms, ay=r.acc_mean,
                                   xref="x2", yref="y2", axref="x2", ayref="y2", showarrow=True,
                                   arrowhead=2, arrowsize=1.2, arrowwidth=1.5, arrowcolor=color,
                                   text="")
    if d.budget_ms is not None:
        fig.add_vline(x=d.budget_ms, line=dict(color="black", dash="dash", width=1.5))
        fig.add_annotation(x=d.budget_ms, y=0.99, xref="x", yref="y domain", xanchor="left",
                           yanchor="top", xshift=4, text=f"budget {d.budget_ms:g} ms",
                           showarrow=False, font=dict(size=11))
    fig.update_yaxes(title_text=d.y_label, row=1, col=1)
    if two:
        fig.update_yaxes(title_text="test accuracy (trained)", row=2, col=1)
        fig.update_xaxes(title_text=d.x_label + " -- predicted (open) -> measured (filled)",
                         row=2, col=1)
    else:
        fig.update_xaxes(title_text=d.x_label + " (predicted)", row=1, col=1)
    fig.update_layout(height=760 if two else 520, template="plotly_white", hovermode="closest",
                      margin=dict(l=70, r=20, t=50, b=60),
                      legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0))
    return fig


def draw_parity(d: ParityData):
    import plotly.graph_objects as go

    fig = go.Figure()
    lo, hi, b = d.lo, d.hi, d.band
    xs = list(np.geomspace(lo, hi, 50))
    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[x * (1 + b) for x in xs] + [x * (1 - b) for x in xs[::-1]],
                             fill="toself", fillcolor="rgba(44,160,44,0.12)",
                             line=dict(width=0), hoverinfo="skip", meta="band",
                             name=f"+-{b * 100:.0f} %"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="black", width=1),
                             hoverinfo="skip", name="predicted = measured", meta="diagonal"))
    styles = {"profiled": dict(size=6, color=_COLORS["profiled"], opacity=0.7),
              "winner": dict(size=12, color=_COLORS["winner"], symbol="star"),
              "baseline": dict(size=11, color=_COLORS["baseline"], symbol="diamond")}
    for s in d.series:
        fig.add_trace(go.Scatter(
            x=s.measured, y=s.predicted, mode="markers", name=f"{s.name} ({len(s.measured)})",
            marker=styles.get(s.kind, {}), meta="parity", text=s.labels,
            hovertemplate="%{text}<br>measured %{x:.3f} ms<br>predicted %{y:.3f} ms<extra></extra>"))
    fig.update_xaxes(title_text="measured latency (ms)", type="log", range=[math.log10(lo), math.log10(hi)])
    fig.update_yaxes(title_text="predicted latency (ms)", type="log", range=[math.log10(lo), math.log10(hi)],
                     scaleanchor="x", scaleratio=1)
    # square and fixed-size: equal log scales on both axes keep the diagonal at 45 degrees
    fig.update_layout(height=640, width=720, template="plotly_white",
                      margin=dict(l=70, r=20, t=30, b=60),
                      legend=dict(x=0.99, y=0.01, xanchor="right", yanchor="bottom",
                                  bgcolor="rgba(255,255,255,0.8)"))
    return fig


def draw_hypervolume(d: HypervolumeData):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=d.trials, y=d.hypervolume, mode="lines", line=dict(shape="hv", width=2), meta="hypervolume",
        name="hypervolume", customdata=d.numbers,
        hovertemplate="%{x} complete trials (last: trial %{customdata})<br>"
                      "hypervolume %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title_text="complete trials")
    fig.update_yaxes(title_text=f"hypervolume (normalised, ref. {d.reference:g})", rangemode="tozero")
    fig.update_layout(height=380, template="plotly_white", margin=dict(l=70, r=20, t=30, b=60))
    return fig


# ---- the page --------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:1.5em;margin:.2em 0} h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.92em;line-height:1.5}
.note{background:#fff6d6;border:1px solid #e8d48a;padding:6px 10px;margin:6px 0;border-radius:4px}
.fig{background:#fff;border:1px solid #e3e3e3;border-radius:4px;padding:4px}
.caption{color:#444;font-size:.9em;margin:.4em 0 1em;line-height:1.45}
table{border-collapse:collapse;background:#fff;font-size:.88em;width:100%}
th,td{border:1px solid #ddd;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0} td.arch{font-family:monospace;font-size:.85em;color:#444;word-break:break-all}
footer{color:#777;font-size:.8em;margin-top:2em}
"""


def _table_html(t: TableData, table_id: str) -> str:
    if not t.rows:
        body = f'<tr><td colspan="{len(t.columns)}"><i>none</i></td></tr>'
    else:
        body = "\n".join(
            "<tr>" + "".join(
                f'<td{" class=arch" if c.startswith("arch") else ""}'
                f'{(" title=" + chr(34) + html.escape(tt) + chr(34)) if tt else ""}>'
                f"{html.escape(v)}</td>"
                for c, v, tt in zip(t.columns, row, tits, strict=True)) + "</tr>"
            for row, tits in zip(t.rows, t.titles, strict=True))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    return (f'<h2>{html.escape(t.title)}</h2>\n<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>\n<p class=caption>{html.escape(t.caption)}</p>")


def _fig_html(fig, div_id: str, first: bool) -> str:
    import plotly.io as pio

    return pio.to_html(fig, full_html=False, include_plotlyjs=bool(first), div_id=div_id,
                       include_mathjax=False, validate=True,
                       config={"displaylogo": False, "responsive": True,
                               "toImageButtonOptions": {"filename": div_id, "scale": 2}})


def render_html(d: ReportData, figures: dict[str, Any] | None = None) -> str:
    """The whole report page as one string: inline CSS, plotly's JavaScript inlined once."""
    figs = figures or draw_figures(d)
    c = d.config
    title = f"hwnas report: {d.run}"
    e = html.escape
    meta = [
        f"space <b>{e(str(c.get('space', '?')))}</b> at resolution {e(str(c.get('resolution', '?')))}"
        f", {e(str(c.get('classes', '?')))} classes; device <b>{e(d.measurement.device)}</b>; "
        f"objectives {e(', '.join(c.get('objectives') or []))}; sampler "
        f"{e(str((c.get('settings') or {}).get('sampler', '?')))}; accuracy estimator "
        f"{e(str(c.get('accuracy_estimator') or c.get('accuracy', '?')))} on {e(str(c.get('data', '?')))}",
        f"{d.n_complete} complete trials ({d.n_trials} in total)"
        + (f"; latency budget {c['latency_budget_ms']:g} ms" if c.get("latency_budget_ms") else "")
        + (f"; max params {c['max_params']:,}" if c.get("max_params") else ""),
        f"latency measured on: {e(d.measurement.text())}",
        f"run created {e(str(c.get('created', '?')))}, updated {e(str(c.get('updated', '?')))}; "
        f"report written {e(time.strftime('%Y-%m-%d %H:%M:%S %z'))}",
    ]
    parts = [f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width, initial-scale=1'>"
             f"<title>{e(title)}</title><style>{_CSS}</style></head><body><main>",
             f"<h1>{e(title)}</h1>", "<div class=meta>" + "<br>".join(meta) + "</div>"]
    for n in d.notes:
        parts.append(f"<div class=note>{e(n)}</div>")
    sections = [("objective", "Trials in objective space", d.objective.caption),
                ("parity", "Latency predictor: predicted vs measured", d.parity.caption),
                ("hypervolume", "Hypervolume history", d.hypervolume.caption)]
    first = True
    for key, heading, caption in sections:
        parts.append(f"<h2>{e(heading)}</h2><div class=fig>")
        parts.append(_fig_html(figs[key], FIGURE_IDS[key], first))
        first = False
        parts.append(f"</div><p class=caption>{e(caption)}</p>")
    for t in d.tables:
        parts.append(_table_html(t, t.id))
    vers = ", ".join(f"{k} {v}" for k, v in d.versions.items())
    parts.append(f"<footer>hwnas report of {e(str(d.run_dir))}. Versions of the search: "
                 f"{e(vers) or '?'}. Plotly figures are interactive (hover, zoom, the camera "
                 f"icon saves a PNG); the page needs no network.</footer></main></body></html>")
    return "\n".join(parts)


def draw_figures(d: ReportData) -> dict[str, Any]:
    return {"objective": draw_objective_space(d.objective), "parity": draw_parity(d.parity),
            "hypervolume": draw_hypervolume(d.hypervolume)}


def export_images(figures: dict[str, Any], out_dir: Path, formats: Sequence[str]) -> list[Path]:
    """Write each figure as ``<out_dir>/<figure>.<fmt>`` with kaleido; [] (and a log line) when
    kaleido is not installed or cannot start a browser."""
    if not formats:
        return []
    try:
        import kaleido  # noqa: F401
    except ImportError:
        log.warning("kaleido is not installed: skipped the %s export (pip install kaleido)",
                    "/".join(formats))
        return []
    out = []
    for name, fig in figures.items():
        for fmt in formats:
            p = Path(out_dir) / f"{name}.{fmt}"
            try:
                data = fig.to_image(format=fmt, width=1100, height=fig.layout.height or 600)
            except Exception as e:  # kaleido present but no usable browser
                log.warning("image export failed (%s): %s", type(e).__name__,
                            (str(e).splitlines() or [""])[0])
                return out
            from .io import atomic_write_bytes

            atomic_write_bytes(p, data)
            out.append(p)
    return out


@dataclass
class ReportResult:
    path: Path
    data: ReportData
    images: list[Path]
    seconds: float


def write_report(run: str | Path, out: str | Path | None = None, *, images: Sequence[str] = (),
                 predictor: bool = True) -> ReportResult:
    """Write ``runs/RUN/report.html`` (or ``out``); with ``images`` (``png``, ``svg``) also
    ``runs/RUN/figures/*.png|svg`` where kaleido is available."""
    t0 = time.monotonic()
    d = build_report(run, predictor=predictor)
    figs = draw_figures(d)
    page = render_html(d, figs)
    path = Path(out) if out else d.run_dir / "report.html"
    try:
        atomic_write_text(path, page)
    except OSError as e:
        raise HwnasError(f"cannot write {path}: {e.strerror or e}") from None
    imgs = export_images(figs, d.run_dir / "figures", images)
    return ReportResult(path, d, imgs, time.monotonic() - t0)
