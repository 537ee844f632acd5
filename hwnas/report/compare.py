"""Several runs' Pareto fronts on one offline page (``hwnas compare RUN1 RUN2 ...``): e.g. fp32
vs int8, zero-cost vs supernet, two devices.

The fronts share one latency axis. Scores of different estimators are different quantities
(a NASWOT score is no accuracy), so each estimator gets its own panel; with retrain results
a last panel puts every run's retrained models at their trained test accuracy and measured
latency, which do compare. Runs searched over different objectives are refused: their fronts
answer different questions. Same shape as the report: :func:`compare_data` (plain data,
tested without plotting), :func:`draw_compare`, :func:`write_compare` (one page, plotly's
JavaScript inlined once, no network needed)."""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_text
from ..paths import runs_dir
from ..runs import Run, load_run, retrain_labels
from .data import Retrained, TableData, as_retrained, complete_trials, finite, fmt, fmt_count
from .labels import score_label, trials_archs

__all__ = ["CompareData", "CompareRun", "compare_data", "compare_path", "draw_compare",
           "render_compare", "write_compare"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")
#: what may differ between compared runs, and is then named in each run's label
ASPECTS = {"device": "device", "score": "estimator", "precision": "precision", "data": "data",
           "space": "space", "resolution": "resolution"}


@dataclass
class CompareRun:
    name: str
    label: str  # legend text: the name and what sets the run apart
    color: str
    aspects: dict[str, str]  # device, score, precision, data, space, resolution
    front_x: list[float]
    front_y: list[float]
    front_trials: list[int]
    hover: list[str]
    n_complete: int
    n_archs: int
    budget_ms: float | None
    retrained: list[Retrained] = field(default_factory=list)
    column: str = "score"  # the run's score column (naswot_score, val_acc, ...)
    setup: dict[str, str] = field(default_factory=dict)  # sampler, seed, budget, trials asked


@dataclass
class CompareData:
    runs: list[CompareRun]
    objectives: list[str]
    panels: list[str]  # one per distinct score label, in the runs' order
    differs: list[str]  # aspects whose values differ between the runs
    staircase: bool  # the front is over accuracy x latency only: drawn as a staircase
    log_x: bool
    caption: str
    table: TableData
    notes: list[str]

    @property
    def has_retrained(self) -> bool:
        return any(r.retrained for r in self.runs)


def _precision(cfg: dict[str, Any]) -> str:
    return str(cfg.get("precision") or (cfg.get("settings") or {}).get("precision") or "fp32")


def _aspects(cfg: dict[str, Any]) -> dict[str, str]:
    return {"device": str(cfg.get("device", "?")), "score": score_label(cfg),
            "precision": _precision(cfg), "data": str(cfg.get("data", "?")),
            "space": str(cfg.get("space", "?")), "resolution": str(cfg.get("resolution", "?"))}


def _setup(cfg: dict[str, Any]) -> dict[str, str]:
    """How a run searched: sampler, seed, budgets (latency, params), trials asked for."""
    st = cfg.get("settings") or {}
    lat, mp = finite(cfg.get("latency_budget_ms")), cfg.get("max_params")
    budget = ", ".join([*([f"<= {lat:g} ms"] if lat is not None else []),
                        *([f"<= {fmt_count(mp)} params"] if mp else [])]) or "none"
    return {"sampler": str(st.get("sampler", "?")), "seed": str(st.get("seed", "?")),
            "budget": budget, "trials": str(st.get("trials", "?"))}


def compare_data(runs: Sequence[Run]) -> CompareData:
    """The fronts of ``runs`` (at least two, searched over the same objectives; HwnasError
    otherwise, in one line)."""
    if len(runs) < 2:
        raise HwnasError("hwnas compare needs at least two runs (hwnas view RUN shows one)")
    seen: dict[Path, str] = {}
    for r in runs:
        key = r.path.resolve()
        if key in seen:
            raise HwnasError(f"run '{r.name}' is listed twice")
        seen[key] = r.name
    objs = [list(r.objectives) for r in runs]
    if any(set(o) != set(objs[0]) for o in objs):
        listing = "; ".join(f"{r.name}: {', '.join(o) or '?'}" for r, o in zip(runs, objs, strict=True))
        raise HwnasError(f"the runs were searched over different objectives ({listing}): their "
                         "fronts do not compare; compare runs with the same --objectives")
    aspects = [_aspects(r.config) for r in runs]
    differs = [a for a in ASPECTS if len({x[a] for x in aspects}) > 1]
    out = []
    for i, (r, asp) in enumerate(zip(runs, aspects, strict=True)):
        col = r.score
        done = complete_trials(r.trials, col)
        front = sorted((p for p in r.pareto if finite(p.get("latency_ms")) is not None
                        and finite(p.get(col)) is not None),
                       key=lambda p: float(p["latency_ms"]))
        extra = ", ".join(asp[a] if a != "resolution" else f"{asp[a]} px" for a in differs)
        hover = [f"<b>{html.escape(r.name)}</b> trial {p.get('trial')}<br>{asp['score']} "
                 f"({col}): {fmt(p.get(col))}<br>latency (predicted, {html.escape(asp['device'])}): "
                 f"{fmt(p.get('latency_ms'), '.3f', ' ms')}<br>params {fmt_count(p.get('params'))}"
                 f"   MACs {fmt_count(p.get('macs'))}" for p in front]
        retrain = r.retrain() or []
        labels = retrain_labels(retrain)
        out.append(CompareRun(
            r.name, r.name + (f" ({extra})" if extra else ""), PALETTE[i % len(PALETTE)], asp,
            [float(p["latency_ms"]) for p in front], [float(p[col]) for p in front],
            [int(p.get("trial", -1)) for p in front], hover, len(done),
            len({str(t.get("arch", "")) for t in done}),
            finite(r.config.get("latency_budget_ms")),
            [as_retrained(x, labels) for x in retrain], col, _setup(r.config)))
    panels = list(dict.fromkeys(a["score"] for a in aspects))
    xs = [x for c in out for x in c.front_x if x > 0]
    log_x = bool(xs) and max(xs) / min(xs) > 20
    notes = []
    if "score" in differs:
        notes.append("the runs' accuracy estimators differ (" + ", ".join(panels) + "): each "
                     "has its own panel, their scores do not compare"
                     + ("; the retrained panel does" if any(c.retrained for c in out) else ""))
    if "device" in differs:
        notes.append("the runs target different devices: each front's latency is predicted for "
                     "its own device")
    if "data" in differs:
        notes.append("the runs use different datasets: accuracies are on different test sets")
    staircase = set(objs[0]) == {"accuracy", "latency"}
    cap = ("Pareto fronts (pareto.csv: feasible non-dominated archs) of "
           + "; ".join(f"{c.name}: {len(c.front_x)} front archs of "
                       f"{trials_archs(c.n_complete, c.n_archs)}" for c in out)
           + f". Objectives: {', '.join(objs[0])}"
           + ("" if staircase else " (the fronts are projected on the score x latency)")
           + ". x: latency predicted by each run's device predictor"
           + (", log scale" if log_x else "") + "; y: each panel names its estimator's score.")
    if any(c.retrained for c in out):
        cap += (" Last panel: the retrained winners (stars) and baselines (diamonds) of each "
                "run, trained test accuracy vs latency measured on the device.")
    return CompareData(out, objs[0], panels, differs, staircase, log_x, cap,
                       _summary_table(out, objs[0]), notes)


def _summary_table(runs: Sequence[CompareRun], objectives: Sequence[str]) -> TableData:
    cols = ["run", "device", "space @ px", "estimator (score)", "data", "precision", "sampler",
            "seed", "budget", "trials asked", "complete trials", "front archs",
            "fastest front latency", "best front score", "retrained models"]
    rows = []
    for c in runs:
        a, su = c.aspects, c.setup
        best = max(c.front_y) if c.front_y else None
        rows.append([c.name, a["device"], f"{a['space']} @ {a['resolution']}",
                     f"{a['score']} ({c.column})", a["data"], a["precision"],
                     su.get("sampler", "?"), su.get("seed", "?"), su.get("budget", "?"),
                     su.get("trials", "?"), trials_archs(c.n_complete, c.n_archs),
                     str(len(c.front_x)), fmt(min(c.front_x) if c.front_x else None, ".3f", " ms"),
                     fmt(best), str(len(c.retrained))])
    return TableData("Runs compared", cols, rows, [[""] * len(cols) for _ in rows],
                     f"Objectives of every run: {', '.join(objectives)}.", "table-compare")


def draw_compare(d: CompareData):
    """One panel per estimator (the fronts), and one of the retrained models, on one latency axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [f"search fronts: {p}" for p in d.panels]
    if d.has_retrained:
        titles.append("retrained: test accuracy vs measured latency")
    n = len(titles)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.1 / max(n - 1, 1),
                        subplot_titles=titles)
    for c in d.runs:
        row = d.panels.index(c.aspects["score"]) + 1
        fig.add_trace(go.Scatter(
            x=c.front_x, y=c.front_y, mode="lines+markers" if d.staircase else "markers",
            line=dict(shape="hv", width=2, color=c.color), name=f"{c.label}: front "
            f"({len(c.front_x)} archs)", marker=dict(size=8, color=c.color,
                                                      line=dict(width=1, color="black")),
            hovertext=c.hover, hoverinfo="text", meta="front", legendgroup=c.name,
            customdata=c.front_trials), row=row, col=1)
        if c.budget_ms is not None:
            fig.add_vline(x=c.budget_ms, line=dict(color=c.color, dash="dash", width=1),
                          row=row, col=1)
        if c.retrained:
            for kind, sym in (("winner", "star"), ("baseline", "diamond")):
                rs = [r for r in c.retrained if r.kind == kind and r.measured_ms is not None
                      and r.acc_mean is not None]
                if rs:
                    fig.add_trace(go.Scatter(
                        x=[r.measured_ms for r in rs], y=[r.acc_mean for r in rs],
                        mode="markers+text", text=[r.label for r in rs], textposition="top center",
                        textfont=dict(size=10, color=c.color),
                        marker=dict(size=11, color=c.color, symbol=sym),
                        error_y=dict(type="data", array=[r.acc_std for r in rs], visible=True,
                                     color=c.color),
                        name=f"{c.name}: retrained {kind}s", legendgroup=c.name,
                        meta="retrained", hovertext=[r.hover for r in rs], hoverinfo="text"),
                        row=n, col=1)
    for i, p in enumerate(d.panels, 1):
        fig.update_yaxes(title_text=p, row=i, col=1)
    if d.has_retrained:
        fig.update_yaxes(title_text="test accuracy (trained)", row=n, col=1)
    fig.update_xaxes(type="log" if d.log_x else "linear")
    fig.update_xaxes(title_text="latency (ms): predicted (fronts)"
                     + (", measured (retrained)" if d.has_retrained else ""), row=n, col=1)
    # the legend above the panels, in pixels from the top: it never covers a panel's title
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    top = 50 + 21 * -(-entries // 2)
    fig.update_layout(height=top + 200 + 330 * n, template="plotly_white", hovermode="closest",
                      margin=dict(l=70, r=20, t=top, b=60),
                      legend=dict(orientation="h", yref="container", y=0.995, yanchor="top",
                                  x=0))
    return fig


def render_compare(d: CompareData, fig: Any = None) -> str:
    """The page: the figure (plotly's JavaScript inlined once), its caption, the runs' table."""
    from .page import CSS, fig_html, table_html

    e = html.escape
    names = " vs ".join(c.name for c in d.runs)
    parts = [f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width, initial-scale=1'>"
             f"<title>hwnas compare: {e(names)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>hwnas compare: {e(names)}</h1>",
             f"<div class=meta>objectives {e(', '.join(d.objectives))}; runs differ in "
             f"{e(', '.join(ASPECTS[a] for a in d.differs) or 'nothing recorded')}; written "
             f"{e(time.strftime('%Y-%m-%d %H:%M:%S %z'))}</div>"]
    parts += [f"<div class=note>{e(n)}</div>" for n in d.notes]
    parts.append("<h2>Pareto fronts</h2><div class=fig>")
    parts.append(fig_html(fig if fig is not None else draw_compare(d), "fig-compare", True))
    parts.append(f"</div><p class=caption>{e(d.caption)}</p>")
    parts.append(table_html(d.table, d.table.id))
    parts.append("<footer>hwnas compare. Plotly figures are interactive (hover, zoom, the legend "
                 "hides a run); the page needs no network.</footer></main></body></html>")
    return "\n".join(parts)


def compare_path(names: Sequence[str]) -> Path:
    """The default page: ``runs/compare/<RUN1>--<RUN2>....html`` (shortened with a hash when
    long)."""
    stem = "--".join(re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(n)).name) for n in names)
    if len(stem) > 120:
        stem = stem[:100] + "-" + hashlib.sha1(stem.encode()).hexdigest()[:10]
    return runs_dir() / "compare" / f"{stem}.html"


def write_compare(runs: Sequence[str | Path], out: str | Path | None = None
                  ) -> tuple[Path, CompareData]:
    """Write the comparison page of ``runs`` (names or folders) to ``out`` (default
    :func:`compare_path`) atomically."""
    loaded = [load_run(r) for r in runs]
    d = compare_data(loaded)
    path = Path(out) if out else compare_path([r.name for r in loaded])
    try:
        atomic_write_text(path, render_compare(d))
    except OSError as e:
        raise HwnasError(f"cannot write {path}: {e.strerror or e}") from None
    return path, d
