"""Drawing the report's figures: each function turns one figure's data
(:mod:`hwnas.report.data`) into a plotly figure, and does nothing else."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .ablation import AblationData
from .data import HypervolumeData, ObjectiveSpaceData, ParityData, ReportData
from .int8 import PRECISION_SYMBOLS
from .labels import tick_text

__all__ = ["COLORS", "PREDICTOR_COLORS", "draw_ablation", "draw_figures", "draw_hypervolume",
           "draw_objective_space", "draw_parity", "predicted_marker"]

COLORS = {"front": "#d62728", "feasible": "#1f77b4", "infeasible": "#b0b0b0",
          "winner": "#d62728", "baseline": "#2ca02c", "profiled": "#1f77b4"}
PREDICTOR_COLORS = {"macs_linear": "#9467bd", "lut_sum": "#8c564b", "block_sum": "#ff7f0e",
                    "full": "#1f77b4"}


def predicted_marker(color: str) -> dict[str, Any]:
    """An open marker that shows on white paper and in print: for plotly's ``-open`` symbols
    the outline is drawn in ``color`` (a white ``color`` makes them invisible)."""
    return dict(size=11, symbol="circle-open", color=color, line=dict(width=2.5, color=color))


def draw_objective_space(d: ObjectiveSpaceData):
    """The trials (upper panel) and the retrained models (lower panel, if any) on one latency axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    two = bool(d.retrained)
    fig = make_subplots(rows=2 if two else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.62, 0.38] if two else None,
                        subplot_titles=("search trials (estimates)",
                                        "retrained: trained accuracy vs latency") if two else None)
    styles = {"front": dict(size=10, color=COLORS["front"], line=dict(width=1, color="black")),
              "feasible": dict(size=6, color=COLORS["feasible"], opacity=0.6),
              "infeasible": dict(size=6, color=COLORS["infeasible"], opacity=0.6)}
    for g in d.groups:
        marker = dict(styles[g.kind])
        if g.precision:  # a run with precision: one symbol per precision
            marker["symbol"] = PRECISION_SYMBOLS.get(g.precision, "circle")
        fig.add_trace(go.Scatter(
            x=g.x, y=g.y, mode="markers", name=g.legend, marker=marker,
            hovertext=g.hover, hoverinfo="text", customdata=g.numbers, meta="trials",
            legendgroup=g.kind + (f"-{g.precision}" if g.precision else "")), row=1, col=1)
    if d.retrained:
        for kind, label in (("winner", "retrained winners"), ("baseline", "baselines")):
            rs = [r for r in d.retrained if r.kind == kind]
            if not rs:
                continue
            color = COLORS[kind]
            fig.add_trace(go.Scatter(
                x=[r.predicted_ms for r in rs], y=[r.acc_mean for r in rs], mode="markers",
                name=f"{label}: predicted latency", meta="predicted", legendgroup=kind,
                marker=predicted_marker(color),
                hovertext=[r.hover for r in rs], hoverinfo="text"), row=2, col=1)
            fig.add_trace(go.Scatter(
                x=[r.measured_ms for r in rs], y=[r.acc_mean for r in rs], mode="markers+text",
                name=f"{label}: measured latency", meta="measured", legendgroup=kind,
                text=[r.label for r in rs], textposition="top center", textfont=dict(size=10),
                marker=dict(size=11, color=color, symbol="diamond" if kind == "baseline" else "star"),
                # no bar where one seed was trained (acc_std None): nothing to show
                error_y=dict(type="data", array=[r.acc_std for r in rs], visible=True,
                             color=color),
                hovertext=[r.hover for r in rs], hoverinfo="text"), row=2, col=1)
            _int8_points(fig, go, [r for r in rs if r.int8 is not None], kind, label, color)
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


def _int8_points(fig, go, rs, kind: str, label: str, color: str) -> None:
    """The retrained models' int8 versions: an open marker at (int8 measured latency, int8
    accuracy), a dotted line to the model's fp32 point."""
    rs = [r for r in rs if r.int8.measured_ms is not None and r.int8.accuracy is not None]
    if not rs:
        return
    xs, ys = [], []
    for r in rs:
        if r.measured_ms is not None and r.acc_mean is not None:
            xs += [r.measured_ms, r.int8.measured_ms, None]
            ys += [r.acc_mean, r.int8.accuracy, None]
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=1,
                                                                     dash="dot"),
                                 hoverinfo="skip", showlegend=False, meta="int8-link",
                                 legendgroup=kind), row=2, col=1)
    symbol = ("diamond" if kind == "baseline" else "star") + "-open"
    fig.add_trace(go.Scatter(
        x=[r.int8.measured_ms for r in rs], y=[r.int8.accuracy for r in rs], mode="markers",
        name=f"{label}: int8, measured latency", meta="measured-int8", legendgroup=kind,
        marker=dict(size=12, symbol=symbol, color=color, line=dict(width=2, color=color)),
        hovertext=[r.hover for r in rs], hoverinfo="text"), row=2, col=1)


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
    styles = {"profiled": dict(size=6, color=COLORS["profiled"], opacity=0.7),
              "winner": dict(size=12, color=COLORS["winner"], symbol="star"),
              "baseline": dict(size=11, color=COLORS["baseline"], symbol="diamond"),
              "winner-int8": dict(size=12, color=COLORS["winner"], symbol="star-open",
                                  line=dict(width=2, color=COLORS["winner"])),
              "baseline-int8": dict(size=11, color=COLORS["baseline"], symbol="diamond-open",
                                    line=dict(width=2, color=COLORS["baseline"]))}
    for s in d.series:
        fig.add_trace(go.Scatter(
            x=s.measured, y=s.predicted, mode="markers", name=f"{s.name} ({len(s.measured)})",
            marker=styles.get(s.kind, {}), meta="parity", text=s.labels,
            hovertemplate="%{text}<br>measured %{x:.3f} ms<br>predicted %{y:.3f} ms<extra></extra>"))
    # the same log range and the same round ticks (0.1, 0.2, 0.5, 1, 2 ...) on both axes
    axis = dict(type="log", range=[math.log10(lo), math.log10(hi)], showline=True, mirror=True,
                linecolor="#444", ticks="outside", gridcolor="#e5e5e5")
    if d.ticks:
        axis.update(tickmode="array", tickvals=list(d.ticks), ticktext=tick_text(d.ticks))
    fig.update_xaxes(title_text="measured latency (ms)", constrain="domain", **axis)
    fig.update_yaxes(title_text="predicted latency (ms)", scaleanchor="x", scaleratio=1,
                     constrain="domain", **axis)
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


def draw_ablation(d: AblationData):
    """Grouped bars: each predictor's held-out MAPE (left) and Kendall tau (right) per group."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("MAPE (%), lower is better",
                                        "Kendall tau, higher is better"))
    for s in d.series:
        hover = [f"<b>{s.name}</b> on {g}<br>n {n}<br>MAPE {_f(m, '.2f')} %<br>within +-10 %: "
                 f"{_f(w, '.0f')} %<br>RMSE {_f(r, '.4f')} ms<br>Kendall tau {_f(t, '.3f')}"
                 for g, n, m, w, r, t in zip(d.groups, s.n, s.mape, s.within10, s.rmse, s.tau,
                                             strict=True)]
        color = PREDICTOR_COLORS.get(s.key)
        for col, ys, fmt in ((1, s.mape, "%{y:.1f}"), (2, s.tau, "%{y:.2f}")):
            fig.add_trace(go.Bar(
                x=d.groups, y=ys, name=s.name, legendgroup=s.key, showlegend=col == 1,
                marker=dict(color=color), hovertext=hover, hoverinfo="text", meta="ablation",
                texttemplate=fmt, textposition="outside", cliponaxis=False), row=1, col=col)
    fig.update_yaxes(title_text="held-out MAPE (%)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="Kendall tau", range=[min(0.0, *_vals(d, "tau")), 1.05],
                     row=1, col=2)
    fig.update_layout(barmode="group", height=430, template="plotly_white",
                      margin=dict(l=70, r=20, t=50, b=60),
                      legend=dict(orientation="h", yanchor="bottom", y=1.1, x=0))
    return fig


def _f(v: float | None, spec: str) -> str:
    return "n/a" if v is None else f"{v:{spec}}"


def _vals(d: AblationData, attr: str) -> list[float]:
    return [v for s in d.series for v in getattr(s, attr) if v is not None]


def draw_figures(d: ReportData) -> dict[str, Any]:
    figs = {"objective": draw_objective_space(d.objective), "parity": draw_parity(d.parity),
            "hypervolume": draw_hypervolume(d.hypervolume)}
    if d.ablation is not None and d.ablation.n_bars:
        figs["ablation"] = draw_ablation(d.ablation)
    return figs
