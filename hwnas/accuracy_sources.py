"""Accuracy sources: the accuracy of Archs from results someone measured, behind the interface
of :mod:`hwnas.accuracy` (``score(archs) -> list[float]``, ``name``, ``settings()``), without
torch.

* :func:`read_results` -- measured results from a file: NAS-Bench-Macro's JSON as it is
  published (``"02012100" -> {"test_acc": [3 seeds, percent], "mean_acc", "std", ...}``: each
  key is the arch ``macro:<key>``, its accuracy ``mean_acc``, kept in percent as the file
  gives it), a CSV with columns ``arch,accuracy[,std,seeds]`` (``arch`` any ARCH spec: a
  canonical string, a baseline name, an arch file, ``macro:...``), or a run's ``retrain.csv``
  (``arch``, ``acc_mean``, ``acc_std``, ``seeds``). Bad input is one line: a missing file, a
  directory, missing columns, a NaN or negative accuracy, one arch with two values, none.
* :class:`TableEstimator` (``table:FILE``) -- looks each Arch up by its canonical string, as
  given (a table is of one space and one dataset: nothing is adapted); a missing Arch is one
  line naming it.
* :class:`ArchEncoder` -- Arch -> feature rows (scikit-learn transformer): the block choice
  (kind, kernel, expansion) one-hot per layer position padded to the deepest Arch, log
  widths per position, choice counts over the whole net and per stage (feature-map size),
  depth, resolution, log MACs and params (:func:`hwnas.costs.arch_costs`). It refuses an
  Arch of another layout (input, stem, head, classes) than it was fit on, or deeper.
* :class:`AccuracyRegressor` -- a scikit-learn regressor with ``predict(X, return_std=True)``:
  bagged ridges on the rank-normalised accuracies by default (chosen by measurement,
  benchmarks/accuracy_model_selection.py: as good as a GP at ranking NAS-Bench-Macro, and it
  fits on thousands of rows in seconds), or one ridge, extra-trees, a random forest, a GP.
* :class:`AccuracyPredictor` (``predictor:FILE``) -- encoder + regressor fit on the measured
  rows of a results file, or of a predictor file (:data:`PREDICTOR_FORMAT`: the training
  rows and settings, refitted on load; no pickles). Fitting reports a seeded k-fold
  cross-validated Kendall tau and MAPE (:meth:`AccuracyPredictor.cross_validate`; logged
  by :func:`make_source` and kept in its ``settings()``, hence in a search's config.json).

:func:`make_source` builds either from ``table:FILE`` / ``predictor:FILE``; every source
records in ``settings()`` where its numbers came from (kind, file, sha256).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .arch import ACT_CODE, Arch, num_str
from .errors import HwnasError
from .io import file_digest

log = logging.getLogger(__name__)

SOURCE_KINDS = ("table", "predictor")
PREDICTOR_FORMAT = "hwnas-accuracy-predictor/1"
MODELS = ("extra-trees", "random-forest", "ridge", "ridge-bag", "gp")
DEFAULT_MODEL = "ridge-bag"
MIN_ROWS = 5  # measured archs needed to fit a predictor
MAX_RESULTS_BYTES = 256 * 2**20

__all__ = ["DEFAULT_MODEL", "MODELS", "PREDICTOR_FORMAT", "SOURCE_KINDS", "AccuracyPredictor",
           "AccuracyRegressor", "ArchEncoder", "Results", "Row", "TableEstimator",
           "is_source", "kendall_tau", "make_source", "read_results", "sha256_of"]


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
    from .io import input_file

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
    from .arch import Block
    from .macro import CLASSES, HEAD, RESOLUTION, STAGES, STEM, check_code, macro_arch

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
            raise AssertionError("hwnas.macro changed: update accuracy_sources._macro")
        _MACRO_CHECKED.append(code)
    return a


_MACRO_CHECKED: list[str] = []


def _resolve(spec: str, where: str) -> Arch:
    from .baselines import resolve_arch

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


# ---- features -------------------------------------------------------------------------------------------

def block_token(b: Any) -> str:
    """A block's choice: ``skip``, or ``k<kernel>e<expand>`` (+ ``q<se>``) + activation."""
    if getattr(b, "kind", "mb") != "mb":
        return str(b.kind)
    t = f"k{b.kernel}e{num_str(b.expand)}"
    if b.se:
        t += f"q{num_str(b.se)}"
    return t + ACT_CODE[b.act]


def layout_of(a: Arch) -> str:
    """What an Arch shares with every Arch of its space: input channels, stem, head and
    classes (the canonical string without resolution and blocks)."""
    parts = a.to_string().split("_")
    return f"c{a.channels}_{parts[1]}_{parts[-2]}_{parts[-1]}"


def _stages(a: Arch) -> list[int]:
    """Each block's stage: how many strided blocks came before it (and itself)."""
    out, s = [], 0
    for b in a.blocks:
        if b.stride > 1:
            s += 1
        out.append(s)
    return out


class ArchEncoder(TransformerMixin, BaseEstimator):
    """Arch -> feature row, a scikit-learn transformer (``fit`` learns the layout, the depth
    and the choices seen per position; ``transform`` refuses an Arch of another layout)."""

    def __init__(self, costs: bool = True):
        self.costs = costs

    def fit(self, archs: Sequence[Arch], y: Any = None) -> ArchEncoder:
        archs = list(archs)
        if not archs:
            raise HwnasError("accuracy predictor: no archs to fit on")
        self.layouts_ = sorted({layout_of(a) for a in archs})
        self.depth_ = max(len(a.blocks) for a in archs)
        toks = [[block_token(b) for b in a.blocks] for a in archs]
        self.position_tokens_ = [sorted({t[i] for t in toks if i < len(t)} | {"-"})
                                 for i in range(self.depth_)]
        self.tokens_ = sorted({x for t in toks for x in t})
        self.stages_ = max(max(_stages(a), default=0) for a in archs) + 1
        self.n_features_out_ = len(self._names())
        return self

    def _names(self) -> list[str]:
        names = [f"l{i}={t}" for i, ts in enumerate(self.position_tokens_) for t in ts]
        names += [f"l{i}.log2_out" for i in range(self.depth_)]
        names += [f"n[{t}]" for t in self.tokens_]
        names += [f"s{s}.n[{t}]" for s in range(self.stages_) for t in self.tokens_]
        names += ["depth", "log2_resolution"]
        if self.costs:
            names += ["log_macs", "log_params"]
        return names

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self._names(), dtype=object)

    def check(self, a: Arch) -> None:
        """HwnasError when ``a``'s features would not mean what they meant in the fit."""
        check_is_fitted(self, "layouts_")
        lay = layout_of(a)
        if lay not in self.layouts_:
            raise HwnasError(f"arch {a.to_string()} is of another space than the predictor was "
                             f"fit on (input/stem/head/classes {lay}, fitted on "
                             f"{', '.join(self.layouts_)}): its features would not mean the same")
        if len(a.blocks) > self.depth_:
            raise HwnasError(f"arch {a.to_string()} has {len(a.blocks)} blocks, more than the "
                             f"{self.depth_} of any arch the predictor was fit on (another space)")
        unknown = {block_token(b) for b in a.blocks} - set(self.tokens_)
        if unknown:
            raise HwnasError(f"arch {a.to_string()} has block choices {', '.join(sorted(unknown))} "
                             "that no arch the predictor was fit on has (another space)")

    def transform(self, archs: Sequence[Arch]) -> np.ndarray:
        from .costs import arch_costs

        archs = list(archs)
        for a in archs:
            self.check(a)
        col = {n: i for i, n in enumerate(self._names())}
        X = np.zeros((len(archs), self.n_features_out_))
        for r, a in enumerate(archs):
            stages = _stages(a)
            for i in range(self.depth_):
                if i < len(a.blocks):
                    b = a.blocks[i]
                    t = block_token(b)
                    j = col.get(f"l{i}={t}")
                    if j is not None:  # a choice never seen at this position: all zero
                        X[r, j] = 1.0
                    X[r, col[f"l{i}.log2_out"]] = math.log2(b.out)
                    X[r, col[f"n[{t}]"]] += 1
                    s = min(stages[i], self.stages_ - 1)
                    X[r, col[f"s{s}.n[{t}]"]] += 1
                else:
                    X[r, col[f"l{i}=-"]] = 1.0
            X[r, col["depth"]] = sum(1 for b in a.blocks if getattr(b, "kind", "mb") == "mb")
            X[r, col["log2_resolution"]] = math.log2(a.resolution)
            if self.costs:
                c = arch_costs(a)
                X[r, col["log_macs"]] = math.log(max(c.macs, 1))
                X[r, col["log_params"]] = math.log(max(c.params, 1))
        return X

    def fit_transform(self, archs: Sequence[Arch], y: Any = None) -> np.ndarray:
        archs = list(archs)
        return self.fit(archs).transform(archs)


# ---- the regressor --------------------------------------------------------------------------------------

def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(np.asarray(a, float), np.asarray(b, float)).statistic
    return float(t) if t == t else 0.0


class AccuracyRegressor(RegressorMixin, BaseEstimator):
    """Accuracy from feature rows with an uncertainty: ``predict(X, return_std=True)``.

    ``model``: ``ridge-bag`` (default: ``n_estimators`` (at most 100) ridges on bootstrap
    samples, the penalty chosen once by leave-one-out on all rows; std = their spread), ``ridge`` (one RidgeCV; std = residual std),
    ``extra-trees`` (std = spread of the trees), ``random-forest`` or ``gp`` (GaussianProcessRegressor, constant x
    dot-product + constant x RBF + white noise; its own std). Features are standardised.

    ``target="rank"`` (default) fits the normal scores of the accuracies' ranks instead of
    the accuracies: a few badly trained networks (NAS-Bench-Macro reaches down to 45 % beside
    a bulk at 88-93 %) then no longer pull a least-squares fit away from ordering the bulk;
    predictions are mapped back to accuracy through the training pairs (interpolated,
    extended linearly beyond them), which keeps their order. ``target="raw"`` fits the
    accuracies (standardised). Seeded by ``random_state`` and deterministic (one thread)."""

    def __init__(self, model: str = DEFAULT_MODEL, n_estimators: int = 300,
                 max_features: float = 0.5, random_state: int = 0, target: str = "rank"):
        self.model = model
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.random_state = random_state
        self.target = target

    def fit(self, X: np.ndarray, y: Sequence[float]) -> AccuracyRegressor:
        import warnings

        from sklearn.preprocessing import StandardScaler

        if self.model not in MODELS:
            raise HwnasError(f"accuracy predictor: unknown model {self.model!r} "
                             f"(known: {', '.join(MODELS)})")
        X = np.asarray(X, float)
        y = np.asarray(y, float)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        if self.target not in ("rank", "raw"):
            raise HwnasError(f"accuracy predictor: target must be rank or raw, got {self.target!r}")
        if self.target == "rank":
            from scipy.stats import norm, rankdata

            t = norm.ppf((rankdata(y) - 0.5) / len(y))
            order = np.argsort(t, kind="stable")
            self.z_knots_, self.y_knots_ = t[order], y[order]
            slope = np.polyfit(t, y, 1)[0] if len(set(t)) > 1 else 0.0
            self.y_slope_ = float(max(slope, 0.0))
        else:
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
            t = (y - self.y_mean_) / self.y_scale_
        rs = self.random_state
        from threadpoolctl import threadpool_limits

        # one BLAS thread: the products are small, and threads on a busy 2-core box cost 10x
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # GP bounds reached, small-sample ridge
            if self.model in ("extra-trees", "random-forest"):
                from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

                cls = ExtraTreesRegressor if self.model == "extra-trees" else RandomForestRegressor
                self.estimator_ = cls(n_estimators=self.n_estimators, max_features=self.max_features,
                                      random_state=rs, n_jobs=1).fit(Z, t)
            elif self.model == "ridge":
                from sklearn.linear_model import RidgeCV

                self.estimator_ = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Z, t)
                self.resid_std_ = float(np.std(t - self.estimator_.predict(Z)))
            elif self.model == "ridge-bag":
                from sklearn.linear_model import Ridge, RidgeCV

                # the penalty by leave-one-out on all rows, once; then plain ridges on
                # bootstrap samples (100 RidgeCV fits would take a minute on 6,561 rows)
                self.alpha_ = float(RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Z, t).alpha_)
                rng = np.random.default_rng(rs)
                members = []
                for _ in range(max(2, min(self.n_estimators, 100))):
                    idx = rng.integers(0, len(t), len(t))
                    members.append(Ridge(alpha=self.alpha_).fit(Z[idx], t[idx]))
                self.estimator_ = members
            else:
                from sklearn.gaussian_process import GaussianProcessRegressor
                from sklearn.gaussian_process.kernels import (
                    RBF,
                    ConstantKernel,
                    DotProduct,
                    WhiteKernel,
                )

                k = ConstantKernel() * DotProduct() + ConstantKernel() * RBF(3.0) + WhiteKernel()
                self.estimator_ = GaussianProcessRegressor(k, normalize_y=False,
                                                           random_state=rs).fit(Z, t)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray, return_std: bool = False):
        check_is_fitted(self, "estimator_")
        Z = self.scaler_.transform(np.asarray(X, float))
        if self.model in ("extra-trees", "random-forest"):
            per = np.stack([t.predict(Z) for t in self.estimator_.estimators_])
            mean, std = per.mean(0), per.std(0)
        elif self.model == "ridge":
            mean = self.estimator_.predict(Z)
            std = np.full(len(Z), self.resid_std_)
        elif self.model == "ridge-bag":
            per = np.stack([m.predict(Z) for m in self.estimator_])
            mean, std = per.mean(0), per.std(0)
        else:
            mean, std = self.estimator_.predict(Z, return_std=True)
        if self.target == "rank":
            mean, std = self._back(mean), std * self.y_slope_
        else:
            mean, std = mean * self.y_scale_ + self.y_mean_, std * self.y_scale_
        return (mean, std) if return_std else mean

    def _back(self, z: np.ndarray) -> np.ndarray:
        """Normal scores -> accuracy: the training pairs interpolated, linear beyond them."""
        zk, yk, a = self.z_knots_, self.y_knots_, self.y_slope_
        out = np.interp(z, zk, yk)
        lo, hi = z < zk[0], z > zk[-1]
        out[lo] = yk[0] + a * (z[lo] - zk[0])
        out[hi] = yk[-1] + a * (z[hi] - zk[-1])
        return out


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
        from sklearn.model_selection import KFold

        n = len(self.y)
        k = max(2, min(folds, n))
        oof = np.zeros(n)
        for tr, te in KFold(k, shuffle=True, random_state=seed).split(self.X):
            m = self._new_regressor().fit(self.X[tr], self.y[tr])
            oof[te] = m.predict(self.X[te])
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
        from .io import atomic_write_json

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
    from .space import SearchSpace

    if isinstance(space, SearchSpace):
        return space.name
    p = Path(str(space))
    return p.stem if p.suffix in (".yaml", ".yml") else str(space)


def _check_space_archs(space: Any, archs: Sequence[Arch], path: Path) -> None:
    """Every training Arch has the layout (input, stem, head) of ``space``."""
    from .space import SearchSpace, load_space

    sp = space if isinstance(space, SearchSpace) else load_space(space)
    ref = sp.sample(seed=0, n=1)[0]
    want = layout_of(ref).rsplit("_", 1)[0]  # classes are adapted to the data: not compared
    for a in archs:
        if layout_of(a).rsplit("_", 1)[0] != want:
            raise HwnasError(f"{path}: arch {a.to_string()} is not of space '{sp.name}' (its "
                             f"input/stem/head differ from the space's {want})")


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
