"""Feature transformers: block keys and Archs -> the matrices the estimators learn from.

* :class:`PieceFeatures` -- one row per piece: its shape (``kind="shape"``) or the additive
  analytical costs a linear latency model is built on (``kind="cost"``), from
  :mod:`hwnas.costs`, also with channels padded to the CPU's channel blocking.
* :class:`ArchFeatures` -- one row per Arch: the sum of its pieces' latencies (the table's
  value where it has the key, a block model's prediction elsewhere), per-stage sums,
  analytical totals and counts by op type. Per-piece values are cached by shape, so the
  search transforms thousands of Archs a second without building any torch module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..arch import ACTS, Arch
from ..costs import PieceCosts, piece_costs
from ..errors import HwnasError
from ..pieces import KINDS, Piece, block_piece, cls_piece, head_piece, stem_piece

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
    return replace(p, cin=p.cin if p.kind == "stem" else _ceil(p.cin),
                   cout=p.cout if p.kind == "cls" else _ceil(p.cout), hidden=_ceil(p.hidden),
                   se=_ceil(p.se) if p.se else 0)


@lru_cache(maxsize=1 << 16)
def piece_of(key: str) -> Piece:
    """The piece of a block key (cached; HwnasError names a bad key)."""
    return Piece.from_key(key)


def as_pieces(X: Iterable[str | Piece]) -> list[Piece]:
    """Block keys or pieces -> pieces."""
    return [x if isinstance(x, Piece) else piece_of(str(x)) for x in X]


def operator_of(p: Piece) -> str:
    """The operator a piece needs, for coverage checks: kind, activation, SE or not (a
    classifier's pre-logits activation acts on one pooled vector: not an operator to cover)."""
    if p.kind == "cls":
        return "cls"
    return p.kind + (f"/{p.act}" if p.act else "") + ("/se" if p.se else "")


class UncoveredError(HwnasError):
    """A piece needs an operator the table never measured (``piece``: that piece)."""

    def __init__(self, message: str, piece: Piece):
        super().__init__(message)
        self.piece = piece


# ---- piece features -------------------------------------------------------------------------------

_ACTS = ("", *ACTS)  # the code of "no activation" (the classifier) is 0
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
        ps = as_pieces(X)
        rows = [_shape_row(p) if self.kind == "shape" else _cost_row(p) for p in ps]
        return np.asarray(rows, dtype=float).reshape(len(ps), self.n_features_out_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(SHAPE_FEATURES if self.kind == "shape" else COST_FEATURES, dtype=object)


@lru_cache(maxsize=1 << 16)
def _shape_row(p: Piece) -> tuple[float, ...]:
    c = piece_costs(p)
    return (p.h, p.h_out, p.cin, p.cout, p.hidden, p.kernel, p.stride, p.se, float(p.residual),
            KINDS.index(p.kind), _ACTS.index(p.act), math.log(c.macs + 1), math.log(c.params + 1),
            math.log(c.bytes), c.macs_dw / (c.macs + 1), math.log(p.hidden * p.h_out ** 2 + 1))


@lru_cache(maxsize=1 << 16)
def _cost_row(p: Piece) -> tuple[float, ...]:
    c, q = piece_costs(p), piece_costs(padded_piece(p))
    k3 = p.kernel == 3

    def costs(c: PieceCosts) -> tuple[float, ...]:
        return (c.macs_dense, c.macs_pw, c.macs_dw if k3 else 0, 0 if k3 else c.macs_dw,
                c.macs_fc, c.conv_elems, c.act_elems, c.se_elems, c.res_elems, c.bytes)

    return (1.0, c.ops, *costs(c), *costs(q))


# ---- arch features -------------------------------------------------------------------------------

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

    def __init__(self, block_model: Any = None,
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
                raise UncoveredError(why, p)
        ms = np.array([self.table_.get(p.key, np.nan) for p in new], dtype=float)
        in_table = ~np.isnan(ms)
        if (~in_table).any():
            miss = [p for p, t in zip(new, in_table, strict=True) if not t]
            ms[~in_table] = bm.predict(miss)
        rows = np.empty((len(new), _PCOLS))
        for i, p in enumerate(new):
            c = piece_costs(p)
            rows[i] = (ms[i], c.macs, c.params, c.bytes, c.elements, c.ops, p.se > 0,
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
        """The piece a cache key stands for (as :func:`hwnas.pieces.arch_pieces` makes it)."""
        if len(k) == 3:  # an MBConv or skip block: (H, C_in, Block)
            return block_piece(*k)
        tag, h, c, x = k
        if tag == 0:  # stem: (0, resolution, channels, Stem)
            return stem_piece(h, c, x)
        if tag == 2:  # head: (2, H, C_in, Head)
            return head_piece(h, c, x)
        return cls_piece(h, c, *x)  # classifier: (3, H, C_in, (classes, fc, act))

    def piece_ids(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cached piece row per piece, arch offsets into it, stage level per piece)."""
        check_is_fitted(self, "index_")
        get = self.index_.get
        ids: list[int | None] = []
        levels: list[int] = []
        add_id = ids.append
        offsets = np.empty(len(archs) + 1, dtype=np.int64)
        miss: list[tuple[int, tuple]] = []  # (position in ids, cache key) of unseen pieces
        # the hot loop of the search: an arch's cache keys, then one dict lookup per piece
        # (out_size inlined). Keys: (H, C_in, Block) for a block, (tag, H, C_in, Stem | Head |
        # classes) for the others
        for j, a in enumerate(archs):
            offsets[j] = len(ids)
            st = a.stem
            keys: list[tuple] = [(0, a.resolution, a.channels, st)]
            lv = [0]
            h = (a.resolution + 2 * (st.kernel // 2) - st.kernel) // st.stride + 1
            c = st.out
            level = 1 if st.stride == 2 else 0
            for b in a.blocks:
                if b.kind == "mb" or not b.is_noop(c):  # an identity skip has no piece
                    keys.append((h, c, b))
                    lv.append(level)
                s = b.stride
                if s == 2:
                    level += 1
                h = (h + 2 * (b.kernel // 2) - b.kernel) // s + 1
                c = b.out
            cls = (a.classes, 0, "")
            if a.head is not None:
                keys.append((2, h, c, a.head))
                lv.append(level)
                c = a.head.out
                if a.head.fc:
                    cls = (a.classes, a.head.fc, a.head.act)
            keys.append((3, h, c, cls))
            lv.append(level)
            for k in keys:
                i = get(k)
                if i is None:
                    miss.append((len(ids), k))
                add_id(i)
            levels.extend(lv)
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


__all__ = ["ARCH_FEATURES", "CHANNEL_BLOCK", "COST_FEATURES", "LEVELS", "SHAPE_FEATURES",
           "ArchFeatures", "PieceFeatures", "UncoveredError", "as_pieces", "operator_of", "padded_piece", "piece_of"]
