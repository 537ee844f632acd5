"""The latency predictor ablation of a device as figure data: what ``hwnas predictor eval``
measures (MACs-linear, LUT sum, block-model sum, the full predictor; held-out networks, per
group) and stores in ``latency_tables/DEVICE/predictor_eval.csv``.

The report prefers that stored file (the evaluation the user ran, with their ``--space`` and
``--folds``) when it is not older than the device's table; otherwise it shows the
evaluation it computed itself for the parity plot (5-fold, every group)."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs import finite

__all__ = ["EVAL_FILE", "AblationData", "AblationSeries", "ablation_data", "read_predictor_eval"]

EVAL_FILE = "predictor_eval.csv"  # what `hwnas predictor eval` writes into the device's folder
_TABLE_FILES = ("blocks.json", "networks.json")


@dataclass
class AblationSeries:
    """One predictor's metrics, one value per group (None: not available, e.g. n/a)."""

    key: str  # macs_linear | lut_sum | block_sum | full
    name: str
    mape: list[float | None]
    within10: list[float | None]
    tau: list[float | None]
    rmse: list[float | None]
    n: list[int]


@dataclass
class AblationData:
    device: str
    groups: list[str]
    series: list[AblationSeries]
    source: str  # "stored" (predictor_eval.csv) | "computed" (by the report)
    caption: str
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_bars(self) -> int:
        return sum(v is not None for s in self.series for v in s.mape)


def read_predictor_eval(path: str | Path) -> list[dict[str, Any]] | None:
    """The rows of a predictor_eval.csv (group, predictor, n and the metrics); None if there
    is none or it cannot be read as one."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or not {"group", "predictor", "mape_pct"} <= set(rows[0]):
        return None
    return rows


def stored_is_current(path: Path, table_dir: Path) -> bool:
    """True when ``path`` is not older than the device table's files."""
    try:
        t = path.stat().st_mtime
    except OSError:
        return False
    return all(t >= p.stat().st_mtime for p in (table_dir / n for n in _TABLE_FILES) if p.is_file())


def ablation_data(rows: Sequence[dict[str, Any]], device: str, source: str = "computed",
                  path: Path | None = None, folds: int | None = None) -> AblationData:
    """Per group of networks, each predictor's held-out MAPE, share within +-10 % and Kendall
    tau, from :class:`hwnas.predictor.Evaluation` rows or the rows of a predictor_eval.csv."""
    from ..predictor.evaluate import PREDICTOR_NAMES, PREDICTORS

    groups: list[str] = []
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        g, p = str(r.get("group", "")), str(r.get("predictor", ""))
        if p not in PREDICTORS:
            continue
        if g not in groups:
            groups.append(g)
        by[(g, p)] = r
    series = []
    for p in PREDICTORS:
        if not any((g, p) in by for g in groups):
            continue
        cells = [by.get((g, p), {}) for g in groups]
        n = [int(finite(c.get("n")) or 0) for c in cells]
        ok = [k > 0 for k in n]

        def col(name: str, cells=cells, ok=ok) -> list[float | None]:
            return [finite(c.get(name)) if good else None for c, good in zip(cells, ok, strict=True)]

        series.append(AblationSeries(p, PREDICTOR_NAMES[p], col("mape_pct"), col("within10_pct"),
                                     col("kendall_tau"), col("rmse_ms"), n))
    if source == "stored" and path is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        how = f"as stored by hwnas predictor eval in {path.name} ({when})"
    else:
        how = (f"computed by the report ({folds or 5}-fold over the space's networks; run "
               f"hwnas predictor eval --device {device} to store your own)")
    cap = (f"Latency predictor ablation on device {device}, {how}: each network predicted by "
           "models fitted without it (space networks k-fold; baselines and other networks held "
           "out). MACs-linear: a line in MACs; LUT sum: the table's block latencies added up "
           "(n/a where a block is missing); block-model sum: the block model's predictions "
           "added up; full: block values plus the network-level correction (what the search "
           "uses). Left: MAPE (lower is better); right: Kendall tau of predicted vs measured "
           "(ranking, higher is better); n networks per group in the hover.")
    return AblationData(device, groups, series, source, cap, path)
