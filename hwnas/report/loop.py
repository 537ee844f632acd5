"""The report of a train-predict-search loop run (``hwnas search --train-budget K``).

A loop run has no trials or Pareto table of a search: its folder holds ``loop.json`` (the
settings, what a training is, the rounds, every trained Arch) and the CSVs of
:mod:`hwnas.search.loop_run`. :func:`loop_report_data` turns them into tables (the rounds with
the predictor's cross-validated Kendall tau, the front of the trained Archs, the predictor's
front over every candidate); :func:`write_loop_report` lays them out as ``report.html`` with
the search report's style. No figures: the page says so in its first line.
"""

from __future__ import annotations

import csv
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HwnasError
from ..io import atomic_write_text
from .data import TableData, fmt, fmt_count

STATE_FILE = "loop.json"
PREDICTED_ROWS = 30  # the predictor's front, at most this many rows (by latency)
WHAT = ("a loop run: this page shows its rounds (how each chose its archs, how many it "
        "trained, the cross-validated Kendall tau of the predictor that chose them), the front "
        "of the trained archs and the predictor's front over every candidate; no figures")

__all__ = ["LoopReport", "is_loop_folder", "loop_report_data", "write_loop_report"]


@dataclass
class LoopReport:
    run: str
    run_dir: Path
    meta: list[str]  # lines of text
    tables: list[TableData]
    notes: list[str] = field(default_factory=list)
    trained: int = 0
    rounds: int = 0
    front: int = 0
    path: Path | None = None  # report.html, once written


def is_loop_folder(run_dir: Path) -> bool:
    return (Path(run_dir) / STATE_FILE).is_file() and not (Path(run_dir) / "config.json").is_file()


def _rows(path: Path) -> list[dict[str, str]] | None:
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise HwnasError(f"{path}: unreadable ({e})") from None


def loop_report_data(run_dir: Path) -> LoopReport:
    """The tables of the loop run in ``run_dir`` (HwnasError if loop.json cannot be read)."""
    p = Path(run_dir) / STATE_FILE
    try:
        state = json.loads(p.read_text())
        s, o = dict(state.get("settings") or {}), dict(state.get("oracle") or {})
    except (OSError, ValueError, TypeError) as e:
        raise HwnasError(f"{p}: unreadable ({e})") from None
    col = o.get("column") or ("table_acc" if str(s.get("oracle", "")).startswith("table:")
                              else "val_acc")
    trained = list(state.get("trained") or [])
    rounds = list(state.get("rounds") or [])
    notes: list[str] = []
    if o.get("kind") == "train":
        what = (f"{col}: {o.get('recipe', {}).get('epochs', '?')} epoch(s) of the retrain "
                f"recipe (id {o.get('recipe_id', '?')}) on {o.get('data', '?')}; "
                f"{o.get('split', '')}")
    elif o.get("kind") == "table":
        what = f"{col}: looked up in {o.get('file', '?')} (sha256 {str(o.get('sha256', ''))[:12]})"
    else:
        what = f"{col}: from the oracle {s.get('oracle', '?')}"
    pred = state.get("predictor") or {}
    tau = pred.get("cv_kendall_tau")
    meta = [
        f"space {s.get('space', '?')} at resolution {s.get('resolution', '?')}; device "
        f"{s.get('device', '?')} (latency: its predictor); oracle {s.get('oracle', '?')}; "
        f"budget {s.get('budget', '?')} trainings in {1 + int(s.get('rounds') or 0)} rounds",
        f"what a training gives: {what}",
        f"{len(trained)} trained" + (f"; the final predictor's 5-fold CV Kendall tau "
                                     f"{fmt(tau, '.3f')} on them" if tau is not None else ""),
    ]
    if o.get("queue"):
        meta.append(f"work queue {o['queue'].get('study')} in {o['queue'].get('storage')}")
    if len(trained) < int(s.get("budget") or 0):
        notes.append(f"the loop has trained {len(trained)} of its {s.get('budget')} "
                     f"(running, or stopped: the same hwnas search command resumes it)")
    rt = TableData(
        "Rounds", ["round", "chosen by", "trained", "total", "predictor CV Kendall tau"],
        [[str(r.get("round")), str(r.get("how", "")), str(r.get("trained")),
          str(r.get("total")), fmt(r.get("cv_kendall_tau"), ".3f")] for r in rounds],
        [[""] * 5 for _ in rounds],
        "Each round trains the archs it chose: the first spread across the latency range, the "
        "later ones from the predictor's optimistic front (accuracy + its uncertainty). The "
        "Kendall tau is the 5-fold cross-validated rank agreement of the predictor that chose "
        "the round, on the archs trained before it ('-': too few to say).", "loop-rounds")
    tables = [rt]
    front = _rows(Path(run_dir) / "loop-front.csv")
    if front is None:
        notes.append("no loop-front.csv yet (written when the loop finishes)")
        front = []
    tables.append(TableData(
        f"Front of the trained archs ({col} x predicted latency)",
        [col, "latency (ms)", "params", "MACs", "round", "arch"],
        [[fmt(r.get(col), ".4g"), fmt(r.get("latency_ms"), ".3f"), fmt_count(r.get("params")),
          fmt_count(r.get("macs")), str(r.get("round", "")), _short(r.get("arch", ""))]
         for r in front],
        [["", "", "", "", "", str(r.get("arch", ""))] for r in front],
        f"Pareto front of the trained archs: their {col} (what a training gives, above) "
        "against the device predictor's latency; loop-front.csv.", "loop-front"))
    pred_rows = _rows(Path(run_dir) / "loop-predicted.csv") or []
    shown = pred_rows[:PREDICTED_ROWS]
    tables.append(TableData(
        "The predictor's front over every candidate",
        ["predicted", "std", "latency (ms)", "trained", "arch"],
        [[fmt(r.get("predicted_acc"), ".4g"), fmt(r.get("std"), ".3g"),
          fmt(r.get("latency_ms"), ".3f"), str(r.get("trained", "")),
          _short(r.get("arch", ""))] for r in shown],
        [["", "", "", "", str(r.get("arch", ""))] for r in shown],
        f"Pareto front of the final predictor's {col} (with its uncertainty) x latency over all "
        f"candidates: the untrained ones are what to train next"
        + (f"; the first {PREDICTED_ROWS} of {len(pred_rows)} by latency (all in "
           "loop-predicted.csv)" if len(pred_rows) > PREDICTED_ROWS else "; loop-predicted.csv"),
        "loop-predicted"))
    return LoopReport(Path(run_dir).name, Path(run_dir), meta, tables, notes, len(trained),
                      len(rounds), len(front))


def _short(s: str, n: int = 70) -> str:
    s = str(s or "")
    return s if len(s) <= n else s[: n - 3] + "..."


def write_loop_report(run_dir: Path, out: str | Path | None = None) -> LoopReport:
    """Write the loop run's ``report.html`` (or ``out``)."""
    from .page import CSS, table_html

    d = loop_report_data(run_dir)
    e = html.escape
    title = f"hwnas report: {d.run} (train-predict-search loop)"
    parts = [f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width, initial-scale=1'>"
             f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>{e(title)}</h1>", f"<p class=caption>{e(WHAT[0].upper() + WHAT[1:])}.</p>",
             "<div class=meta>" + "<br>".join(e(m) for m in d.meta) + "</div>"]
    parts += [f"<div class=note>{e(n)}</div>" for n in d.notes]
    parts += [table_html(t, t.id) for t in d.tables]
    parts.append(f"<footer>written {e(time.strftime('%Y-%m-%d %H:%M:%S %z'))} from "
                 f"{e(str(d.run_dir / STATE_FILE))}</footer></main></body></html>\n")
    path = Path(out) if out else d.run_dir / "report.html"
    try:
        atomic_write_text(path, "\n".join(parts))
    except OSError as err:
        raise HwnasError(f"cannot write {path}: {err.strerror or err}") from None
    d.path = path
    return d
