"""The offline HTML report of a run: figure *data* functions, drawing, and the page.

Optuna's visualization shape: each figure's data is computed by one function that returns
plain dataclasses (:mod:`~hwnas.report.data`, tested without plotting or a browser), and
drawn by another that only turns that data into a plotly figure
(:mod:`~hwnas.report.figures`). :func:`build_report` gathers everything a run folder holds;
:func:`render_html` lays it out as one self-contained page (plotly's JavaScript inlined
once, no network needed); :func:`write_report` writes ``runs/RUN/report.html``
(:mod:`~hwnas.report.page`).
"""

from ..runs import read_retrain
from .data import (
    BAND,
    HV_REFERENCE,
    HypervolumeData,
    Measurement,
    ObjectiveSpaceData,
    ParityData,
    ParitySeries,
    PointGroup,
    ReportData,
    Retrained,
    TableData,
    as_retrained,
    complete_trials,
    finite,
    fmt,
    fmt_bytes,
    fmt_count,
    hypervolume_history,
    measurement_info,
    objective_space_data,
    pareto_table,
    parity_data,
    parity_metrics,
    results_table,
    retrain_labels,
)
from .figures import COLORS, draw_figures, draw_hypervolume, draw_objective_space, draw_parity
from .page import (
    FIGURE_IDS,
    ReportResult,
    build_report,
    device_parity,
    export_images,
    render_html,
    write_report,
)

__all__ = [
    # data
    "BAND", "HV_REFERENCE", "HypervolumeData", "Measurement", "ObjectiveSpaceData", "ParityData",
    "ParitySeries", "PointGroup", "ReportData", "Retrained", "TableData", "complete_trials",
    "finite", "fmt", "fmt_bytes", "fmt_count", "hypervolume_history", "measurement_info",
    "objective_space_data", "parity_data", "parity_metrics", "pareto_table", "results_table",
    "as_retrained", "retrain_labels",
    # figures
    "COLORS", "draw_figures", "draw_hypervolume", "draw_objective_space", "draw_parity",
    # page
    "FIGURE_IDS", "ReportResult", "build_report", "device_parity", "export_images",
    "render_html", "write_report",
    # the run folder (hwnas.runs), importable from here as before
    "read_retrain",
]
