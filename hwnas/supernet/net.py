"""SuperNet: one set of weights for every Arch of a search space.

The supernet holds the largest weights the space needs (largest kernel, expansion and width of
each stage, its deepest depth); a subnet is chosen with :meth:`SuperNet.set_active` from an
explicit :class:`~hwnas.arch.Arch` and then computes exactly what a stand-alone
:class:`hwnas.model.Net` of that Arch computes with the sliced weights
(:meth:`SuperNet.extract` builds that Net). Elastic dimensions, as in Once-for-All and BigNAS:

* **kernel**: the centre ``k x k`` of the stage's largest depthwise kernel. Plain centre crop
  is the default: with the sandwich rule every kernel size is trained from the first step
  (BigNAS trains its elastic kernels this way), so the shared centre learns to serve all of
  them, the subnet's weights are plain slices, and nothing is added to train. Once-for-All's
  kernel transform matrices (``kernel_transform=True``) were made for *progressive
  shrinking*, where a trained 7x7 is specialised afterwards; they stay available. Measured
  here (mobilenetv2 space, digits at 32 px, 10 epochs, same seeds): the largest subnet with
  random per-layer kernels scored 0.71-0.91 with the crop and 0.40-0.71 with the transform,
  the largest with every kernel 3x3 0.58 vs 0.35 (largest / smallest 0.97 / 0.93 vs
  0.99 / 0.93);
* **expansion** (hidden channels) and **width** (output channels): the first channels;
* **depth**: the first layers of a stage.

The active configuration is set on the modules (``set_active``), never passed to ``forward``.
Which supernet layer serves which block of an Arch is decided by :func:`assign_blocks`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..arch import Arch, Block, num_str
from ..errors import HwnasError
from ..model import ConvBNAct, MBConv, Net, init_weights
from ..space import SKIP, SearchSpace, Stage
from .elastic import (
    DynamicBatchNorm2d,
    DynamicConv2d,
    DynamicDepthwiseConv2d,
    DynamicLinear,
    DynamicSE,
    act,
)
from .store import check_space


def _block_token(b: Block) -> str:
    if b.is_skip:
        return f"skip c{b.out}s{b.stride}"
    return f"k{b.kernel}e{num_str(b.expand)}c{b.out}s{b.stride}"



def _allowed(st: Stage, first: bool) -> str:
    return (f"stride {st.stride if first else 1}, out {','.join(map(str, st.outs))}, kernel "
            f"{','.join(map(str, st.kernel))}, expand {','.join(num_str(e) for e in st.expand)}, se "
            f"{','.join(num_str(s) for s in st.se)}, act {','.join(st.act)}")


def _misfit(b: Block, st: Stage, first: bool) -> str | None:
    """Why block ``b`` cannot be a layer of stage ``st`` (None if it can)."""
    want = st.stride if first else 1
    if b.is_skip:
        return "a skip block (the supernet has none)"
    if b.stride != want:
        return f"stride {b.stride} (the {'first' if first else 'next'} layer has stride {want})"
    if b.out not in st.outs:
        return f"out {b.out} is not one of the stage's widths"
    if b.kernel not in st.kernel:
        return f"kernel {b.kernel} is not a choice"
    if b.expand not in st.expand:
        return f"expand {num_str(b.expand)} is not a choice"
    if b.se not in st.se:
        return f"se {num_str(b.se)} is not a choice"
    if b.act not in st.act:
        return f"act {b.act} is not a choice"
    return None


def assign_blocks(space: SearchSpace, arch: Arch) -> list[tuple[int, int]]:
    """(stage, layer) of the space for every block of ``arch``: each stage takes a contiguous
    run of blocks, between its minimum and maximum depth, whose first block has the stage's
    stride and whose blocks all fit the stage's choices (width, kernel, expand, se, act).

    A small backtracking search over the stages; where several assignments exist (a stride-1
    stage whose widths overlap the previous stage's), earlier stages take as many layers as
    they can, always the same way. An Arch that fits no assignment raises one
    :class:`HwnasError` naming the furthest block that could not be placed and what the
    supernet allows there.
    """
    blocks, stages = arch.blocks, space.stages
    worst: list[Any] = [-1, ""]  # furthest block that failed, and why
    memo: dict[tuple[int, int], list[tuple[int, int]] | None] = {}

    def fail(i: int, msg: str) -> None:
        if i > worst[0]:
            worst[0], worst[1] = i, msg

    def go(j: int, i: int) -> list[tuple[int, int]] | None:
        if (j, i) in memo:
            return memo[(j, i)]
        out = None
        if j == len(stages):
            if i == len(blocks):
                out = []
            else:
                fail(i, f"blocks[{i}] ({_block_token(blocks[i])}): the arch is deeper than the "
                     f"supernet, whose {len(stages)} stages have at most "
                     f"{', '.join(str(s.depth[1]) for s in stages)} layers")
        else:
            st = stages[j]
            run = 0  # how many blocks from i can be layers of stage j
            while run < st.depth[1] and i + run < len(blocks):
                why = _misfit(blocks[i + run], st, run == 0)
                if why:
                    k = i + run
                    msg = (f"blocks[{k}] ({_block_token(blocks[k])}) does not fit stage {j + 1} "
                           f"layer {run + 1}: {why}; allowed there: {_allowed(st, run == 0)}")
                    if run == 0 and j > 0:
                        msg += f" (stage {j} has at most {stages[j - 1].depth[1]} layers)"
                    fail(k, msg)
                    break
                run += 1
            else:
                if run < st.depth[0]:
                    fail(len(blocks), f"the arch ends after {len(blocks)} blocks, in stage {j + 1} "
                         f"(which needs at least {st.depth[0]} layers; "
                         f"{len(stages) - j - 1} more stages follow)")
            for d in range(run, st.depth[0] - 1, -1):
                rest = go(j + 1, i + d)
                if rest is not None:
                    out = [(j, layer) for layer in range(d)] + rest
                    break
        memo[(j, i)] = out
        return out

    found = go(0, 0)
    if found is None:
        raise HwnasError(f"arch is outside the supernet's choices: {worst[1]}")
    return found


class ElasticMBConv(nn.Module):
    """One MBConv layer of a stage at its largest size: 1x1 expand -> kxk depthwise -> SE ->
    1x1 project, each elastic; configured by :meth:`set_block`."""

    def __init__(self, cins: list[int], stage: Stage, first: bool, transform: bool):
        super().__init__()
        combos = [Block(k, e, o, 1, se, "relu6") for k, e, o, se in
                  itertools.product(stage.kernel[:1], stage.expand, stage.outs, stage.se)]
        hidden = [b.hidden(c) for b in combos for c in cins]
        expanded = [b.hidden(c) for b in combos for c in cins if b.expand != 1]
        squeeze = [b.se_channels(c) for b in combos for c in cins]
        max_in, max_hidden, max_out = max(cins), max(hidden), max(stage.outs)
        self.stride = stage.stride if first else 1
        self.expand = None
        if expanded:
            self.expand = DynamicConv2d(max_in, max(expanded))
            self.expand_bn = DynamicBatchNorm2d(max(expanded))
        self.dw = DynamicDepthwiseConv2d(max_hidden, stage.kernel, self.stride, transform)
        self.dw_bn = DynamicBatchNorm2d(max_hidden)
        self.se = DynamicSE(max_hidden, max(squeeze)) if max(squeeze) else None
        self.project = DynamicConv2d(max_hidden, max_out)
        self.project_bn = DynamicBatchNorm2d(max_out)
        self.block: Block | None = None
        self.cin = max_in

    def set_block(self, b: Block, cin: int) -> None:
        self.block, self.cin = b, cin
        if b.expand != 1:
            self.expand.active_out = b.hidden(cin)
        self.dw.active_kernel = b.kernel
        if b.se:
            self.se.active_squeeze = b.se_channels(cin)
            self.se.hard_gate = b.act == "hswish"
        self.project.active_out = b.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        h = act(b.act, self.expand_bn(self.expand(x))) if b.expand != 1 else x
        h = act(b.act, self.dw_bn(self.dw(h)))
        if b.se:
            h = self.se(h)
        y = self.project_bn(self.project(h))
        return x + y if self.stride == 1 and x.size(1) == b.out else y

    @torch.no_grad()
    def copy_into(self, m: MBConv) -> None:
        """Give the stand-alone block ``m`` (of the active block) the active weights."""
        b, cin = self.block, self.cin
        hidden = b.hidden(cin)
        if b.expand != 1:
            _copy_conv_bn(m.expand, self.expand.active_weight(cin), self.expand_bn.active_state(hidden))
        _copy_conv_bn(m.dw, self.dw.active_weight(hidden), self.dw_bn.active_state(hidden))
        if b.se:
            m.se.load_state_dict({k: v.clone() for k, v in self.se.active_weights(hidden).items()})
        _copy_conv_bn(m.project, self.project.active_weight(hidden), self.project_bn.active_state(b.out))


def _copy_conv_bn(seq: ConvBNAct, weight: torch.Tensor, bn: dict[str, torch.Tensor]) -> None:
    seq[0].weight.copy_(weight)
    seq[1].load_state_dict({k: v.clone() for k, v in bn.items()})


class SuperNet(nn.Module):
    """The weight-sharing network of ``space`` for ``classes`` classes and ``channels`` input
    channels (the stem and head are fixed, as in the space; the resolution is free).

    ``set_active(arch)`` selects a subnet; ``forward`` runs it; ``extract(arch)`` returns the
    stand-alone :class:`~hwnas.model.Net` with the inherited weights; ``largest()``,
    ``smallest()`` and ``sample(rng)`` give Archs of the space at ``resolution``.
    """

    def __init__(self, space: SearchSpace, classes: int, channels: int = 3,
                 kernel_transform: bool = False):
        check_space(space)
        super().__init__()
        self.space, self.classes, self.channels = space, classes, channels
        self.kernel_transform = kernel_transform
        st = space.stem
        self.stem = ConvBNAct(channels, st.out, st.kernel, st.stride, act=st.act)
        cins, layers = [st.out], []
        for stage in space.stages:
            row = [ElasticMBConv(cins if layer == 0 else stage.outs, stage, layer == 0,
                                 kernel_transform) for layer in range(stage.depth[1])]
            layers.append(nn.ModuleList(row))
            cins = stage.outs
        self.stages = nn.ModuleList(layers)
        self.head = None
        features = max(cins)
        if space.head is not None:
            self.head = DynamicConv2d(features, space.head.out)
            self.head_bn = nn.BatchNorm2d(space.head.out)
            features = space.head.out
        self.classifier = DynamicLinear(features, classes)
        # as hwnas.model.Net. BigNAS also zero-initialises each residual branch's last BN
        # scale; in few-epoch training that halved the largest subnet's accuracy here (digits,
        # 10 epochs: 0.53 vs 0.91 when training the largest alone), so hwnas does not.
        init_weights(self)
        self.active: Arch | None = None
        self._depth = [s.depth[1] for s in space.stages]
        self._assignment: list[tuple[int, int]] = []
        self.set_active(self.largest())

    # ---- archs of the space -------------------------------------------------------------------
    def _arch(self, params: dict[str, Any], resolution: int | None) -> Arch:
        a = self.space.arch_from_params(params, resolution or self.space.resolutions[-1])
        return replace(a, classes=self.classes, channels=self.channels)

    def largest(self, resolution: int | None = None) -> Arch:
        """Every stage at its widest, deepest, largest kernel and expansion, largest SE, first act."""
        p: dict[str, Any] = {}
        for j, st in enumerate(self.space.stages, 1):
            p[f"s{j}_out"], p[f"s{j}_se"] = max(st.outs), num_str(max(st.se))
            for layer in range(st.depth[1]):
                p[f"s{j}_l{layer}"] = f"k{max(st.kernel)}e{num_str(max(st.expand))}"
        return self._arch(p, resolution)

    def smallest(self, resolution: int | None = None) -> Arch:
        """Every stage at its narrowest, shallowest, smallest kernel and expansion, smallest SE."""
        p: dict[str, Any] = {}
        for j, st in enumerate(self.space.stages, 1):
            p[f"s{j}_out"], p[f"s{j}_se"] = min(st.outs), num_str(min(st.se))
            for layer in range(st.depth[1]):
                p[f"s{j}_l{layer}"] = (f"k{min(st.kernel)}e{num_str(min(st.expand))}"
                                       if layer < st.depth[0] else SKIP)
        return self._arch(p, resolution)

    def sample(self, rng: random.Random | torch.Generator, resolution: int | None = None) -> Arch:
        """A uniformly drawn parameter set of the space (``rng``: random.Random or a
        torch.Generator, whose state a checkpoint can hold)."""
        p: dict[str, Any] = {}
        for name, choices in self.space.params():
            if name == "resolution":
                continue
            if isinstance(rng, torch.Generator):
                p[name] = choices[int(torch.randint(len(choices), (1,), generator=rng))]
            else:
                p[name] = rng.choice(choices)
        return self._arch(p, resolution)

    # ---- the active subnet --------------------------------------------------------------------
    def check_arch(self, arch: Arch) -> list[tuple[int, int]]:
        """The block assignment of ``arch`` (see :func:`assign_blocks`); HwnasError if the arch
        is not a subnet (another stem, head, class count or input channels, or a block
        outside the choices)."""
        sp = self.space

        def stem(s: Any) -> str:
            return f"out {s.out}, k{s.kernel} s{s.stride} {s.act}"

        def head(h: Any) -> str:
            return f"out {h.out} {h.act}" if h is not None else "none"

        if arch.stem != sp.stem:
            raise HwnasError(f"arch is outside the supernet's choices: its stem ({stem(arch.stem)}) "
                             f"is not the space's fixed stem ({stem(sp.stem)})")
        if arch.head != sp.head:
            raise HwnasError(f"arch is outside the supernet's choices: its head ({head(arch.head)}) "
                             f"is not the space's fixed head ({head(sp.head)})")
        if arch.classes != self.classes or arch.channels != self.channels:
            raise HwnasError(f"arch has {arch.classes} classes and {arch.channels} input channels; "
                             f"the supernet has {self.classes} and {self.channels}")
        return assign_blocks(sp, arch)

    def set_active(self, arch: Arch) -> None:
        """Make ``arch`` the subnet that ``forward`` computes."""
        assignment = self.check_arch(arch)
        depth = [0] * len(self.space.stages)
        cin = arch.stem.out
        for b, (j, layer) in zip(arch.blocks, assignment, strict=True):
            self.stages[j][layer].set_block(b, cin)
            depth[j] += 1
            cin = b.out
        self._depth, self._assignment, self.active = depth, assignment, arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for row, d in zip(self.stages, self._depth, strict=True):
            for m in row[:d]:
                x = m(x)
        if self.head is not None:
            x = act(self.space.head.act, self.head_bn(self.head(x)))
        return self.classifier(torch.flatten(x.mean((2, 3)), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> Net:
        """A stand-alone :class:`~hwnas.model.Net` of ``arch`` with the inherited weights (and
        BatchNorm statistics), in eval mode, on the CPU. Makes ``arch`` the active subnet."""
        self.set_active(arch)
        net = Net(arch)
        net.stem.load_state_dict({k: v.detach().cpu().clone() for k, v in self.stem.state_dict().items()})
        for mb, (j, layer) in zip(net.blocks, self._assignment, strict=True):
            self.stages[j][layer].copy_into(mb)
        h, c = arch.final_size()
        if self.head is not None:
            net.head[0].weight.copy_(self.head.active_weight(c))
            net.head[1].load_state_dict({k: v.clone() for k, v in self.head_bn.state_dict().items()})
            c = self.space.head.out
        net.classifier.fc.weight.copy_(self.classifier.active_weight(c))
        net.classifier.fc.bias.copy_(self.classifier.linear.bias)
        return net.cpu().eval()


__all__ = ["ElasticMBConv", "SuperNet", "assign_blocks"]
