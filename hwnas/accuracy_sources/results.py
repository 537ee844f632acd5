"""Measured results from a file, and the ``table:FILE`` lookup (no torch, no scikit-learn).

* :func:`read_results` -- measured results from a file: NAS-Bench-Macro's JSON as it is
  published (``"02012100" -> {"test_acc": [3 seeds, percent], "mean_acc", "std", ...}``: each
  key is the arch ``macro:<key>``, its accuracy ``mean_acc``, kept in percent as the file
  gives it), a CSV with columns ``arch,accuracy[,std,seeds]`` (``arch`` any ARCH spec: a
  canonical string, a baseline name, an arch file, ``macro:...``), a run's ``retrain.csv``
  (``arch``, ``acc_mean``, ``acc_std``, ``seeds``), or an accuracy predictor file's training
  rows (:data:`PREDICTOR_FORMAT`). Bad input is one line: a missing file, a directory,
  missing columns, a NaN or negative accuracy, one arch with two values, none.
* :class:`TableEstimator` (``table:FILE``) -- looks each Arch up by its canonical string, as
  given (a table is of one space and one dataset: nothing is adapted); a missing Arch is one
  line naming it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch import Arch
from ..errors import HwnasError
from ..io import file_digest

log = logging.getLogger(__name__)

PREDICTOR_FORMAT = "hwnas-accuracy-predictor/1"
MAX_RESULTS_BYTES = 256 * 2**20

__all__ = ["PREDICTOR_FORMAT", "Results", "Row", "TableEstimator", "read_results", "sha256_of"]


# ---- results files --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One measured arch: its spec as the file gives it, its canonical string, accuracy, the
    spread over seeds and how many seeds (None where the file does not say)."""

    spec: str
    arch: str
    accuracy: float
    std: float | None = None
    seeds: int | None = None


@dataclass
class Results:
    """The measured rows of one file, by canonical string."""

    path: Path
    kind: str  # nas-bench-macro | csv | retrain-csv | predictor
    sha256: str
    rows: list[Row]
    archs: dict[str, Arch]  # canonical string -> Arch (what the rows were resolved to)

    def by_arch(self) -> dict[str, Row]:
        return {r.arch: r for r in self.rows}


def sha256_of(path: Path) -> str:
    return file_digest(path, "sha256")


def _check_file(path: str | Path, what: str) -> Path:
    from ..io import input_file

    return input_file(path, f"a {what} file", MAX_RESULTS_BYTES)


def _number(v: Any, where: str, what: str = "accuracy", allow_none: bool = False) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        if allow_none:
            return None
        raise HwnasError(f"{where}: no {what}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise HwnasError(f"{where}: {what} {str(v)[:40]!r} is not a number") from None
    if isinstance(v, bool) or not math.isfinite(x):
        raise HwnasError(f"{where}: {what} {v!r} is not a finite number")
    if x < 0:
        raise HwnasError(f"{where}: {what} {x:g} is negative")
    return x


def _seed_count(v: Any, where: str, listed: bool = False) -> int | None:
    """A seed count (``3``), or with ``listed`` the seeds themselves (retrain.csv's
    ``0;1;2``) counted."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if listed:
        return len([x for x in str(v).replace(",", ";").split(";") if x.strip()]) or None
    try:
        n = int(str(v).strip()) if not isinstance(v, bool) else -1
    except ValueError:
        n = -1
    if n < 1:
        raise HwnasError(f"{where}: seeds must be a positive count, got {v!r}")
    return n


def _macro(code: str) -> Arch:
    """:func:`hwnas.macro.macro_arch` without its per-Arch validation (~1 ms, which is 7 s for
    the whole benchmark): every code of the benchmark is valid once its digits are; the
    first one is compared with ``macro_arch``'s."""
    from ..arch import Block
    from ..macro import CLASSES, HEAD, RESOLUTION, STAGES, STEM, check_code, macro_arch

    check_code(code)
    blocks, digits = [], iter(code)
    for out, n in STAGES:
        for i in range(n):
            d, st = next(digits), 2 if i == 0 else 1
            blocks.append(Block.skip(out, st) if d == "0" else
                          Block(kernel=3 if d == "1" else 5, expand=3.0 if d == "1" else 6.0,
                                out=out, stride=st, act="relu"))
    a = Arch(resolution=RESOLUTION, stem=STEM, blocks=tuple(blocks), head=HEAD,
             classes=CLASSES, channels=3)
    if not _MACRO_CHECKED:
        if a != macro_arch(code):
            raise AssertionError("hwnas.macro changed: update accuracy_sources.results._macro")
        _MACRO_CHECKED.append(code)
    return a


_MACRO_CHECKED: list[str] = []


def _resolve(spec: str, where: str) -> Arch:
    from ..baselines import resolve_arch

    if spec.startswith("macro:"):
        try:
            return _macro(spec[len("macro:"):])
        except HwnasError as e:
            raise HwnasError(f"{where}: {e}") from None
    try:
        return resolve_arch(spec)
    except HwnasError as e:
        raise HwnasError(f"{where}: {e}") from None


def read_results(path: str | Path) -> Results:
    """The measured rows of ``path`` (module docstring: NAS-Bench-Macro JSON, a CSV, a
    retrain.csv, or a predictor file's training rows); HwnasError (one line) on bad input."""
    p = _check_file(path, "results")
    sha = sha256_of(p)
    raw = p.read_bytes()
    text = None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HwnasError(f"{p}: not a text file (expected a CSV or JSON results file)") from None
    if p.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise HwnasError(f"{p}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if isinstance(d, dict) and d.get("format") == PREDICTOR_FORMAT:
            kind, entries = "predictor", _predictor_entries(d, p)
        else:
            kind, entries = "nas-bench-macro", _macro_entries(d, p)
    else:
        kind, entries = _csv_entries(text, p)
    if not entries:
        raise HwnasError(f"{p}: holds no measured archs (an empty table)")
    rows: dict[str, Row] = {}
    archs: dict[str, Arch] = {}
    for where, spec, acc, std, seeds in entries:
        a = _resolve(spec, where)
        key = a.to_string()
        old = rows.get(key)
        if old is not None:
            if old.accuracy != acc:
                raise HwnasError(f"{where}: arch {spec} is listed twice with different "
                                 f"accuracies ({old.accuracy:g} for {old.spec}, {acc:g})")
            continue
        rows[key] = Row(spec, key, acc, std, seeds)
        archs[key] = a
    return Results(p, kind, sha, list(rows.values()), archs)


def _macro_entries(d: Any, p: Path) -> list[tuple]:
    if not isinstance(d, dict):
        raise HwnasError(f"{p}: a JSON results file must be NAS-Bench-Macro's object "
                         "'<8 digits>' -> {mean_acc, std, test_acc}, or an hwnas predictor file")
    out = []
    for k, v in d.items():
        where = f"{p}: {k}"
        if not isinstance(v, dict) or "mean_acc" not in v:
            raise HwnasError(f"{where}: expected an object with mean_acc (NAS-Bench-Macro)")
        acc = _number(v["mean_acc"], where)
        std = _number(v.get("std"), where, "std", allow_none=True)
        seeds = len(v["test_acc"]) if isinstance(v.get("test_acc"), list) else None
        out.append((where, f"macro:{k}", acc, std, seeds))
    return out


def _csv_entries(text: str, p: Path) -> tuple[str, list[tuple]]:
    reader = csv.DictReader(text.splitlines())
    cols = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = cols
    if "arch" in cols and "accuracy" in cols:
        kind, acc_col, std_col, skip_empty = "csv", "accuracy", "std", False
    elif "arch" in cols and "acc_mean" in cols:  # a run's retrain.csv
        kind, acc_col, std_col, skip_empty = "retrain-csv", "acc_mean", "acc_std", True
    else:
        raise HwnasError(f"{p}: a CSV results file needs the columns arch and accuracy "
                         f"(optional: std, seeds), or a retrain.csv's arch and acc_mean; "
                         f"found {(', '.join(cols) or 'no header')[:80]}")
    out = []
    try:
        for i, r in enumerate(reader, start=2):
            spec = (r.get("arch") or "").strip()
            where = f"{p}, line {i}"
            if not spec and not any((v or "").strip() for v in r.values() if isinstance(v, str)):
                continue  # a blank line
            if not spec:
                raise HwnasError(f"{where}: no arch")
            if skip_empty and not (r.get(acc_col) or "").strip():
                log.info("%s: %s has no accuracy yet; left out", where, spec)
                continue
            acc = _number(r.get(acc_col), where)
            std = _number(r.get(std_col), where, "std", allow_none=True)
            seeds = _seed_count(r.get("seeds"), where, listed=kind == "retrain-csv")
            out.append((where, spec, acc, std, seeds))
    except csv.Error as e:
        raise HwnasError(f"{p}: not a readable CSV ({e})") from None
    return kind, out


def _predictor_entries(d: dict, p: Path) -> list[tuple]:
    rows = d.get("rows")
    if not isinstance(rows, list):
        raise HwnasError(f"{p}: an accuracy predictor file without a 'rows' list")
    out = []
    for i, r in enumerate(rows):
        where = f"{p}: rows[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("arch"), str):
            raise HwnasError(f"{where}: must be an object with an arch string")
        out.append((where, r["arch"], _number(r.get("accuracy"), where),
                    _number(r.get("std"), where, "std", allow_none=True),
                    _seed_count(r.get("seeds"), where)))
    return out


# ---- the table ----------------------------------------------------------------------------------------

class TableEstimator:
    """``table:FILE``: each Arch's accuracy looked up in a results file by its canonical
    string, as given. Instant; one line names the first Arch the table lacks."""

    name = "table"

    def __init__(self, path: str | Path):
        self.results = read_results(path)
        if self.results.kind == "predictor":
            raise HwnasError(f"{path}: is an accuracy predictor file; use predictor:{path}")
        self.values = {r.arch: r.accuracy for r in self.results.rows}
        classes = {a.classes for a in self.results.archs.values()}
        #: the classes of the table's Archs when they agree (the search adapts to them)
        self.classes = classes.pop() if len(classes) == 1 else None

    def settings(self) -> dict[str, Any]:
        r = self.results
        return {"estimator": "table", "file": str(r.path.resolve()), "sha256": r.sha256,
                "format": r.kind, "rows": len(r.rows)}

    def score(self, archs: Sequence[Arch]) -> list[float]:
        out = []
        for a in archs:
            s = a.to_string()
            v = self.values.get(s)
            if v is None:
                raise HwnasError(f"arch {s} is not in table {self.results.path} "
                                 f"({len(self.values)} archs{self._hint(a)})")
            out.append(v)
        return out

    def _hint(self, a: Arch) -> str:
        arch0 = next(iter(self.results.archs.values()))
        if a.resolution != arch0.resolution:
            return f"; the table's are at resolution {arch0.resolution}, this one at {a.resolution}"
        if a.classes != arch0.classes:
            return f"; the table's have {arch0.classes} classes, this one {a.classes}"
        return ""

