"""The learned accuracy predictor (``predictor:FILE``) and the factory of accuracy sources.

:class:`AccuracyPredictor` -- :class:`~hwnas.accuracy_sources.features.ArchEncoder` +
:class:`~hwnas.accuracy_sources.regressor.AccuracyRegressor` fit on the measured rows of a
results file, or of a predictor file (:data:`~hwnas.accuracy_sources.results.PREDICTOR_FORMAT`:
the training rows and settings, refitted on load; no pickles). Fitting reports a seeded
k-fold cross-validated Kendall tau and MAPE (:meth:`AccuracyPredictor.cross_validate`; logged
by :func:`make_source` and kept in its ``settings()``, hence in a search's config.json).

:func:`make_source` builds either source from ``table:FILE`` / ``predictor:FILE``; every
source records in ``settings()`` where its numbers came from (kind, file, sha256).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import Arch
from ..errors import HwnasError
from .features import ArchEncoder, layout_of
from .regressor import DEFAULT_MODEL, MODELS, AccuracyRegressor, kendall_tau, out_of_fold
from .results import PREDICTOR_FORMAT, Results, TableEstimator, read_results

log = logging.getLogger(__name__)

SOURCE_KINDS = ("table", "predictor")
MIN_ROWS = 5  # measured archs needed to fit a predictor

__all__ = ["MIN_ROWS", "SOURCE_KINDS", "AccuracyPredictor", "is_source", "make_source",
           "parse_source"]


# ---- the predictor ------------------------------------------------------------------------------------

def _check_int(v: Any, lo: int, hi: int, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise HwnasError(f"{where}: must be an integer in {lo}..{hi}, got {v!r}")
    return v


class AccuracyPredictor:
    """``predictor:FILE``: encoder + regressor fit on measured rows (a results file, or a
    predictor file's rows and settings). ``score`` predicts, ``predict(archs,
    return_std=True)`` gives the uncertainty too; ``space`` (a name) is checked on use."""

    name = "predictor"

    def __init__(self, results: Results, model: str = DEFAULT_MODEL, random_state: int = 0,
                 n_estimators: int = 300, space: str | None = None,
                 source: dict[str, Any] | None = None):
        if len(results.rows) < MIN_ROWS:
            raise HwnasError(f"{results.path}: {len(results.rows)} measured archs; an accuracy "
                             f"predictor needs at least {MIN_ROWS}")
        self.results, self.space = results, space
        self.cv: dict[str, Any] | None = None  # cross_validate()'s, when make_source ran it
        self.model, self.random_state, self.n_estimators = model, random_state, n_estimators
        self.source = source or {"kind": results.kind, "file": str(results.path.resolve()),
                                 "sha256": results.sha256}
        archs = [results.archs[r.arch] for r in results.rows]
        self.y = np.array([r.accuracy for r in results.rows])
        if space is not None:
            _check_space_archs(space, archs, results.path)
        self.encoder = ArchEncoder().fit(archs)
        self.X = self.encoder.transform(archs)
        self.regressor = self._new_regressor().fit(self.X, self.y)
        classes = {a.classes for a in archs}
        self.classes = classes.pop() if len(classes) == 1 else None

    def _new_regressor(self) -> AccuracyRegressor:
        return AccuracyRegressor(self.model, self.n_estimators, random_state=self.random_state)

    # ---- use -----------------------------------------------------------------------------------
    def predict(self, archs: Sequence[Arch], return_std: bool = False):
        archs = list(archs)
        if not archs:
            return (np.zeros(0), np.zeros(0)) if return_std else np.zeros(0)
        return self.regressor.predict(self.encoder.transform(archs), return_std=return_std)

    def score(self, archs: Sequence[Arch]) -> list[float]:
        return [float(v) for v in self.predict(archs)]

    def settings(self) -> dict[str, Any]:
        return {"estimator": "predictor", **{f"source_{k}": v for k, v in self.source.items()},
                "model": self.model, "random_state": self.random_state,
                "n_estimators": self.n_estimators, "space": self.space,
                "rows": len(self.results.rows), **({"cv": self.cv} if self.cv else {})}

    def cross_validate(self, folds: int = 5, seed: int = 0) -> dict[str, Any]:
        """Seeded k-fold out-of-fold predictions of the training rows: Kendall tau, Spearman
        and MAPE (%) against the measured accuracies."""
        from scipy.stats import spearmanr

        n = len(self.y)
        oof, k = out_of_fold(self._new_regressor, self.X, self.y, folds, seed)
        nz = self.y != 0
        return {"folds": k, "seed": seed, "rows": n, "kendall_tau": kendall_tau(oof, self.y),
                "spearman": float(spearmanr(oof, self.y).statistic),
                "mape_pct": float(100 * np.mean(np.abs(oof[nz] - self.y[nz]) / self.y[nz]))}

    # ---- as data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": PREDICTOR_FORMAT,
                "settings": {"model": self.model, "random_state": self.random_state,
                             "n_estimators": self.n_estimators, "space": self.space},
                "source": self.source,
                "rows": [{"arch": r.arch, "accuracy": r.accuracy, "std": r.std, "seeds": r.seeds}
                         for r in self.results.rows]}

    def save(self, path: str | Path) -> Path:
        from ..io import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, space: str | None = None) -> AccuracyPredictor:
        """A results file (fit with the default settings) or a predictor file (fit with its
        settings); ``space``: the space it will score (refused if the file's is another)."""
        results = read_results(path)
        if results.kind != "predictor":
            return cls(results, space=space)
        d = json.loads(results.path.read_text())
        s = d.get("settings")
        where = f"{results.path}: settings"
        if not isinstance(s, dict):
            raise HwnasError(f"{where}: must be an object")
        for k in s:
            if k not in ("model", "random_state", "n_estimators", "space"):
                raise HwnasError(f"{where}: unknown setting {k!r}")
        model = s.get("model", DEFAULT_MODEL)
        if model not in MODELS:
            raise HwnasError(f"{where}.model: {model!r} is not one of {', '.join(MODELS)}")
        rs = _check_int(s.get("random_state", 0), 0, 2**32 - 1, f"{where}.random_state")
        ne = _check_int(s.get("n_estimators", 300), 1, 5000, f"{where}.n_estimators")
        fspace = s.get("space")
        if space is not None and fspace is not None and _space_name(space) != _space_name(fspace):
            raise HwnasError(f"{results.path}: a predictor of space '{fspace}', not of "
                             f"'{_space_name(space)}' (its features would not mean the same)")
        src = d.get("source") if isinstance(d.get("source"), dict) else None
        src = {**(src or {}), "predictor_file": str(results.path.resolve()),
               "predictor_sha256": results.sha256}
        return cls(results, model=model, random_state=rs, n_estimators=ne,
                   space=fspace if fspace is not None else space, source=src)


def _space_name(space: Any) -> str:
    from ..space import SearchSpace

    if isinstance(space, SearchSpace):
        return space.name
    p = Path(str(space))
    return p.stem if p.suffix in (".yaml", ".yml") else str(space)


def _check_space_archs(space: Any, archs: Sequence[Arch], path: Path) -> None:
    """Every training Arch has the layout (input, stem, head) of ``space``."""
    from ..space import SearchSpace, load_space

    sp = space if isinstance(space, SearchSpace) else load_space(space)
    ref = sp.sample(seed=0, n=1)[0]
    want = layout_of(ref).rsplit("_", 1)[0]  # classes are adapted to the data: not compared
    for a in archs:
        if layout_of(a).rsplit("_", 1)[0] != want:
            raise HwnasError(f"{path}: arch {a.to_string()} is not of space '{sp.name}' (its "
                             f"input/stem/head differ from the space's {want})")


# ---- the factory ----------------------------------------------------------------------------------------

def is_source(kind: str) -> bool:
    """Whether ``kind`` names an accuracy source (``table:FILE``, ``predictor:FILE``)."""
    return isinstance(kind, str) and kind.split(":", 1)[0] in SOURCE_KINDS and ":" in kind


def parse_source(kind: str) -> tuple[str, str]:
    what, _, f = kind.partition(":")
    if what not in SOURCE_KINDS or not f.strip():
        raise HwnasError(f"accuracy source {kind!r}: expected table:FILE or predictor:FILE")
    return what, f


def make_source(kind: str, space: Any = None) -> TableEstimator | AccuracyPredictor:
    """``table:FILE`` -> :class:`TableEstimator`; ``predictor:FILE`` ->
    :class:`AccuracyPredictor` (fit now; ``space`` is checked against a predictor file's)."""
    what, f = parse_source(kind)
    t0 = time.perf_counter()
    if what == "table":
        est: TableEstimator | AccuracyPredictor = TableEstimator(f)
    else:
        est = AccuracyPredictor.load(f, space=space)
        cv = est.cross_validate()
        est.cv = cv
        log.info("accuracy predictor %s on %d measured archs: %d-fold CV Kendall tau %.3f, "
                 "MAPE %.2f %%", est.model, cv["rows"], cv["folds"], cv["kendall_tau"],
                 cv["mape_pct"])
    log.debug("%s ready in %.2f s", kind, time.perf_counter() - t0)
    return est
