"""The offline HTML report of a run: figure *data* functions, drawing, and the page.

Optuna's visualization shape: each figure's data is computed by one function that returns
plain dataclasses (:mod:`~hwnas.report.data`, tested without plotting or a browser), and
drawn by another that only turns that data into a plotly figure
(:mod:`~hwnas.report.figures`). :func:`build_report` gathers everything a run folder holds;
:func:`render_html` lays it out as one self-contained page (plotly's JavaScript inlined
once, no network needed); :func:`write_report` writes ``runs/RUN/report.html``
(:mod:`~hwnas.report.page`). :mod:`~hwnas.report.latex` writes the tables as booktabs LaTeX,
:mod:`~hwnas.report.compare` puts several runs' fronts on one page, and
:mod:`~hwnas.report.ablation` turns ``hwnas predictor eval`` into a figure.
"""

from ..runs import read_retrain
from .ablation import AblationData, AblationSeries, ablation_data, read_predictor_eval
from .compare import CompareData, CompareRun, compare_data, draw_compare, write_compare
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
from .figures import (
    COLORS,
    draw_ablation,
    draw_figures,
    draw_hypervolume,
    draw_objective_space,
    draw_parity,
    predicted_marker,
)
from .labels import fmt_acc, log_ticks, score_label, seed_count, tick_text, trials_archs
from .latex import booktabs, pareto_latex, retrain_latex, tex_escape, write_latex
from .page import (
    ABLATION_ID,
    FIGURE_IDS,
    IMAGE_FORMATS,
    ReportResult,
    build_report,
    device_ablation,
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
    # labels
    "fmt_acc", "log_ticks", "score_label", "seed_count", "tick_text", "trials_archs",
    # the predictor ablation, several runs, LaTeX
    "AblationData", "AblationSeries", "ablation_data", "read_predictor_eval",
    "CompareData", "CompareRun", "compare_data", "draw_compare", "write_compare",
    "booktabs", "pareto_latex", "retrain_latex", "tex_escape", "write_latex",
    # figures
    "COLORS", "draw_ablation", "draw_figures", "draw_hypervolume", "draw_objective_space",
    "draw_parity", "predicted_marker",
    # page
    "ABLATION_ID", "FIGURE_IDS", "IMAGE_FORMATS", "ReportResult", "build_report",
    "device_ablation", "device_parity", "export_images", "render_html", "write_report",
    # the run folder (hwnas.runs), importable from here as before
    "read_retrain",
]
