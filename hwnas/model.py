"""Torch builder: Arch (or one Piece) -> nn.Module; params and MACs counted by torch.

Plain, readable modules in the style of timm's efficientnet blocks. :func:`arch_costs`
counts params on the module and MACs with ``torch.utils.flop_counter.FlopCounterMode``
(FLOPs / 2), not a hand-written walker: the check on :mod:`hwnas.costs`, the analytical
count everything else uses (peak activation memory has no torch counterpart; it comes
from there).
"""

from __future__ import annotations

import torch
from torch import nn

from .arch import Arch
from .costs import Costs, peak_activation_bytes, piece_peak_bytes
from .pieces import Piece, arch_pieces


def make_act(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}[name]()


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = "relu6"):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(make_act(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """SE (Hu et al. 2018); the gate is hard-sigmoid in hswish blocks (MobileNetV3)."""

    def __init__(self, channels: int, squeeze: int, hard_gate: bool):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid() if hard_gate else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.expand(self.act(self.reduce(s))))
        return x * s


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise (stride) -> SE -> 1x1 project (+ skip)."""

    def __init__(self, p: Piece):
        super().__init__()
        self.expand = ConvBNAct(p.cin, p.hidden, 1, act=p.act) if p.hidden != p.cin else nn.Identity()
        self.dw = ConvBNAct(p.hidden, p.hidden, p.kernel, p.stride, groups=p.hidden, act=p.act)
        self.se = SqueezeExcite(p.hidden, p.se, p.act == "hswish") if p.se else nn.Identity()
        self.project = ConvBNAct(p.hidden, p.cout, 1, act=None)
        self.residual = p.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class Classifier(nn.Module):
    """Global average pool -> [pre-logits linear ``cin`` -> ``hidden`` + ``act``] -> linear."""

    def __init__(self, cin: int, classes: int, hidden: int = 0, act: str = ""):
        super().__init__()
        self.pre = nn.Sequential(nn.Linear(cin, hidden), make_act(act)) if hidden else None
        self.fc = nn.Linear(hidden or cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x.mean((2, 3)), 1)
        return self.fc(self.pre(x) if self.pre is not None else x)


def skip_module(p: Piece) -> nn.Module:
    """A skip piece: 1x1 conv (stride, no bias) + BN where the shape changes (NAS-Bench-Macro's
    "Identity"), then its activation if it has one; the activation alone where the shape is kept."""
    if p.stride != 1 or p.cin != p.cout:
        return ConvBNAct(p.cin, p.cout, 1, p.stride, act=p.act or None)
    return make_act(p.act) if p.act else nn.Identity()


def build_piece(p: Piece) -> nn.Module:
    if p.kind == "stem":
        return ConvBNAct(p.cin, p.cout, p.kernel, p.stride, act=p.act)
    if p.kind == "mb":
        return MBConv(p)
    if p.kind == "skip":
        return skip_module(p)
    if p.kind == "head":
        return ConvBNAct(p.cin, p.cout, 1, act=p.act)
    return Classifier(p.cin, p.cout, p.hidden, p.act)


def piece_input(p: Piece, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, p.cin, p.h, p.h)


class Net(nn.Module):
    def __init__(self, arch: Arch):
        super().__init__()
        pieces = arch_pieces(arch)
        self.arch = arch
        self.stem = build_piece(pieces[0])
        # skips that do nothing have no piece (hwnas.pieces.arch_pieces): nothing to build
        self.blocks = nn.Sequential(*[build_piece(p) for p in pieces if p.kind in ("mb", "skip")])
        self.head = build_piece(pieces[-2]) if arch.head is not None else nn.Identity()
        self.classifier = build_piece(pieces[-1])
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))


def init_weights(m: nn.Module) -> None:
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, 0, 0.01)
            nn.init.zeros_(mod.bias)


def build(arch: Arch) -> Net:
    return Net(arch)


def input_tensor(arch: Arch, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, arch.channels, arch.resolution, arch.resolution)


# ---- costs -----------------------------------------------------------------------------------

def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def count_macs(m: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (conv + linear), via FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    m.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    return fc.get_total_flops() // 2


def arch_costs(arch: Arch) -> Costs:
    """Params and MACs counted by torch on the built network; peak activation memory as
    :func:`hwnas.costs.peak_activation_bytes`."""
    net = build(arch)
    return Costs(count_params(net), count_macs(net, input_tensor(arch)), peak_activation_bytes(arch))


__all__ = ["Classifier", "ConvBNAct", "Costs", "MBConv", "Net", "SqueezeExcite", "arch_costs",
           "build", "build_piece", "count_macs", "count_params", "input_tensor", "make_act",
           "peak_activation_bytes", "piece_input", "piece_peak_bytes", "skip_module"]
