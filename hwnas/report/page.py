"""The report page: gathering a run (:func:`build_report`), the HTML (:func:`render_html`:
one self-contained page, plotly's JavaScript inlined once, no network needed), image export,
and :func:`write_report`, which writes ``runs/RUN/report.html``."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import parse_string
from ..context import Device
from ..errors import HwnasError
from ..io import atomic_write_bytes, atomic_write_text
from ..profiling.drift import Drift, note
from ..runs import load_run
from ..space import load_space
from .ablation import EVAL_FILE, AblationData, ablation_data, read_predictor_eval, stored_is_current
from .data import (
    ReportData,
    TableData,
    complete_trials,
    finite,
    hypervolume_history,
    measurement_info,
    objective_space_data,
    pareto_table,
    parity_data,
    results_table,
)
from .figures import draw_figures
from .labels import score_label, trials_archs

log = logging.getLogger(__name__)

__all__ = ["ABLATION_ID", "CSS", "FIGURE_IDS", "IMAGE_FORMATS", "ReportResult", "build_report",
           "device_ablation", "device_parity", "export_images", "fig_html", "render_html",
           "write_report"]

#: the <div> ids of the figures every report.html has (the browser test looks them up)
FIGURE_IDS = {"objective": "fig-objective", "parity": "fig-parity", "hypervolume": "fig-hypervolume"}
#: the predictor ablation's <div>: only when the device has whole-network measurements
ABLATION_ID = "fig-ablation"
IMAGE_FORMATS = ("png", "svg", "pdf")


# ---- gathering a run -------------------------------------------------------------------------

def device_parity(device: str | Device, table: Any, spaces: Sequence[Any] = ()
                  ) -> tuple[dict[str, float], Callable | None, bool, str]:
    """See :func:`_device_parity` (its first four values)."""
    return _device_parity(device, table, spaces)[:4]


def _device_parity(device: str | Device, table: Any, spaces: Sequence[Any] = ()
                   ) -> tuple[dict[str, float], Callable | None, bool, str, Any]:
    """(measured networks, predict(arch strings), in-sample?, note) for ``device`` and its
    latency ``table`` (None: it has none): held-out
    predictions (:func:`hwnas.predictor.evaluate`, 5-fold) where possible, else the predictions
    of the predictor fitted on all of them. Networks of ``spaces`` (SearchSpace objects) are
    cross-validated; baselines and other networks are predicted by a predictor fitted on all
    the space's networks. The fifth value is the held-out :class:`~hwnas.predictor.Evaluation`
    (None without one): the predictor ablation."""
    dev = Device.of(device)
    if table is None or not getattr(table, "networks", None):
        return {}, None, True, f"device '{dev.name}' has no whole-network measurements", None
    stat = table.statistic
    blocks, nets = table.latencies(stat)
    from ..predictor import evaluate, network_groups

    try:
        settings = {**dev.predictor_settings(), "statistic": stat}
        groups = network_groups(nets, list(spaces))
        if sum(g not in ("baselines", "other") for g in groups.values()) < 10:
            # no (or too few) networks of the run's space: cross-validate them all
            groups = {k: ("baselines" if g == "baselines" else "networks") for k, g in groups.items()}
        ev = evaluate(blocks, nets, groups, settings=settings)
        held = {k: float(p["full"]) for k, p in ev.predictions.items()
                if finite(p.get("full")) is not None}
        if held:
            return ({k: nets[k] for k in held}, lambda keys: [held[k] for k in keys], False, "",
                    ev)
    except HwnasError as e:
        log.info("held-out predictions for %s: %s; showing the in-sample fit", dev.name, e)
    try:
        pred = dev.predictor()
    except HwnasError as e:
        return {}, None, True, f"no latency predictor for '{dev.name}' ({e})", None

    def predict(keys: list[str]) -> list[float]:
        archs = [parse_string(k) for k in keys]
        return [float(x) for x in np.asarray(pred.predict(archs), float).reshape(-1)]

    return nets, predict, True, "", None


def device_ablation(dev: Device | None, evaluation: Any = None) -> AblationData | None:
    """The predictor ablation of ``dev``: its stored predictor_eval.csv (``hwnas predictor
    eval``) when that is not older than its table, else ``evaluation`` (the report's own
    held-out :class:`~hwnas.predictor.Evaluation`); None when there is neither."""
    if dev is None:
        return None
    path = Path(dev.dir) / EVAL_FILE
    rows = read_predictor_eval(path) if path.is_file() else None
    if rows and stored_is_current(path, Path(dev.dir)):
        return ablation_data(rows, dev.name, "stored", path)
    if evaluation is not None:
        d = ablation_data(evaluation.rows, dev.name, "computed", folds=evaluation.folds)
        if rows:
            d.notes.append(f"{path} is older than the device's table: the ablation figure shows "
                           "the report's own evaluation (run hwnas predictor eval again)")
        return d
    return None


def _run_spaces(cfg: dict[str, Any]) -> list[Any]:
    """The run's space, as defined and with the run's class count (what its trials are)."""
    try:
        sp = load_space(cfg["space"])
    except (HwnasError, KeyError):
        return []
    out = [sp]
    if cfg.get("classes") and cfg["classes"] != sp.classes:
        out.append(replace(sp, classes=int(cfg["classes"])))
    return out


def _retrain_meta(run_dir: Path) -> dict[str, Any]:
    """retrain.json of a run ({} if none or unreadable): the measurement's drift."""
    import json

    try:
        d = json.loads((run_dir / "retrain.json").read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def build_report(run: str | Path, *, predictor: bool = True) -> ReportData:
    """Everything the report shows, from ``runs/RUN`` (or a run folder) and the device's table.

    HwnasError if the run does not exist; what is missing (no trials, no retrain results, no
    device table or predictor) becomes a note and the report shows what exists.
    """
    r = load_run(run)
    cfg = r.config
    device = str(cfg.get("device", ""))
    notes: list[str] = []
    table = dev = None
    if device:
        try:
            dev = Device.load(device)
            table = dev.table if dev.has_table else None
        except HwnasError as e:
            notes.append(f"the latency table of '{device}' cannot be read: {e}")
    meas = measurement_info(cfg, table)
    retrain = r.retrain()
    done = complete_trials(r.trials, r.score)
    if not done:
        notes.append(f"run '{r.name}' has no complete trials yet (hwnas search ... --name {r.name})")
    if retrain is None:
        notes.append(f"run '{r.name}' has no retrain results yet (hwnas retrain {r.name})")
    obj = objective_space_data(r.trials, r.pareto, cfg, retrain or [], meas)
    measured, predict, in_sample, why, ev = ({}, None, True, "", None)
    if predictor and dev is not None:
        measured, predict, in_sample, why, ev = _device_parity(dev, table, _run_spaces(cfg))
    ablation = device_ablation(dev, ev) if predictor else None
    if ablation is not None:
        notes.extend(ablation.notes)
    if why:
        notes.append(f"parity plot without profiled networks: {why}")
    par = parity_data(measured, predict, retrain or [], measurement=meas, in_sample=in_sample,
                      statistic=getattr(table, "statistic", None))
    hv = hypervolume_history(r.trials, r.objectives, score=score_label(cfg), column=r.score)
    tables = []
    if retrain is not None:
        meta = _retrain_meta(r.path)
        tables.append(results_table(retrain, meas, meta.get("drift"),
                                    bool(meta.get("drift_correct"))))
        d = Drift.from_dict(meta.get("drift")) if meta.get("drift") else None
        if d is not None and d.beyond:
            notes.append(f"retrain measurement: {note(d)}")
    tables.append(pareto_table(r.pareto, cfg))
    return ReportData(r.name, r.path, cfg, meas, obj, par, hv, tables, notes, len(r.trials),
                      len(done), retrain is not None, len(r.pareto), dict(cfg.get("versions") or {}),
                      ablation, obj.n_archs)


# ---- the page --------------------------------------------------------------------------------------

CSS = """
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


def table_html(t: TableData, table_id: str) -> str:
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


def fig_html(fig, div_id: str, first: bool) -> str:
    """One figure's <div>; ``first`` inlines plotly's JavaScript (once per page: the page
    then needs no network)."""
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
        f"{d.n_complete} complete trials ({d.n_trials} in total; "
        f"{trials_archs(d.n_complete, d.n_archs).split(', ')[1]} among the complete)"
        + (f"; latency budget {c['latency_budget_ms']:g} ms" if c.get("latency_budget_ms") else "")
        + (f"; max params {c['max_params']:,}" if c.get("max_params") else ""),
        f"latency measured on: {e(d.measurement.text())}",
        f"run created {e(str(c.get('created', '?')))}, updated {e(str(c.get('updated', '?')))}; "
        f"report written {e(time.strftime('%Y-%m-%d %H:%M:%S %z'))}",
    ]
    parts = [f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width, initial-scale=1'>"
             f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>{e(title)}</h1>", "<div class=meta>" + "<br>".join(meta) + "</div>"]
    for n in d.notes:
        parts.append(f"<div class=note>{e(n)}</div>")
    sections = [("objective", "Trials in objective space", d.objective.caption),
                ("parity", "Latency predictor: predicted vs measured", d.parity.caption)]
    if "ablation" in figs and d.ablation is not None:
        sections.append(("ablation", f"Latency predictor ablation ({d.ablation.device})",
                         d.ablation.caption))
    sections.append(("hypervolume", "Hypervolume history", d.hypervolume.caption))
    ids = {**FIGURE_IDS, "ablation": ABLATION_ID}
    first = True
    for key, heading, caption in sections:
        parts.append(f"<h2>{e(heading)}</h2><div class=fig>")
        parts.append(fig_html(figs[key], ids[key], first))
        first = False
        parts.append(f"</div><p class=caption>{e(caption)}</p>")
    for t in d.tables:
        parts.append(table_html(t, t.id))
    vers = ", ".join(f"{k} {v}" for k, v in d.versions.items())
    parts.append(f"<footer>hwnas report of {e(str(d.run_dir))}. Versions of the search: "
                 f"{e(vers) or '?'}. Plotly figures are interactive (hover, zoom, the camera "
                 f"icon saves a PNG); the page needs no network.</footer></main></body></html>")
    return "\n".join(parts)


#: what to install for ``--images`` (kaleido >= 1 drives a Chrome or Chromium it finds)
KALEIDO_HINT = ("pip install kaleido (it also needs Chrome or Chromium: apt-get install "
                "chromium, or the plotly_get_chrome command)")


def kaleido_missing() -> str | None:
    """None when image export can work; else one line saying what to install."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return f"image export needs the kaleido package: {KALEIDO_HINT}"
    return None


#: PNG export scale: a 1100 px wide figure becomes 2200 px (print quality for papers)
PNG_SCALE = 2


def export_images(figures: dict[str, Any], out_dir: Path, formats: Sequence[str]) -> list[Path]:
    """Write each figure as ``<out_dir>/<figure>.<fmt>`` (png, svg, pdf) with plotly and
    kaleido, each file atomically, at the figure's own size (the parity plot stays square);
    PNG at scale :data:`PNG_SCALE` (2: twice the pixels, sharp in a paper; SVG and PDF are
    vector); [] and one warning line when kaleido is not installed or cannot start a browser."""
    if not formats:
        return []
    why = kaleido_missing()
    if why:
        log.warning("%s; skipped the %s export", why, "/".join(formats))
        return []
    import warnings

    import kaleido

    server = getattr(kaleido, "start_sync_server", None)  # kaleido >= 1: one browser for all
    out: list[Path] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "kopts ignored when using a server"
        try:
            if server is not None:
                server(n=1, silence_warnings=True)
            for name, fig in figures.items():
                w, h = fig.layout.width or 1100, fig.layout.height or 600
                for fmt in formats:
                    p = Path(out_dir) / f"{name}.{fmt}"
                    scale = PNG_SCALE if fmt == "png" else 1
                    atomic_write_bytes(p, fig.to_image(format=fmt, width=w, height=h,
                                                       scale=scale))
                    out.append(p)
        except HwnasError:
            raise
        except Exception as e:  # kaleido present but no usable browser
            log.warning("image export failed (%s: %s); %s", type(e).__name__,
                        (str(e).splitlines() or [""])[0], KALEIDO_HINT)
        finally:
            if server is not None:
                try:
                    kaleido.stop_sync_server(silence_warnings=True)
                except Exception as e:  # noqa: BLE001 -- closing a browser that never started
                    log.debug("kaleido stop: %s", e)
    return out


@dataclass
class ReportResult:
    path: Path
    data: ReportData
    images: list[Path]
    seconds: float


def write_report(run: str | Path, out: str | Path | None = None, *, images: Sequence[str] = (),
                 predictor: bool = True) -> ReportResult:
    """Write ``runs/RUN/report.html`` (or ``out``); with ``images`` (``png``, ``svg``,
    ``pdf``) also ``runs/RUN/figures/*.png|svg|pdf`` where kaleido is available."""
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
