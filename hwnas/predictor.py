"""Learned latency predictor on top of a device's latency table.

Two scikit-learn estimators, and what joins them:

* :class:`BlockModel` -- latency of one piece (block key) from its shape. A non-negative
  linear model over analytical op costs (MACs of pointwise / depthwise / dense convs,
  activation elements, bytes moved, op count) gives a baseline that extrapolates
  sensibly; a gradient-boosted model corrects it in log space from shape features
  (H, C_in, C_out, expansion channels, kernel, stride, SE, activation, ...). It answers
  for keys the table lacks and says when a key lies far outside what was measured.
* :class:`NetworkModel` -- measured whole-network latency from :class:`ArchFeatures`
  (sum of block latencies -- measured where the table has the key, the block model
  elsewhere --, per-stage sums, piece count, MACs, params, activation traffic, counts by
  op type). A weighted ridge regression: it learns the per-inference overhead and the
  effects between blocks that a plain sum misses.
* :class:`LatencyPredictor` -- the two fitted on one device's measurements, with a fast
  batch ``predict`` for the search (per-piece values cached by key, no torch), ``explain``
  for one Arch, and persistence as data (training measurements + settings as JSON,
  refitted deterministically on load; no pickle).

Costs are computed analytically from a :class:`~hwnas.keys.Piece` (:func:`piece_costs`),
matching :mod:`hwnas.model`'s torch counts (params include BatchNorm's two per channel;
MACs are conv + linear multiply-accumulates as ``torch.utils.flop_counter`` counts them).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .arch import Arch, parse_string
from .errors import HwnasError
from .keys import Piece, arch_pieces, piece_peak_bytes

log = logging.getLogger(__name__)

BYTES = 4  # float32
MIN_NETWORKS = 20  # whole-network measurements needed to fit the network model
STATISTICS = ("min", "p10", "median")
PREDICTOR_SCHEMA = 1


# ---- analytical costs of a piece ------------------------------------------------------------

@dataclass(frozen=True)
class PieceCosts:
    """Analytical costs of one piece at batch 1 (float32).

    ``macs`` = ``macs_dense`` (full convs: stem) + ``macs_pw`` (1x1 convs: expansion,
    projection, head) + ``macs_dw`` (depthwise) + ``macs_fc`` (SE and classifier, on
    pooled vectors). Elements written: ``conv_elems`` by convs, ``act_elems`` by
    activations that run as their own operator (hard-swish; ReLU/ReLU6 fuse into the conv),
    ``se_elems`` by squeeze-excite (pooling reads + gating writes), ``res_elems`` by the
    residual add. ``bytes`` = 4 x (inputs read + outputs written + weights read) over all
    ops; ``ops`` the operator count after the usual Conv+BN(+ReLU/Clip) fusion.
    """

    macs: int
    params: int
    bytes: int
    macs_dense: int
    macs_pw: int
    macs_dw: int
    macs_fc: int
    conv_elems: int
    act_elems: int
    se_elems: int
    res_elems: int
    ops: int
    peak_bytes: int


@lru_cache(maxsize=1 << 16)
def piece_costs(p: Piece) -> PieceCosts:
    """MACs, params, bytes moved and an op breakdown of ``p``, computed from its shape."""
    hw_in, hw_out = p.h * p.h, p.h_out * p.h_out
    dense = pw = dw = fc = params = ops = 0
    conv_e = act_e = se_e = res_e = 0
    moved = 0  # elements read + written + weights
    hswish = p.act == "hswish"  # not fused into the conv by onnxruntime: its own op

    def conv(cin: int, cout: int, k: int, hw_i: int, hw_o: int, groups: int = 1,
             act: bool = True) -> int:
        nonlocal params, ops, moved, conv_e, act_e
        w = cout * (cin // groups) * k * k
        params += w + 2 * cout  # conv (no bias) + BatchNorm
        ops += 1
        conv_e += cout * hw_o
        moved += cin * hw_i + cout * hw_o + w
        if act and hswish:
            ops += 1
            act_e += cout * hw_o
            moved += 2 * cout * hw_o
        return w * hw_o

    if p.kind == "stem":
        dense += conv(p.cin, p.cout, p.kernel, hw_in, hw_out)
    elif p.kind == "head":
        pw += conv(p.cin, p.cout, 1, hw_in, hw_in)
    elif p.kind == "cls":
        fc += p.cin * p.cout
        params += p.cin * p.cout + p.cout
        ops += 3  # pool, flatten, gemm
        se_e += p.cin * hw_in  # global pooling reads the map
        moved += p.cin * hw_in + p.cin + p.cin * p.cout + p.cout
    else:
        if p.hidden != p.cin:
            pw += conv(p.cin, p.hidden, 1, hw_in, hw_in)
        dw += conv(p.hidden, p.hidden, p.kernel, hw_in, hw_out, groups=p.hidden)
        if p.se:
            fc += 2 * p.hidden * p.se
            params += 2 * p.hidden * p.se + p.se + p.hidden
            ops += 6  # pool, conv, relu, conv, gate, mul
            se_e += 2 * p.hidden * hw_out  # pooling reads, gating writes
            moved += 3 * p.hidden * hw_out + 2 * p.hidden * p.se
        pw += conv(p.hidden, p.cout, 1, hw_out, hw_out, act=False)
        if p.residual:
            ops += 1
            res_e += p.cout * hw_out
            moved += 3 * p.cout * hw_out
    return PieceCosts(macs=dense + pw + dw + fc, params=params, bytes=BYTES * moved,
                      macs_dense=dense, macs_pw=pw, macs_dw=dw, macs_fc=fc, conv_elems=conv_e,
                      act_elems=act_e, se_elems=se_e, res_elems=res_e, ops=ops,
                      peak_bytes=piece_peak_bytes(p))


#: channel blocking assumed for the "padded" cost features: onnxruntime's x86 NCHWc layout
#: with AVX-512 works on blocks of 16 channels (8 with AVX2), so a 24-channel conv costs
#: about as much as a 32-channel one. The block model weighs padded and exact costs as
#: the device's measurements say (on ARM boards the exact ones win).
CHANNEL_BLOCK = 16


def _ceil(c: int, m: int = CHANNEL_BLOCK) -> int:
    return -(-c // m) * m


def padded_piece(p: Piece) -> Piece:
    """``p`` with its channel counts rounded up to :data:`CHANNEL_BLOCK` (not the image
    channels of the stem's input, nor the classifier's classes)."""
    from dataclasses import replace

    return replace(p, cin=p.cin if p.kind == "stem" else _ceil(p.cin),
                   cout=p.cout if p.kind == "cls" else _ceil(p.cout), hidden=_ceil(p.hidden),
                   se=_ceil(p.se) if p.se else 0)


@lru_cache(maxsize=1 << 16)
def _piece(key: str) -> Piece:
    return Piece.from_key(key)


def _pieces(X: Iterable[str | Piece]) -> list[Piece]:
    out = []
    for x in X:
        if isinstance(x, Piece):
            out.append(x)
        else:
            out.append(_piece(str(x)))
    return out


def _signature(p: Piece) -> str:
    """The operator a piece needs, for coverage checks: kind, activation, SE or not."""
    return p.kind + (f"/{p.act}" if p.act else "") + ("/se" if p.se else "")


# ---- piece features and the block model -------------------------------------------------------

_KINDS = ("stem", "mb", "head", "cls")
_ACTS = ("", "relu", "relu6", "hswish")
SHAPE_FEATURES = ("h", "h_out", "c_in", "c_out", "hidden", "kernel", "stride", "se", "residual",
                  "kind", "act", "log_macs", "log_params", "log_bytes", "dw_share", "log_dw_out")
_COSTS = ("macs_dense", "macs_pw", "macs_dw3", "macs_dwk", "macs_fc", "conv_elems", "act_elems",
          "se_elems", "res_elems", "bytes")
COST_FEATURES = ("one", "ops", *_COSTS, *(f"{c}_padded" for c in _COSTS))


class PieceFeatures(TransformerMixin, BaseEstimator):
    """Block keys (or :class:`Piece` objects) -> a feature matrix.

    ``kind="shape"``: H, H_out, C_in, C_out, expansion channels, kernel, stride, SE channels,
    residual, op type and activation (as codes), log MACs / params / bytes moved, the
    depthwise share of MACs and the log depthwise output size (:data:`SHAPE_FEATURES`).
    ``kind="cost"``: the additive analytical costs a linear latency model is built on
    (:data:`COST_FEATURES`: a constant, operator count, MACs by op type, activation
    elements, bytes moved).
    """

    def __init__(self, kind: str = "shape"):
        self.kind = kind

    def fit(self, X: Iterable[str | Piece], y: Any = None) -> PieceFeatures:
        if self.kind not in ("shape", "cost"):
            raise ValueError(f"kind must be 'shape' or 'cost', got {self.kind!r}")
        self.n_features_out_ = len(self.get_feature_names_out())
        return self

    def transform(self, X: Iterable[str | Piece]) -> np.ndarray:
        check_is_fitted(self, "n_features_out_")
        ps = _pieces(X)
        rows = [_shape_row(p) if self.kind == "shape" else _cost_row(p) for p in ps]
        return np.asarray(rows, dtype=float).reshape(len(ps), self.n_features_out_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(SHAPE_FEATURES if self.kind == "shape" else COST_FEATURES, dtype=object)


@lru_cache(maxsize=1 << 16)
def _shape_row(p: Piece) -> tuple[float, ...]:
    c = piece_costs(p)
    return (p.h, p.h_out, p.cin, p.cout, p.hidden, p.kernel, p.stride, p.se, float(p.residual),
            _KINDS.index(p.kind), _ACTS.index(p.act), math.log(c.macs + 1), math.log(c.params + 1),
            math.log(c.bytes), c.macs_dw / (c.macs + 1), math.log(p.hidden * p.h_out ** 2 + 1))


@lru_cache(maxsize=1 << 16)
def _cost_row(p: Piece) -> tuple[float, ...]:
    c, q = piece_costs(p), piece_costs(padded_piece(p))
    k3 = p.kernel == 3

    def costs(c: PieceCosts) -> tuple[float, ...]:
        return (c.macs_dense, c.macs_pw, c.macs_dw if k3 else 0, 0 if k3 else c.macs_dw,
                c.macs_fc, c.conv_elems, c.act_elems, c.se_elems, c.res_elems, c.bytes)

    return (1.0, c.ops, *costs(c), *costs(q))


_RANGE_FIELDS = ("h", "cin", "cout", "hidden")


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

        ps = _pieces(X)
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
        self.operators_ = sorted({_signature(p) for p in ps})
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
        ps = _pieces(X)
        if not ps:
            return np.zeros(0)
        out = self._linear(self.cost_features_.transform(ps))
        if self.gbm_ is not None:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                out = out * np.exp(self.gbm_.predict(self.shape_features_.transform(ps)))
        return out

    def uncovered(self, p: Piece) -> str | None:
        """Why the model cannot answer for ``p`` (an operator never measured), or None."""
        check_is_fitted(self, "operators_")
        sig = _signature(p)
        if sig in self.operators_:
            return None
        return (f"block {p.key} needs a {sig.replace('/', ' ')} operator, which was never measured "
                f"(measured: {', '.join(self.operators_)})")

    def extrapolation(self, p: Piece) -> str | None:
        """Why ``p`` lies far outside what was measured, or None."""
        check_is_fitted(self, "ranges_")
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


# ---- arch features and the network model ------------------------------------------------------

LEVELS = 6  # per-stage sums: pieces grouped by how many stride-2 steps precede them (5+ pooled)
ARCH_FEATURES = ("block_sum", "pieces", "macs", "params", "bytes", "act_elems", "ops",
                 *(f"stage{i}_sum" for i in range(LEVELS)), "n_se", "n_residual", "n_expand",
                 "n_hswish", "missing_sum")
# per-piece columns summed over an arch: ms, macs, params, bytes, act_elems, ops, se, residual,
# expand, hswish, ms of pieces not in the table
_PCOLS = 11


class ArchFeatures(TransformerMixin, BaseEstimator):
    """Archs -> network features (:data:`ARCH_FEATURES`).

    ``block_sum`` adds the latency of every piece (stem, MBConv blocks, head, classifier):
    the table's value where ``table`` has the key, else ``block_model``'s prediction;
    ``stage{i}_sum`` splits that sum by how many stride-2 steps precede the piece;
    ``missing_sum`` is the part predicted by the block model. The rest are analytical
    totals (MACs, params, bytes moved, activation elements, operators) and counts by op type.

    Per-piece values are cached by shape, so transforming many Archs costs one pass over
    their blocks in Python plus vectorised sums; no torch module is built.
    """

    def __init__(self, block_model: BlockModel | None = None,
                 table: Mapping[str, float] | None = None):
        self.block_model = block_model
        self.table = table

    def fit(self, X: Sequence[Arch] = (), y: Any = None) -> ArchFeatures:
        if self.block_model is None:
            raise ValueError("ArchFeatures needs a fitted block_model")
        check_is_fitted(self.block_model, "linear_")
        self.table_ = dict(self.table or {})
        self.index_: dict[tuple, int] = {}
        self.pieces_: list[Piece] = []
        self.rows_ = np.zeros((0, _PCOLS))
        self.in_table_ = np.zeros(0, dtype=bool)
        self.notes_: list[str | None] = []  # extrapolation notes per cached piece
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(ARCH_FEATURES, dtype=object)

    # -- per-piece cache
    def _add(self, new: list[Piece]) -> None:
        bm = self.block_model
        for p in new:
            why = bm.uncovered(p)
            if why:
                raise HwnasError(why)
        ms = np.array([self.table_.get(p.key, np.nan) for p in new], dtype=float)
        in_table = ~np.isnan(ms)
        if (~in_table).any():
            miss = [p for p, t in zip(new, in_table, strict=True) if not t]
            ms[~in_table] = bm.predict(miss)
        rows = np.empty((len(new), _PCOLS))
        for i, p in enumerate(new):
            c = piece_costs(p)
            rows[i] = (ms[i], c.macs, c.params, c.bytes, c.conv_elems + c.act_elems + c.se_elems
                       + c.res_elems, c.ops, p.se > 0,
                       p.residual, p.kind == "mb" and p.hidden != p.cin, p.act == "hswish",
                       0.0 if in_table[i] else ms[i])
        self.pieces_.extend(new)
        self.notes_.extend(None if t else bm.extrapolation(p)
                           for p, t in zip(new, in_table, strict=True))
        # rows_ / in_table_ are buffers that grow by doubling (rows past len(pieces_) unused)
        n, need = len(self.pieces_) - len(new), len(self.pieces_)
        if need > len(self.rows_):
            cap = max(need, 2 * len(self.rows_), 256)
            self.rows_ = np.concatenate([self.rows_[:n], np.zeros((cap - n, _PCOLS))])
            self.in_table_ = np.concatenate([self.in_table_[:n], np.zeros(cap - n, dtype=bool)])
        self.rows_[n:need] = rows
        self.in_table_[n:need] = in_table

    @staticmethod
    def _piece_of(k: tuple) -> Piece:
        """The piece a cache key stands for (the rules of :func:`hwnas.keys.arch_pieces`)."""
        if len(k) == 3:  # an MBConv block: (H, C_in, Block)
            h, c, b = k
            return Piece("mb", h, c, b.out, b.kernel, b.stride, b.hidden(c), b.se_channels(c),
                         b.act, b.residual(c))
        tag, h, c, x = k
        if tag == 0:  # stem: (0, resolution, channels, Stem)
            return Piece("stem", h, c, x.out, x.kernel, x.stride, act=x.act)
        if tag == 2:  # head: (2, H, C_in, Head)
            return Piece("head", h, c, x.out, act=x.act)
        return Piece("cls", h, c, x)  # classifier: (3, H, C_in, classes)

    def piece_ids(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cached piece row per piece, arch offsets into it, stage level per piece)."""
        check_is_fitted(self, "index_")
        get = self.index_.get
        ids: list[int | None] = []
        levels: list[int] = []
        add_id, add_lv = ids.append, levels.append
        offsets = np.empty(len(archs) + 1, dtype=np.int64)
        miss: list[tuple[int, tuple]] = []  # (position in ids, cache key) of unseen pieces
        # the hot loop of the search: one dict lookup per piece. Keys: (H, C_in, Block) for
        # a block, (tag, H, C_in, Stem | Head | classes) for the others
        for j, a in enumerate(archs):
            offsets[j] = len(ids)
            st = a.stem
            k: tuple = (0, a.resolution, a.channels, st)
            i = get(k)
            if i is None:
                miss.append((len(ids), k))
            add_id(i)
            add_lv(0)
            h = (a.resolution + 2 * (st.kernel // 2) - st.kernel) // st.stride + 1
            c = st.out
            level = 1 if st.stride == 2 else 0
            for b in a.blocks:
                k = (h, c, b)
                i = get(k)
                if i is None:
                    miss.append((len(ids), k))
                add_id(i)
                add_lv(level)
                s = b.stride
                if s == 2:
                    level += 1
                h = (h + 2 * (b.kernel // 2) - b.kernel) // s + 1
                c = b.out
            if a.head is not None:
                k = (2, h, c, a.head)
                i = get(k)
                if i is None:
                    miss.append((len(ids), k))
                add_id(i)
                add_lv(level)
                c = a.head.out
            k = (3, h, c, a.classes)
            i = get(k)
            if i is None:
                miss.append((len(ids), k))
            add_id(i)
            add_lv(level)
        offsets[-1] = len(ids)
        if miss:
            index = self.index_
            new: dict[tuple, None] = dict.fromkeys(k for _, k in miss if k not in index)
            first = len(self.pieces_)
            self._add([self._piece_of(k) for k in new])
            for n, k in enumerate(new):
                index[k] = first + n
            for pos, k in miss:
                ids[pos] = index[k]
        lv = np.minimum(np.asarray(levels, dtype=np.int64), LEVELS - 1)
        return np.asarray(ids, dtype=np.int64), offsets, lv

    def transform(self, X: Sequence[Arch]) -> np.ndarray:
        archs = list(X)
        n = len(archs)
        if n == 0:
            return np.zeros((0, len(ARCH_FEATURES)))
        ids, offsets, levels = self.piece_ids(archs)
        R = self.rows_[ids]
        sums = np.add.reduceat(R, offsets[:-1], axis=0)
        owner = np.repeat(np.arange(n), np.diff(offsets))
        stage = np.bincount(owner * LEVELS + levels, weights=R[:, 0],
                            minlength=n * LEVELS).reshape(n, LEVELS)
        out = np.empty((n, len(ARCH_FEATURES)))
        out[:, 0] = sums[:, 0]
        out[:, 1] = np.diff(offsets)
        out[:, 2:7] = sums[:, 1:6]
        out[:, 7:7 + LEVELS] = stage
        out[:, 7 + LEVELS:] = sums[:, 6:]
        return out


DEFAULT_NETWORK_FEATURES = ("block_sum", "pieces", "params", "bytes")


class NetworkModel(RegressorMixin, BaseEstimator):
    """Whole-network latency (ms) from :class:`ArchFeatures` columns.

    A ridge regression on the chosen ``features`` (standardised), weighted for relative
    error, with the penalty picked by efficient leave-one-out CV among ``alphas``. On top
    of the block sum it learns the per-inference overhead and the effects between blocks
    a sum misses (per-block session overhead that a network does not pay, weights falling
    out of cache in a big network).
    """

    def __init__(self, features: Sequence[str] = DEFAULT_NETWORK_FEATURES,
                 alphas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)):
        self.features = features
        self.alphas = alphas

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
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X, dtype=float)[:, self._cols()] @ self.coef_ + self.intercept_


# ---- the predictor ------------------------------------------------------------------------------

def _parse_archs(strings: Iterable[str]) -> dict[str, Arch]:
    out = {}
    for s in strings:
        try:
            out[s] = parse_string(s)
        except HwnasError as e:
            raise HwnasError(f"network measurement {s[:60]!r}: {e}") from None
    return out


class LatencyPredictor(BaseEstimator):
    """Predicted on-device latency (ms) of Archs, from one device's measurements.

    ``fit(blocks, networks)`` takes plain data: block key -> ms (the LUT) and canonical arch
    string -> ms (whole networks). A :class:`BlockModel` is fitted on the blocks, and a
    :class:`NetworkModel` on :class:`ArchFeatures` of the networks. Networks whose blocks
    need an operator the table never measured are left out of the fit.

    ``block_model`` / ``network_model`` are unfitted templates (defaults when None);
    ``statistic`` records which of the table's statistics the latencies are.
    """

    def __init__(self, statistic: str = "min", block_model: BlockModel | None = None,
                 network_model: NetworkModel | None = None, min_networks: int = MIN_NETWORKS):
        self.statistic = statistic
        self.block_model = block_model
        self.network_model = network_model
        self.min_networks = min_networks

    # -- fitting
    def fit(self, blocks: Mapping[str, float], networks: Mapping[str, float],
            device: str | None = None, provenance: Mapping[str, Any] | None = None
            ) -> LatencyPredictor:
        from sklearn.base import clone

        where = f" of device '{device}'" if device else ""
        self._fit_blocks(blocks, device)
        archs = _parse_archs(networks)
        usable, skipped = [], []
        for s, a in archs.items():
            why = next((w for p in arch_pieces(a) if (w := self.block_model_.uncovered(p))), None)
            (skipped if why else usable).append(s)
        if skipped:
            log.info("leaving out %d network(s) with operators the table never measured",
                     len(skipped))
        if len(usable) < self.min_networks:
            raise HwnasError(
                f"too few whole-network measurements{where} to fit the latency predictor: "
                f"{len(usable)}, need at least {self.min_networks} (hwnas profile --device "
                f"{device or 'NAME'} --space SPACE --resolution R measures 150; or hwnas measure "
                f"ARCH... --device {device or 'NAME'} --save)")
        self.networks_ = {s: float(networks[s]) for s in usable}
        F = self.features_.transform([archs[s] for s in usable])
        yn = np.array([self.networks_[s] for s in usable])
        self.network_model_ = clone(self.network_model or NetworkModel()).fit(F, yn)
        self.device_ = device
        self.provenance_ = dict(provenance or {})
        return self

    def _fit_blocks(self, blocks: Mapping[str, float], device: str | None = None
                    ) -> LatencyPredictor:
        """The block model and the per-piece cache (no network model yet)."""
        from sklearn.base import clone

        if self.statistic not in STATISTICS:
            raise HwnasError(f"unknown statistic '{self.statistic}' (known: {', '.join(STATISTICS)})")
        if not blocks:
            where = f" of device '{device}'" if device else ""
            raise HwnasError(f"the latency table{where} has no block measurements: run hwnas "
                             f"profile --device {device or 'NAME'} --space SPACE --resolution R")
        keys = list(blocks)
        for k in keys:
            _piece(k)  # HwnasError names a bad key
        y = [float(blocks[k]) for k in keys]
        self.block_model_ = clone(self.block_model or BlockModel()).fit(keys, y)
        self.blocks_ = {k: float(blocks[k]) for k in keys}
        self.features_ = ArchFeatures(self.block_model_, self.blocks_).fit()
        stems = [_piece(k).h for k in keys if k.startswith("stem_")]
        self.resolutions_ = sorted(set(stems))
        self.device_ = device
        return self

    def check_resolutions(self, archs: Iterable[Arch]) -> None:
        """HwnasError unless every Arch's resolution lies within the measured resolutions
        (the block model interpolates between them, e.g. 160 from 96 and 224)."""
        check_is_fitted(self, "resolutions_")
        res = self.resolutions_
        bad = sorted({a.resolution for a in archs} - set(res))
        if not bad:
            return
        lo, hi = (res[0], res[-1]) if res else (None, None)
        out = [r for r in bad if lo is None or r < lo or r > hi]
        if out:
            dev = self.device_ or "NAME"
            raise HwnasError(
                f"device '{dev}' has no latency table at resolution {out[0]} (measured: "
                f"{', '.join(map(str, res)) or 'none'}; predictions interpolate between "
                f"measured resolutions only): run hwnas profile --device {dev} --space SPACE "
                f"--resolution {out[0]}")

    # -- predicting
    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted latency (ms) of every Arch; HwnasError if an Arch needs an operator the
        table never measured. Cached per piece: >10,000 Archs/s once blocks repeat."""
        check_is_fitted(self, "network_model_")
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        self.check_resolutions(archs)
        return self.network_model_.predict(self.features_.transform(archs))

    def explain(self, arch: Arch) -> list[tuple[str, float, bool]]:
        """(piece key, latency in ms, in the table) for every piece of ``arch``, in order:
        the table's value where it has the key, else the block model's prediction."""
        check_is_fitted(self, "network_model_")
        self.check_resolutions([arch])
        ids, _, _ = self.features_.piece_ids([arch])
        f = self.features_
        return [(f.pieces_[i].key, float(f.rows_[i, 0]), bool(f.in_table_[i])) for i in ids]

    def extrapolations(self, arch: Arch) -> list[tuple[str, str]]:
        """(piece key, why) for the pieces of ``arch`` that are not in the table and lie far
        outside what was measured (the block model extrapolates there)."""
        check_is_fitted(self, "network_model_")
        ids, _, _ = self.features_.piece_ids([arch])
        f = self.features_
        seen, out = set(), []
        for i in ids:
            if f.notes_[i] and i not in seen:
                seen.add(i)
                out.append((f.pieces_[i].key, f.notes_[i]))
        return out

    def lut_sum(self, arch: Arch) -> float | None:
        """Sum of the table's values over the pieces, None if a key is missing."""
        check_is_fitted(self, "blocks_")
        vals = [self.blocks_.get(p.key) for p in arch_pieces(arch)]
        return None if any(v is None for v in vals) else float(sum(vals))

    def block_sum(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum of the block model's predictions over the pieces (no table values)."""
        check_is_fitted(self, "block_model_")
        archs = list(archs)
        f = ArchFeatures(self.block_model_, {}).fit()
        return f.transform(archs)[:, 0] if archs else np.zeros(0)

    # -- persistence: data, refitted on load
    def settings(self) -> dict[str, Any]:
        """The estimators' parameters, as JSON-able data."""
        bm = self.block_model or BlockModel()
        nm = self.network_model or NetworkModel()
        net = nm.get_params()
        net = {k: list(v) if isinstance(v, tuple) else v for k, v in net.items()}
        return {"statistic": self.statistic, "min_networks": self.min_networks,
                "block_model": bm.get_params(), "network_model": net}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LatencyPredictor:
        try:
            net = dict(settings.get("network_model") or {})
            for k in ("features", "alphas"):
                if k in net:
                    net[k] = tuple(net[k])
            return cls(statistic=settings.get("statistic", "min"),
                       block_model=BlockModel(**(settings.get("block_model") or {})),
                       network_model=NetworkModel(**net),
                       min_networks=int(settings.get("min_networks", MIN_NETWORKS)))
        except (TypeError, ValueError, AttributeError) as e:
            raise HwnasError(f"predictor settings: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        check_is_fitted(self, "network_model_")
        import sklearn

        return {"schema": PREDICTOR_SCHEMA, "kind": "hwnas-predictor", "device": self.device_,
                "settings": self.settings(), "provenance": self.provenance_,
                "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
                "training": {"blocks": self.blocks_, "networks": self.networks_}}

    def save(self, path: str | Path) -> Path:
        """Write the predictor as data (settings + training measurements), atomically."""
        from .io import atomic_write_json

        try:
            return atomic_write_json(path, self.to_dict())
        except OSError as e:
            raise HwnasError(f"{path}: cannot write the predictor: {e.strerror or e}") from None

    @classmethod
    def from_dict(cls, d: Any, where: str = "predictor") -> LatencyPredictor:
        if not isinstance(d, dict) or d.get("kind") != "hwnas-predictor":
            raise HwnasError(f"{where}: not an hwnas predictor file (kind must be 'hwnas-predictor')")
        if d.get("schema") != PREDICTOR_SCHEMA:
            raise HwnasError(f"{where}: schema {d.get('schema')!r} is not supported "
                             f"(expected {PREDICTOR_SCHEMA})")
        tr = d.get("training")
        if not isinstance(tr, dict) or not isinstance(tr.get("blocks"), dict) \
                or not isinstance(tr.get("networks"), dict):
            raise HwnasError(f"{where}: training must hold 'blocks' and 'networks' objects")
        pred = cls.from_settings(d.get("settings") or {})
        try:
            blocks = {str(k): float(v) for k, v in tr["blocks"].items()}
            nets = {str(k): float(v) for k, v in tr["networks"].items()}
        except (TypeError, ValueError):
            raise HwnasError(f"{where}: training latencies must be numbers") from None
        return pred.fit(blocks, nets, device=d.get("device"), provenance=d.get("provenance"))

    @classmethod
    def load(cls, path: str | Path, check_device: bool = True) -> LatencyPredictor:
        """Read a saved predictor and refit it (deterministic); warns when its measurements
        were made with another onnxruntime version or thread count than its device now has."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise HwnasError(f"{p}: no such predictor file") from None
        except (OSError, ValueError) as e:
            raise HwnasError(f"{p}: not a readable predictor file ({str(e).splitlines()[0]})") from None
        pred = cls.from_dict(d, str(p))
        if check_device and pred.device_:
            pred.check_device(pred.device_)
        return pred

    @classmethod
    def for_device(cls, device: str, statistic: str | None = None) -> LatencyPredictor:
        """Fit on ``device``'s latency table (blocks + whole networks) with the settings of
        ``latency_tables/<device>/predictor.json`` if present (``hwnas predictor fit``).

        HwnasError if the device has no table or too few whole-network measurements."""
        from .lut import LatencyTable

        table = LatencyTable.load(device)
        settings = stored_settings(device)
        stat = statistic or settings.get("statistic") or table.statistic
        settings["statistic"] = stat
        pred = cls.from_settings(settings)
        blocks = {k: s.value(stat) for k, s in table.blocks.items()}
        nets = {k: s.value(stat) for k, s in table.networks.items()}
        pred.fit(blocks, nets, device=device, provenance=table.provenance)
        pred.check_device(device)
        return pred

    def check_device(self, device: str) -> list[str]:
        """Warn (and return why) if the measurements this predictor was fitted on used another
        onnxruntime version or thread count than ``device`` now has (its device.json, its
        current table, and for a local device the installed onnxruntime)."""
        check_is_fitted(self, "provenance_")
        now = _device_now(device)
        issues = []
        for k in ("onnxruntime", "threads"):
            old, new = self.provenance_.get(k), now.get(k)
            if old is not None and new is not None and str(old) != str(new):
                issues.append(f"{k} {old} (device '{device}' now: {new} per {now[k + '_from']})")
        for msg in issues:
            log.warning("latency predictor fitted on measurements with %s; re-profile the device "
                        "for predictions that hold", msg)
        return issues


PREDICTOR_FILE = "predictor.json"


def stored_settings(device: str) -> dict[str, Any]:
    """The settings saved in ``latency_tables/<device>/predictor.json`` ({} if none)."""
    from .lut import table_dir

    p = table_dir(device) / PREDICTOR_FILE
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text())
        return dict(d.get("settings") or {})
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise HwnasError(f"{p}: not a readable predictor file ({e})") from None


def _device_now(device: str) -> dict[str, Any]:
    """What ``device`` has now: threads (device.json, else its table), onnxruntime version
    (its table's provenance; for a local device the installed package)."""
    now: dict[str, Any] = {}
    try:
        from .lut import LatencyTable

        if LatencyTable.exists(device):
            prov = LatencyTable.load(device).provenance
            for k in ("onnxruntime", "threads"):
                if prov.get(k) is not None:
                    now[k], now[k + "_from"] = prov[k], "its latency table"
    except HwnasError:
        pass
    try:
        from .devices import load_device

        cfg = load_device(device)
        now["threads"], now["threads_from"] = cfg.threads, "device.json"
        if cfg.is_local:
            from importlib.metadata import PackageNotFoundError, version

            try:
                now["onnxruntime"] = version("onnxruntime")
                now["onnxruntime_from"] = "this machine"
            except PackageNotFoundError:
                pass
    except HwnasError:
        pass
    return now


# ---- metrics and the held-out evaluation -------------------------------------------------------

PREDICTORS = ("macs_linear", "lut_sum", "block_sum", "full")
PREDICTOR_NAMES = {"macs_linear": "MACs-linear", "lut_sum": "LUT sum",
                   "block_sum": "block-model sum", "full": "full predictor"}
METRICS = ("n", "rmse_ms", "mape_pct", "within5_pct", "within10_pct", "kendall_tau")


def latency_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """RMSE (ms), MAPE (%), share within +-5 % and +-10 % (%), Kendall tau; pairs where the
    prediction is missing (NaN) are left out (``n`` says how many remain)."""
    from scipy.stats import kendalltau
    from sklearn.metrics import mean_absolute_percentage_error, root_mean_squared_error

    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    t, p = t[ok], p[ok]
    if not len(t):
        return {"n": 0, **{m: float("nan") for m in METRICS[1:]}}
    rel = np.abs(p / t - 1)
    tau = float(kendalltau(t, p).statistic) if len(t) > 1 else float("nan")
    return {"n": int(len(t)), "rmse_ms": float(root_mean_squared_error(t, p)),
            "mape_pct": 100 * float(mean_absolute_percentage_error(t, p)),
            "within5_pct": 100 * float(np.mean(rel <= 0.05)),
            "within10_pct": 100 * float(np.mean(rel <= 0.10)), "kendall_tau": tau}


def network_groups(arch_strings: Iterable[str], spaces: Sequence[Any] = ()) -> dict[str, str]:
    """Group of each measured network: ``"baselines"`` (a baseline at any resolution),
    ``"<space>@<resolution>"`` (an Arch of a space: its pieces are the space's at that
    resolution, with the space's stem, head and classes), else ``"other"``."""
    from .baselines import BASELINES, baseline

    piece_sets: dict[tuple[str, int], set[str]] = {}
    out = {}
    for s in arch_strings:
        a = parse_string(s)
        names = {baseline(n, a.resolution, a.classes).to_string() for n in BASELINES
                 if a.resolution >= 32}
        if s in names:
            out[s] = "baselines"
            continue
        out[s] = "other"
        for sp in spaces:
            if a.resolution not in sp.resolutions or (sp.stem, sp.head, sp.classes, sp.channels) \
                    != (a.stem, a.head, a.classes, a.channels):
                continue
            keys = piece_sets.get((sp.name, a.resolution))
            if keys is None:
                keys = piece_sets[(sp.name, a.resolution)] = {p.key for p in sp.pieces(a.resolution)}
            if all(p.key in keys for p in arch_pieces(a)):
                out[s] = f"{sp.name}@{a.resolution}"
                break
    return out


@dataclass
class Evaluation:
    """Held-out predictions of the four predictors and their metrics per group."""

    rows: list[dict[str, Any]]  # group, predictor, n + METRICS
    predictions: dict[str, dict[str, float]]  # arch -> measured, group, each predictor
    folds: int
    n_train: dict[str, int]  # group -> networks the full predictor was trained on (per fold)

    def table(self) -> str:
        lines = [f"{'group':<22} {'predictor':<16} {'n':>4} {'RMSE ms':>9} {'MAPE %':>7} "
                 f"{'±5 %':>6} {'±10 %':>6} {'Kendall τ':>9}"]
        last = None
        for r in self.rows:
            g = r["group"] if r["group"] != last else ""
            last = r["group"]
            if not r["n"]:
                lines.append(f"{g:<22} {PREDICTOR_NAMES[r['predictor']]:<16} {0:>4}   "
                             "n/a (blocks missing from the table)")
                continue
            lines.append(f"{g:<22} {PREDICTOR_NAMES[r['predictor']]:<16} {r['n']:>4} "
                         f"{r['rmse_ms']:>9.4f} {r['mape_pct']:>7.2f} {r['within5_pct']:>6.1f} "
                         f"{r['within10_pct']:>6.1f} {r['kendall_tau']:>9.3f}")
        return "\n".join(lines)

    def predictions_csv(self) -> str:
        """One row per held-out network: arch, group, measured and each predictor (ms)."""
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["arch", "group", "measured_ms", *(f"{p}_ms" for p in PREDICTORS)])
        for s, r in self.predictions.items():
            w.writerow([s, r["group"], f"{r['measured']:.6g}",
                        *(f"{r[p]:.6g}" if np.isfinite(r[p]) else "" for p in PREDICTORS)])
        return buf.getvalue()

    def to_csv(self) -> str:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["group", "predictor", *METRICS])
        for r in self.rows:
            w.writerow([r["group"], r["predictor"], r["n"],
                        *(f"{r[m]:.6g}" for m in METRICS[1:])])
        return buf.getvalue()


def evaluate(blocks: Mapping[str, float], networks: Mapping[str, float],
             groups: Mapping[str, str], test_groups: Sequence[str] | None = None,
             holdout_groups: Sequence[str] = ("baselines", "other"), folds: int = 5,
             random_state: int = 0, settings: Mapping[str, Any] | None = None) -> Evaluation:
    """Held-out accuracy of MACs-linear, LUT sum, block-model sum and the full predictor.

    Networks of ``holdout_groups`` are predicted by models trained on all other networks
    (they are never in training). The rest are split into ``folds`` (KFold, shuffled with
    ``random_state``); each fold is predicted by models trained on the other folds plus the
    holdout networks. Metrics are reported per group in ``test_groups`` (default: every
    group), and for all space networks together when there are several space groups.

    * MACs-linear: a least-squares line latency = a * MACs + b on the training networks;
    * LUT sum: the table's block latencies added up (n/a when a block is missing);
    * block-model sum: the block model's predictions added up (no table values);
    * full: :class:`LatencyPredictor` (block values + network model).
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    nets = {s: float(v) for s, v in networks.items()}
    archs = _parse_archs(nets)
    # the block model on every block (blocks never involve the test networks)
    full_all = LatencyPredictor.from_settings(settings or {})._fit_blocks(blocks)
    bm = full_all.block_model_
    # networks the block model cannot cover (operators never measured) are not evaluated
    lo, hi = full_all.resolutions_[0], full_all.resolutions_[-1]
    covered = [s for s in nets if lo <= archs[s].resolution <= hi
               and not any(bm.uncovered(p) for p in arch_pieces(archs[s]))]
    if len(covered) < len(nets):
        log.info("%d network(s) need operators or resolutions the table never measured; "
                 "not evaluated", len(nets) - len(covered))
    grp = {s: groups.get(s, "other") for s in covered}
    hold = [s for s in covered if grp[s] in holdout_groups]
    cv = [s for s in covered if grp[s] not in holdout_groups]
    if len(cv) < max(folds, 2):
        raise HwnasError(f"too few networks for {folds}-fold evaluation: {len(cv)} "
                         f"(need at least {max(folds, 2)})")
    macs = {s: sum(piece_costs(p).macs for p in arch_pieces(archs[s])) for s in covered}
    lut = {s: full_all.lut_sum(archs[s]) for s in covered}
    bsum = dict(zip(covered, full_all.block_sum([archs[s] for s in covered]), strict=True))
    pred: dict[str, dict[str, Any]] = {
        s: {"measured": nets[s], "group": grp[s], "lut_sum": np.nan if lut[s] is None else lut[s],
            "block_sum": float(bsum[s])} for s in covered}

    splits: list[tuple[list[str], list[str]]] = []
    kf = KFold(n_splits=folds, shuffle=True, random_state=random_state)
    for tr, te in kf.split(cv):
        splits.append(([cv[i] for i in tr] + hold, [cv[i] for i in te]))
    if hold:
        splits.append((cv, hold))
    n_train: dict[str, int] = {}
    for train, test in splits:
        model = LatencyPredictor.from_settings(settings or {})
        model.fit(blocks, {s: nets[s] for s in train})
        full = model.predict([archs[s] for s in test])
        lin = LinearRegression().fit(np.array([[macs[s]] for s in train], dtype=float),
                                     np.array([nets[s] for s in train]))
        ml = lin.predict(np.array([[macs[s]] for s in test], dtype=float))
        for s, f, m in zip(test, full, ml, strict=True):
            pred[s]["full"], pred[s]["macs_linear"] = float(f), float(m)
            n_train.setdefault(grp[s], len(model.networks_))

    names = sorted({grp[s] for s in covered}, key=lambda g: (g in holdout_groups, g))
    if test_groups is not None:
        names = [g for g in names if g in test_groups or g in holdout_groups]
    report: list[tuple[str, list[str]]] = [(g, [s for s in covered if grp[s] == g]) for g in names]
    space_groups = [g for g in names if g not in holdout_groups]
    if len(space_groups) > 1:
        report.insert(len(space_groups), ("all space networks",
                                          [s for s in covered if grp[s] in space_groups]))
    rows = []
    for g, members in report:
        yt = [pred[s]["measured"] for s in members]
        for name in PREDICTORS:
            rows.append({"group": g, "predictor": name,
                         **latency_metrics(yt, [pred[s][name] for s in members])})
    return Evaluation(rows, pred, folds, n_train)


__all__ = [
    "ARCH_FEATURES", "COST_FEATURES", "MIN_NETWORKS", "PREDICTORS", "PREDICTOR_FILE",
    "SHAPE_FEATURES", "ArchFeatures", "BlockModel", "Evaluation", "LatencyPredictor",
    "NetworkModel", "PieceCosts", "PieceFeatures", "evaluate", "latency_metrics",
    "network_groups", "padded_piece", "piece_costs", "piece_peak_bytes", "stored_settings",
]
