"""Arch -> feature rows for the accuracy predictor (a scikit-learn transformer).

:class:`ArchEncoder`: the block choice (kind, kernel, expansion) one-hot per layer position
padded to the deepest Arch, log widths per position, choice counts over the whole net and per
stage (feature-map size), depth, resolution, log MACs and params
(:func:`hwnas.costs.arch_costs`). It refuses an Arch of another layout (input, stem, head,
classes) than it was fit on, or deeper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..arch import ACT_CODE, Arch, num_str
from ..errors import HwnasError

__all__ = ["ArchEncoder", "block_token", "layout_of"]


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
        # a block choice no fitted arch has is no sign of another space (K measured archs
        # of a large space need not hold every choice): it adds no one-hot or count feature

    def transform(self, archs: Sequence[Arch]) -> np.ndarray:
        from ..costs import arch_costs

        archs = list(archs)
        for a in archs:
            self.check(a)
        col = {n: i for i, n in enumerate(self._names())}
        col_tokens = set(self.tokens_)
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
                    s = min(stages[i], self.stages_ - 1)
                    if t in col_tokens:  # a choice no fitted arch has: no count feature
                        X[r, col[f"n[{t}]"]] += 1
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

