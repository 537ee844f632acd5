"""What a network costs, counted from its shapes: the one analytical op count of hwnas.

Per piece (:func:`piece_costs`): params, MACs by op type, bytes moved, elements written,
operator count and peak live activation memory; per Arch (:func:`arch_costs`): params,
MACs and peak activation memory, summed (the peak: the largest) over its pieces, cached
per piece, no torch. The predictor's features, the search's objectives and
:mod:`hwnas.model` all use these counts; :mod:`hwnas.model` also counts params and MACs
with torch (``torch.utils.flop_counter``), and the tests check that both agree: params
include BatchNorm's two per channel, MACs are conv + linear multiply-accumulates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from .arch import Arch
from .pieces import Piece, arch_pieces

BYTES_PER_ELEM = 4  # float32 activations and weights


@dataclass(frozen=True)
class PieceCosts:
    """Analytical costs of one piece at batch 1 (float32).

    ``macs`` = ``macs_dense`` (full convs: stem) + ``macs_pw`` (1x1 convs: expansion,
    projection, head) + ``macs_dw`` (depthwise) + ``macs_fc`` (SE and classifier, on
    pooled vectors). Elements written: ``conv_elems`` by convs, ``act_elems`` by
    activations that run as their own operator (hard-swish; ReLU/ReLU6 fuse into the conv),
    ``se_elems`` by squeeze-excite (pooling reads + gating writes), ``res_elems`` by the
    residual add. ``bytes`` = 4 x (inputs read + outputs written + weights read) over all
    ops; ``ops`` the operator count after the usual Conv+BN(+ReLU/Clip) fusion;
    ``peak_bytes`` as :func:`piece_peak_bytes`.
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

    @property
    def elements(self) -> int:
        """Activation elements written by every operator of the piece."""
        return self.conv_elems + self.act_elems + self.se_elems + self.res_elems


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
    elif p.kind == "skip":  # 1x1 conv + BN if the shape changes; its activation, if any
        if p.stride != 1 or p.cin != p.cout:
            pw += conv(p.cin, p.cout, 1, hw_in, hw_out, act=bool(p.act))
        elif p.act:  # the activation alone, its own operator
            ops += 1
            act_e += p.cout * hw_out
            moved += 2 * p.cout * hw_out
    elif p.kind == "cls":
        feats = p.hidden or p.cin  # a pre-logits linear cin -> hidden (+ act) first
        fc += p.cin * p.hidden + feats * p.cout
        params += p.cin * p.hidden + p.hidden + feats * p.cout + p.cout
        ops += 3 + (2 if p.hidden else 0)  # pool, flatten, gemm (+ gemm, act)
        se_e += p.cin * hw_in  # global pooling reads the map
        moved += (p.cin * hw_in + p.cin + feats * p.cout + p.cout
                  + (p.cin * p.hidden + 2 * p.hidden if p.hidden else 0))
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
    return PieceCosts(macs=dense + pw + dw + fc, params=params, bytes=BYTES_PER_ELEM * moved,
                      macs_dense=dense, macs_pw=pw, macs_dw=dw, macs_fc=fc, conv_elems=conv_e,
                      act_elems=act_e, se_elems=se_e, res_elems=res_e, ops=ops,
                      peak_bytes=piece_peak_bytes(p))


def piece_peak_bytes(p: Piece) -> int:
    """Peak live activation bytes inside one piece at batch 1 (float32).

    Sequential execution, each tensor freed after its last use; a residual block keeps
    its input alive until the add (the MCUNet-style analysis).
    """
    hw_in, hw_out = p.h * p.h, p.h_out * p.h_out
    if p.kind in ("stem", "head", "skip"):
        return (p.cin * hw_in + p.cout * hw_out) * BYTES_PER_ELEM
    if p.kind == "cls":
        return (p.cin * hw_in + p.cin + p.hidden + p.cout) * BYTES_PER_ELEM
    x = p.cin * hw_in
    keep = x if p.residual else 0
    steps = []
    if p.hidden != p.cin:
        steps.append(x + p.hidden * hw_in)  # expand: in -> hidden
        steps.append(keep + p.hidden * hw_in + p.hidden * hw_out)  # depthwise
    else:
        steps.append(x + p.hidden * hw_out)  # depthwise straight on the input
    if p.se:
        steps.append(keep + 2 * p.hidden * hw_out)  # gating writes a new tensor
    steps.append(keep + p.hidden * hw_out + p.cout * hw_out)  # project
    if p.residual:
        steps.append(x + 2 * p.cout * hw_out)  # add
    return max(steps) * BYTES_PER_ELEM


class Costs(NamedTuple):
    """Params, MACs and peak activation bytes of a network (batch 1, float32); a tuple,
    so ``params, macs, peak = arch_costs(a)`` works."""

    params: int
    macs: int
    peak_act_bytes: int


def arch_costs(arch: Arch) -> Costs:
    """(params, MACs, peak activation bytes) of ``arch``, from cached per-piece counts.

    The same counts as :func:`hwnas.model.arch_costs` without building the network (a
    network is the sequence of its pieces): microseconds per Arch once its pieces repeat.
    """
    params = macs = peak = 0
    for p in arch_pieces(arch):
        c = piece_costs(p)
        params, macs, peak = params + c.params, macs + c.macs, max(peak, c.peak_bytes)
    return Costs(params, macs, peak)


def peak_activation_bytes(arch: Arch) -> int:
    """Peak activation memory of ``arch`` at batch 1, float32 (see :func:`piece_peak_bytes`)."""
    return max(piece_peak_bytes(p) for p in arch_pieces(arch))


__all__ = ["BYTES_PER_ELEM", "Costs", "PieceCosts", "arch_costs", "peak_activation_bytes",
           "piece_costs", "piece_peak_bytes"]
