"""Drawing the report's figures: each function turns one figure's data
(:mod:`hwnas.report.data`) into a plotly figure, and does nothing else."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data import HypervolumeData, ObjectiveSpaceData, ParityData, ReportData

__all__ = ["COLORS", "draw_figures", "draw_hypervolume", "draw_objective_space", "draw_parity"]

COLORS = {"front": "#d62728", "feasible": "#1f77b4", "infeasible": "#b0b0b0",
          "winner": "#d62728", "baseline": "#2ca02c", "profiled": "#1f77b4"}


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
        fig.add_trace(go.Scatter(
            x=g.x, y=g.y, mode="markers", name=f"{g.name} ({len(g.x)})", marker=styles[g.kind],
            hovertext=g.hover, hoverinfo="text", customdata=g.numbers, meta="trials",
            legendgroup=g.kind), row=1, col=1)
    if d.retrained:
        for kind, label in (("winner", "retrained winners"), ("baseline", "baselines")):
            rs = [r for r in d.retrained if r.kind == kind]
            if not rs:
                continue
            color = COLORS[kind]
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
    styles = {"profiled": dict(size=6, color=COLORS["profiled"], opacity=0.7),
              "winner": dict(size=12, color=COLORS["winner"], symbol="star"),
              "baseline": dict(size=11, color=COLORS["baseline"], symbol="diamond")}
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


def draw_figures(d: ReportData) -> dict[str, Any]:
    return {"objective": draw_objective_space(d.objective), "parity": draw_parity(d.parity),
            "hypervolume": draw_hypervolume(d.hypervolume)}
