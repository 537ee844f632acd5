"""Block keys: what makes two pieces of a network cost the same on a device.

A network is a sequence of *pieces*: the stem, its MBConv blocks, the head (1x1 conv)
and the classifier (global average pool + linear). A piece's key holds op type, input
H(=W) and channels, output channels, kernel, stride, expansion (hidden) channels, SE
channels, activation and residual; two pieces with the same key are the same ONNX
graph and so cost the same. Keys are plain strings, e.g.
``mb_h56_i24_o24_k3_s1_m144_q0_r6_res1``, and parse back with :func:`Piece.from_key`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .arch import _ACT_CODE, _CODE_ACT, Arch, _out_size
from .errors import HwnasError

KINDS = ("stem", "mb", "head", "cls")


@dataclass(frozen=True)
class Piece:
    kind: str  # stem | mb | head | cls
    h: int  # input height (= width)
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    hidden: int = 0  # mb: expansion channels (== cin when there is no expansion conv)
    se: int = 0  # mb: squeeze-excite channels, 0 = off
    act: str = ""  # stem/mb/head activation; "" for cls
    residual: bool = False

    @property
    def key(self) -> str:
        a = _ACT_CODE.get(self.act, "")
        if self.kind == "stem":
            return f"stem_h{self.h}_i{self.cin}_o{self.cout}_k{self.kernel}_s{self.stride}_{a}"
        if self.kind == "mb":
            return (f"mb_h{self.h}_i{self.cin}_o{self.cout}_k{self.kernel}_s{self.stride}"
                    f"_m{self.hidden}_q{self.se}_{a}_res{int(self.residual)}")
        if self.kind == "head":
            return f"head_h{self.h}_i{self.cin}_o{self.cout}_{a}"
        return f"cls_h{self.h}_i{self.cin}_o{self.cout}"

    @property
    def h_out(self) -> int:
        return _out_size(self.h, self.kernel, self.stride) if self.kind in ("stem", "mb") else self.h

    @classmethod
    def from_key(cls, key: str) -> Piece:
        m = _KEY_RE.match(key)
        if not m:
            raise HwnasError(f"'{key}' is not a block key")
        g = m.groupdict()
        kind = g["kind"]
        act = _CODE_ACT[g["act"]] if g.get("act") else ""
        return cls(
            kind=kind, h=int(g["h"]), cin=int(g["i"]), cout=int(g["o"]),
            kernel=int(g["k"] or 1), stride=int(g["s"] or 1), hidden=int(g["m"] or 0),
            se=int(g["q"] or 0), act=act, residual=g["res"] == "1",
        )


_KEY_RE = re.compile(
    r"^(?P<kind>stem|mb|head|cls)_h(?P<h>\d+)_i(?P<i>\d+)_o(?P<o>\d+)"
    r"(?:_k(?P<k>\d+)_s(?P<s>\d+))?(?:_m(?P<m>\d+)_q(?P<q>\d+))?"
    r"(?:_(?P<act>re|r6|hs))?(?:_res(?P<res>[01]))?$"
)


def arch_pieces(arch: Arch) -> list[Piece]:
    """The pieces of ``arch`` in execution order, with the shapes they see inside it."""
    st = arch.stem
    out = [Piece("stem", arch.resolution, arch.channels, st.out, st.kernel, st.stride, act=st.act)]
    h = _out_size(arch.resolution, st.kernel, st.stride)
    for _, h, c, b in arch.stages():
        out.append(Piece("mb", h, c, b.out, b.kernel, b.stride, b.hidden(c), b.se_channels(c),
                         b.act, b.residual(c)))
    h, c = arch.final_size()
    if arch.head is not None:
        out.append(Piece("head", h, c, arch.head.out, act=arch.head.act))
        c = arch.head.out
    out.append(Piece("cls", h, c, arch.classes))
    return out


BYTES_PER_ELEM = 4  # float32 activations


def piece_peak_bytes(p: Piece) -> int:
    """Peak live activation bytes inside one piece at batch 1 (float32).

    Sequential execution, each tensor freed after its last use; a residual block keeps
    its input alive until the add (the MCUNet-style analysis).
    """
    hw_in, hw_out = p.h * p.h, p.h_out * p.h_out
    if p.kind in ("stem", "head"):
        return (p.cin * hw_in + p.cout * hw_out) * BYTES_PER_ELEM
    if p.kind == "cls":
        return (p.cin * hw_in + p.cin + p.cout) * BYTES_PER_ELEM
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
