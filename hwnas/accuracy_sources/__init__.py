"""Accuracy sources: the accuracy of Archs from results someone measured, behind the interface
of :mod:`hwnas.accuracy` (``score(archs) -> list[float]``, ``name``, ``settings()``), without
torch. One module per part:

* :mod:`~hwnas.accuracy_sources.results` -- :func:`read_results` (NAS-Bench-Macro's JSON, a
  CSV ``arch,accuracy[,std,seeds]``, a run's retrain.csv, a predictor file's rows) and
  :class:`TableEstimator` (``table:FILE``, a lookup); numpy-free, scikit-learn-free;
* :mod:`~hwnas.accuracy_sources.features` -- :class:`ArchEncoder`, Arch -> feature rows;
* :mod:`~hwnas.accuracy_sources.regressor` -- :class:`AccuracyRegressor` (accuracy with an
  uncertainty from feature rows) and :func:`kendall_tau`;
* :mod:`~hwnas.accuracy_sources.predictor` -- :class:`AccuracyPredictor` (``predictor:FILE``:
  encoder + regressor fit on measured rows, cross-validated) and :func:`make_source`.

The names are importable from here too (loaded on first use, so that reading a results
table does not import scikit-learn); code in hwnas imports them from their module.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "PREDICTOR_FORMAT": "results", "Results": "results", "Row": "results",
    "TableEstimator": "results", "read_results": "results", "sha256_of": "results",
    "ArchEncoder": "features", "block_token": "features", "layout_of": "features",
    "DEFAULT_MODEL": "regressor", "MODELS": "regressor", "AccuracyRegressor": "regressor",
    "kendall_tau": "regressor", "out_of_fold": "regressor",
    "MIN_ROWS": "predictor", "SOURCE_KINDS": "predictor", "AccuracyPredictor": "predictor",
    "is_source": "predictor", "make_source": "predictor", "parse_source": "predictor",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
