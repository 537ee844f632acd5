"""The two estimators of the latency predictor (scikit-learn: ``fit`` returns self, fitted
state in attributes ending with ``_``).

* :class:`BlockModel` -- latency of one piece (block key) from its shape. A non-negative
  linear model over analytical op costs (MACs of pointwise / depthwise / dense convs,
  activation elements, bytes moved, op count) gives a baseline that extrapolates
  sensibly; a gradient-boosted model corrects it in log space from shape features
  (H, C_in, C_out, expansion channels, kernel, stride, SE, activation, ...). It answers
  for keys the table lacks and says when a key lies far outside what was measured.
* :class:`NetworkModel` -- measured whole-network latency from
  :class:`~hwnas.predictor.features.ArchFeatures`. A weighted ridge regression: it learns
  the per-inference overhead and the effects between blocks that a plain sum misses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..arch import ACTS
from ..costs import piece_costs
from ..errors import HwnasError
from ..pieces import Piece
from .features import ARCH_FEATURES, PieceFeatures, as_pieces, operator_of

MIN_NETWORKS = 20  # whole-network measurements needed to fit the network model


# ---- the block model ----------------------------------------------------------------------------

_RANGE_FIELDS = ("h", "cin", "cout", "hidden")
#: the activation a piece kind borrows its shape behaviour from when its own activation was
#: never measured on that kind (the closest in cost first)
_SIBLINGS = {"relu": ("relu6", "hswish"), "relu6": ("relu", "hswish"),
             "hswish": ("relu6", "relu")}
_TRANSFER_CLIP = (0.5, 2.0)  # bounds of the activation-cost ratio applied in a transfer


def activated_elements(p: Piece) -> int:
    """Elements the activation of ``p`` is applied to (fused into a conv or not): the stem's
    and head's outputs, an MBConv block's expansion and depthwise outputs, a skip's output
    when it has an activation."""
    if p.kind == "stem":
        return p.cout * p.h_out ** 2
    if p.kind == "head":
        return p.cout * p.h ** 2
    if p.kind == "mb":
        return (p.hidden * p.h ** 2 if p.hidden != p.cin else 0) + p.hidden * p.h_out ** 2
    if p.kind == "skip":
        return p.cout * p.h_out ** 2 if p.act else 0
    return 0


def _act_columns(ps: Sequence[Piece]) -> np.ndarray:
    """Activated elements of each piece in the column of its activation (relu, relu6,
    hswish): what one element of each activation costs is shared by every piece kind."""
    A = np.zeros((len(ps), len(ACTS)))
    for i, p in enumerate(ps):
        if p.act:
            A[i, ACTS.index(p.act)] = activated_elements(p)
    return A


class BlockModel(RegressorMixin, BaseEstimator):
    """Latency (ms) of one piece from its block key.

    A non-negative linear model over the analytical costs (:data:`COST_FEATURES`, fitted
    for relative error) times a gradient-boosted correction ``exp(g(shape features))``
    fitted on the log ratio of measured to linear. The linear part extrapolates in
    proportion to work; the correction learns how efficient each shape is. Deterministic
    for a given ``random_state``; fits in a fraction of a second on ~2,000 blocks.

    ``correction=False`` keeps only the linear part. ``extrapolation_factor``: a key is
    flagged as extrapolating when H, C_in, C_out, expansion channels or MACs lie more than
    this factor outside the range measured for its op type, or its kernel outside the
    measured kernels.

    Activations transfer across piece kinds: a piece whose activation was never measured on
    its kind (a ReLU stem in a table of ReLU6 stems and ReLU blocks) is predicted as the
    same piece with a measured sibling activation (:meth:`transfer`), times the ratio of
    their costs under a second linear model that prices each activation's elements from
    every piece it was measured on. Such pieces are flagged by :meth:`extrapolation`.
    """

    def __init__(self, correction: bool = True, max_iter: int = 100, learning_rate: float = 0.1,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 5, random_state: int = 0,
                 extrapolation_factor: float = 1.5):
        self.correction = correction
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state
        self.extrapolation_factor = extrapolation_factor

    def fit(self, X: Iterable[str | Piece], y: Sequence[float]) -> BlockModel:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import LinearRegression
        from threadpoolctl import threadpool_limits

        ps = as_pieces(X)
        y = np.asarray(y, dtype=float)
        if len(ps) != len(y) or not len(ps):
            raise HwnasError(f"block model: need block keys and latencies of equal, non-zero length "
                             f"(got {len(ps)} and {len(y)})")
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise HwnasError("block model: latencies must be positive numbers")
        self.cost_features_ = PieceFeatures("cost").fit(ps)
        self.shape_features_ = PieceFeatures("shape").fit(ps)
        C = self.cost_features_.transform(ps)
        scale = C.max(axis=0)
        scale[scale <= 0] = 1.0
        self.cost_scale_ = scale
        w = 1.0 / y ** 2  # relative error
        self.linear_ = LinearRegression(positive=True, fit_intercept=False).fit(C / scale, y,
                                                                                sample_weight=w)
        self.floor_ms_ = float(y.min()) / 4
        # the activation-cost model of transfers: the same costs plus per-activation elements
        E = np.hstack([C / scale, _act_columns(ps)])
        self.act_scale_ = np.maximum(E.max(axis=0), 1e-12)
        self.act_linear_ = LinearRegression(positive=True, fit_intercept=False).fit(
            E / self.act_scale_, y, sample_weight=w)
        if self.correction:
            base = self._linear(C)
            # one thread: fitting is tiny, and OpenMP threads on a busy 2-core box cost seconds
            with threadpool_limits(1):
                self.gbm_ = HistGradientBoostingRegressor(
                    max_iter=self.max_iter, learning_rate=self.learning_rate,
                    max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                    early_stopping=False, random_state=self.random_state,
                ).fit(self.shape_features_.transform(ps), np.log(y / base))
        else:
            self.gbm_ = None
        # what was measured: operators, and per op type the ranges of the shape fields
        self.operators_ = sorted({operator_of(p) for p in ps})
        self.acts_ = sorted({p.act for p in ps if p.act})
        ranges: dict[str, dict[str, list[float]]] = {}
        for p in ps:
            r = ranges.setdefault(p.kind, {})
            vals = {f: getattr(p, f) for f in _RANGE_FIELDS}
            vals["macs"] = piece_costs(p).macs
            for f, v in vals.items():
                lo_hi = r.setdefault(f, [v, v])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], v), max(lo_hi[1], v)
            r.setdefault("kernels", [])
            if p.kernel not in r["kernels"]:
                r["kernels"].append(p.kernel)
        self.ranges_ = ranges
        self.n_train_ = len(ps)
        return self

    def _linear(self, C: np.ndarray) -> np.ndarray:
        return np.maximum(self.linear_.predict(C / self.cost_scale_), self.floor_ms_)

    def predict(self, X: Iterable[str | Piece]) -> np.ndarray:
        check_is_fitted(self, "linear_")
        ps = as_pieces(X)
        if not ps:
            return np.zeros(0)
        subs = [self.transfer(p) for p in ps] if hasattr(self, "acts_") else [None] * len(ps)
        qs = [q or p for p, q in zip(ps, subs, strict=True)]
        out = self._linear(self.cost_features_.transform(qs))
        if self.gbm_ is not None:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                out = out * np.exp(self.gbm_.predict(self.shape_features_.transform(qs)))
        moved = [i for i, q in enumerate(subs) if q is not None]
        if moved:
            out[moved] *= self.transfer_ratio([ps[i] for i in moved], [qs[i] for i in moved])
        return out

    def _act_cost(self, ps: Sequence[Piece]) -> np.ndarray:
        E = np.hstack([self.cost_features_.transform(ps) / self.cost_scale_, _act_columns(ps)])
        return np.maximum(self.act_linear_.predict(E / self.act_scale_), self.floor_ms_)

    def transfer_ratio(self, ps: Sequence[Piece], qs: Sequence[Piece]) -> np.ndarray:
        """Cost of each piece of ``ps`` over its sibling in ``qs`` (another activation) under
        the activation-cost model, clipped to 0.5..2."""
        check_is_fitted(self, "act_linear_")
        return np.clip(self._act_cost(ps) / self._act_cost(qs), *_TRANSFER_CLIP)

    def transfer(self, p: Piece) -> Piece | None:
        """The piece ``p`` is predicted from when its activation was never measured on its
        kind (with or without SE as ``p``), but was measured on another kind: ``p`` with the
        first sibling activation measured on its kind. None when ``p``'s operator was
        measured, or when nothing can stand in for it."""
        check_is_fitted(self, "operators_")
        if operator_of(p) in self.operators_ or p.act not in getattr(self, "acts_", ()):
            return None
        for a in _SIBLINGS.get(p.act, ()):
            q = replace(p, act=a)
            if operator_of(q) in self.operators_:
                return q
        return None

    def uncovered(self, p: Piece) -> str | None:
        """Why the model cannot answer for ``p`` (an operator never measured), or None."""
        check_is_fitted(self, "operators_")
        sig = operator_of(p)
        if sig in self.operators_ or self.transfer(p) is not None:
            return None
        return (f"block {p.key} needs a {sig.replace('/', ' ')} operator, which was never measured "
                f"(measured: {', '.join(self.operators_)})")

    def extrapolation(self, p: Piece) -> str | None:
        """Why ``p`` lies far outside what was measured, or None."""
        check_is_fitted(self, "ranges_")
        q = self.transfer(p)
        if q is not None:
            others = sorted({o.split("/")[0] for o in self.operators_
                             if o.split("/")[1:2] == [p.act]})
            return (f"{p.act} was never measured on a {p.kind} piece{' with SE' if p.se else ''}: "
                    f"predicted as its {q.act} twin, with the {p.act} cost learned on "
                    f"{', '.join(others)} pieces (an extrapolation)")
        r = self.ranges_.get(p.kind)
        if r is None:
            return f"no {p.kind} block was measured"
        ks = r["kernels"]
        if p.kernel < min(ks) or p.kernel > max(ks):
            return f"kernel {p.kernel} is outside the measured kernels {sorted(ks)}"
        f = self.extrapolation_factor
        vals = {k: getattr(p, k) for k in _RANGE_FIELDS}
        vals["macs"] = piece_costs(p).macs
        for k, v in vals.items():
            lo, hi = r[k]
            if v > hi * f or v < lo / f:
                return f"{k}={v} is far outside the measured {lo:g}..{hi:g}"
        return None


# ---- the network model ----------------------------------------------------------------------------

DEFAULT_NETWORK_FEATURES = ("block_sum", "pieces", "params", "bytes")


class NetworkModel(RegressorMixin, BaseEstimator):
    """Whole-network latency (ms) from :class:`ArchFeatures` columns.

    A ridge regression on the chosen ``features`` (standardised), weighted for relative
    error, with the penalty picked by efficient leave-one-out CV among ``alphas``. On top
    of the block sum it learns the per-inference overhead and the effects between blocks
    a sum misses (per-block session overhead that a network does not pay, weights falling
    out of cache in a big network).

    ``clip``: the correction (prediction / block sum) is kept within the range measured on
    the training networks, so that a network far outside them (fewer pieces, a smaller sum:
    MobileNetV3-small next to a space's networks) is not extrapolated by the linear terms
    into a prediction of a third of its block sum.
    """

    def __init__(self, features: Sequence[str] = DEFAULT_NETWORK_FEATURES,
                 alphas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
                 clip: bool = True):
        self.features = features
        self.alphas = alphas
        self.clip = clip

    def _cols(self) -> list[int]:
        unknown = [f for f in self.features if f not in ARCH_FEATURES]
        if unknown or not self.features:
            raise HwnasError(f"network model: unknown feature(s) {unknown} "
                             f"(known: {', '.join(ARCH_FEATURES)})")
        return [ARCH_FEATURES.index(f) for f in self.features]

    def fit(self, X: np.ndarray, y: Sequence[float]) -> NetworkModel:
        from sklearn.linear_model import RidgeCV
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(y, dtype=float)
        Z = np.asarray(X, dtype=float)[:, self._cols()]
        self.scaler_ = StandardScaler().fit(Z)
        self.ridge_ = RidgeCV(alphas=tuple(self.alphas)).fit(self.scaler_.transform(Z), y,
                                                             sample_weight=1.0 / y ** 2)
        # the fitted map in raw units: y = Z @ coef_ + intercept_ (fast predict, readable)
        self.coef_ = self.ridge_.coef_ / self.scaler_.scale_
        self.intercept_ = float(self.ridge_.intercept_ - self.coef_ @ self.scaler_.mean_)
        self.alpha_ = float(self.ridge_.alpha_)
        X = np.asarray(X, dtype=float)
        ok = X[:, 0] > 0  # block_sum is the first ArchFeatures column
        r = y[ok] / X[ok, 0]
        self.ratio_range_ = (float(r.min()), float(r.max())) if len(r) else (0.0, np.inf)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = np.asarray(X, dtype=float)
        out = X[:, self._cols()] @ self.coef_ + self.intercept_
        if self.clip:
            lo, hi = self.ratio_range_
            out = np.clip(out, lo * X[:, 0], hi * X[:, 0])
        return out


__all__ = ["DEFAULT_NETWORK_FEATURES", "MIN_NETWORKS", "BlockModel", "NetworkModel",
           "activated_elements"]
