"""Pieces and block keys: what makes two pieces of a network cost the same on a device.

A network is a sequence of *pieces*: the stem, its MBConv blocks, its skip blocks that do
something, the head (1x1 conv) and the classifier (global average pool + linear). A skip
block that changes the shape is a ``skip`` piece (1x1 conv with the stride + BatchNorm, then
its activation if it has one), e.g. ``skip_h32_i32_o64_k1_s2``; a shape-keeping skip with an
activation is a ``skip`` piece with stride 1 and equal channels (the activation alone); a
plain identity skip does nothing and has **no piece** (it costs nothing and is not profiled). A piece's key holds op type, input
H(=W) and channels, output channels, kernel, stride, expansion (hidden) channels, SE
channels, activation and residual; two pieces with the same key are the same ONNX
graph and so cost the same. Keys are plain strings, e.g.
``mb_h56_i24_o24_k3_s1_m144_q0_r6_res1``, and parse back with :func:`Piece.from_key`.

What a piece costs (MACs, params, bytes moved, peak memory) is counted in :mod:`hwnas.costs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .arch import ACT_CODE, CODE_ACT, Arch, Block, Head, Stem, out_size
from .errors import HwnasError

KINDS = ("stem", "mb", "head", "cls", "skip")  # new kinds go last: feature codes


@dataclass(frozen=True)
class Piece:
    kind: str  # stem | mb | head | cls | skip
    h: int  # input height (= width)
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    hidden: int = 0  # mb: expansion channels (== cin when there is no expansion conv);
    # cls: the pre-logits width (Head.fc), 0 = none
    se: int = 0  # mb: squeeze-excite channels, 0 = off
    act: str = ""  # stem/mb/head activation; cls: the pre-logits layer's ("" without one)
    residual: bool = False

    @property
    def key(self) -> str:
        a = ACT_CODE.get(self.act, "")
        if self.kind == "stem":
            return f"stem_h{self.h}_i{self.cin}_o{self.cout}_k{self.kernel}_s{self.stride}_{a}"
        if self.kind == "mb":
            return (f"mb_h{self.h}_i{self.cin}_o{self.cout}_k{self.kernel}_s{self.stride}"
                    f"_m{self.hidden}_q{self.se}_{a}_res{int(self.residual)}")
        if self.kind == "head":
            return f"head_h{self.h}_i{self.cin}_o{self.cout}_{a}"
        if self.kind == "skip":
            return (f"skip_h{self.h}_i{self.cin}_o{self.cout}_k{self.kernel}_s{self.stride}"
                    + (f"_{a}" if a else ""))
        if self.hidden:  # MobileNetV3's pre-logits linear + activation after the pooling
            return f"cls_h{self.h}_i{self.cin}_o{self.cout}_f{self.hidden}_{a}"
        return f"cls_h{self.h}_i{self.cin}_o{self.cout}"

    @property
    def h_out(self) -> int:
        return out_size(self.h, self.kernel, self.stride) if self.kind in ("stem", "mb", "skip") \
            else self.h

    @classmethod
    def from_key(cls, key: str) -> Piece:
        m = _KEY_RE.fullmatch(key)
        if not m:
            raise HwnasError(f"'{key}' is not a block key")
        g = m.groupdict()
        kind = g["kind"]
        act = CODE_ACT[g["act"]] if g.get("act") else ""
        return cls(
            kind=kind, h=int(g["h"]), cin=int(g["i"]), cout=int(g["o"]),
            kernel=int(g["k"] or 1), stride=int(g["s"] or 1),
            hidden=int(g["m"] or g["f"] or 0),
            se=int(g["q"] or 0), act=act, residual=g["res"] == "1",
        )


_KEY_RE = re.compile(
    r"(?P<kind>stem|mb|head|cls|skip)_h(?P<h>\d+)_i(?P<i>\d+)_o(?P<o>\d+)"
    r"(?:_k(?P<k>\d+)_s(?P<s>\d+))?(?:_m(?P<m>\d+)_q(?P<q>\d+))?(?:_f(?P<f>\d+))?"
    r"(?:_(?P<act>re|r6|hs))?(?:_res(?P<res>[01]))?"
)


def stem_piece(resolution: int, channels: int, stem: Stem) -> Piece:
    return Piece("stem", resolution, channels, stem.out, stem.kernel, stem.stride, act=stem.act)


def block_piece(h: int, cin: int, b: Block) -> Piece:
    """The block ``b`` seeing an ``h`` x ``h`` x ``cin`` input (a skip: a ``skip`` piece;
    :func:`arch_pieces` leaves out skips that do nothing, :meth:`Block.is_noop`)."""
    if b.is_skip:
        return Piece("skip", h, cin, b.out, 1, b.stride, act=b.act)
    return Piece("mb", h, cin, b.out, b.kernel, b.stride, b.hidden(cin), b.se_channels(cin),
                 b.act, b.residual(cin))


def head_piece(h: int, cin: int, head: Head) -> Piece:
    return Piece("head", h, cin, head.out, act=head.act)


def cls_piece(h: int, cin: int, classes: int, fc: int = 0, act: str = "") -> Piece:
    """Global pooling + linear; with ``fc`` > 0 a pre-logits linear ``cin`` -> ``fc`` + ``act``
    first (:attr:`hwnas.arch.Head.fc`)."""
    return Piece("cls", h, cin, classes, hidden=fc, act=act if fc else "")


def arch_pieces(arch: Arch) -> list[Piece]:
    """The pieces of ``arch`` in execution order, with the shapes they see inside it."""
    out = [stem_piece(arch.resolution, arch.channels, arch.stem)]
    for _, h, c, b in arch.stages():
        if not b.is_noop(c):
            out.append(block_piece(h, c, b))
    h, c = arch.final_size()
    fc, act = 0, ""
    if arch.head is not None:
        out.append(head_piece(h, c, arch.head))
        c, fc, act = arch.head.out, arch.head.fc, arch.head.act
    out.append(cls_piece(h, c, arch.classes, fc, act))
    return out


__all__ = ["KINDS", "Piece", "arch_pieces", "block_piece", "cls_piece", "head_piece", "stem_piece"]
