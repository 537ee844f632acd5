"""Elastic ops: each module holds the largest weights and uses a slice of them at forward time.

The shape follows Once-for-All's ``DynamicConv2d`` / ``DynamicSeparableConv2d`` /
``DynamicBatchNorm2d`` / ``DynamicSE`` / ``DynamicLinear`` (Cai et al., ICLR 2020;
mit-han-lab/once-for-all, ofa/imagenet_classification/elastic_nn/modules/dynamic_op.py),
written fresh for hwnas: the *active* configuration (output channels, kernel size, squeeze
width) is an attribute set before the forward pass, never a forward argument; input channels
are read from the input. Channels are always the *first* ones of the largest tensor, the
kernel is the *centre* of the largest kernel.

Every op also returns its active weights as plain tensors (``active_weight()`` and
friends) so that a stand-alone :class:`hwnas.model.Net` can be given exactly the weights the
subnet computes with (see :meth:`hwnas.supernet.net.SuperNet.extract`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACT_FN = {"relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish}


def act(name: str, x: torch.Tensor) -> torch.Tensor:
    """The activation ``name`` (as in :func:`hwnas.model.make_act`) applied to ``x``."""
    return ACT_FN[name](x)


class DynamicConv2d(nn.Module):
    """A dense conv (1x1 here) whose active weight is ``weight[:active_out, :in_channels]``."""

    def __init__(self, max_in: int, max_out: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(max_in, max_out, kernel, stride, kernel // 2, bias=False)
        self.active_out = max_out

    def active_weight(self, in_channels: int) -> torch.Tensor:
        return self.conv.weight[:self.active_out, :in_channels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.active_weight(x.size(1)).contiguous()
        return F.conv2d(x, w, None, self.conv.stride, self.conv.padding)


class DynamicDepthwiseConv2d(nn.Module):
    """A depthwise conv with an elastic kernel: the active ``k x k`` filter is the centre of
    the largest one (plain centre crop), or with ``transform=True`` the centre passed through
    Once-for-All's learned kernel transform matrices, one per step down the kernel ladder
    (7 -> 5 -> 3, each a ``k^2 x k^2`` matrix shared by all channels, initialised to the
    identity so that it starts as the plain crop)."""

    def __init__(self, max_channels: int, kernels: tuple[int, ...], stride: int = 1,
                 transform: bool = False):
        super().__init__()
        self.kernels = tuple(sorted(set(kernels)))
        k = self.kernels[-1]
        self.conv = nn.Conv2d(max_channels, max_channels, k, stride, k // 2, groups=max_channels,
                              bias=False)
        self.transform = transform
        if transform:
            for big, small in zip(self.kernels[1:], self.kernels[:-1], strict=True):
                self.register_parameter(f"transform_{big}to{small}",
                                        nn.Parameter(torch.eye(small * small)))
        self.active_kernel = k

    def active_weight(self, channels: int) -> torch.Tensor:
        w = self.conv.weight[:channels]
        size = w.shape[-1]
        if self.active_kernel == size:
            return w
        if not self.transform:
            s = (size - self.active_kernel) // 2
            return w[:, :, s:s + self.active_kernel, s:s + self.active_kernel]
        for big in reversed(self.kernels[1:]):  # 7 -> 5, then 5 -> 3, ...
            if big <= self.active_kernel:
                break
            small = self.kernels[self.kernels.index(big) - 1]
            s = (big - small) // 2
            w = w[:, :, s:s + small, s:s + small].reshape(channels, small * small)
            w = F.linear(w, getattr(self, f"transform_{big}to{small}")).reshape(channels, 1, small, small)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        # an NHWC input wants an NHWC filter: oneDNN's depthwise kernel is then 1.4x faster
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        w = self.active_weight(c).contiguous(
            memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        return F.conv2d(x, w, None, self.conv.stride, self.active_kernel // 2, groups=c)


class DynamicBatchNorm2d(nn.Module):
    """BatchNorm over the first ``C`` channels of the largest one (C read from the input).

    The running statistics are slices (views) of the full buffers, so training-mode forwards
    update exactly the active channels; ``momentum=None`` (a cumulative average, what BN
    recalibration uses) and ``num_batches_tracked`` behave as in ``nn.BatchNorm2d``."""

    def __init__(self, max_features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(max_features)

    def active_state(self, channels: int) -> dict[str, torch.Tensor]:
        """The active channels' parameters and statistics, keyed as in ``nn.BatchNorm2d``."""
        bn = self.bn
        return {"weight": bn.weight[:channels], "bias": bn.bias[:channels],
                "running_mean": bn.running_mean[:channels], "running_var": bn.running_var[:channels],
                "num_batches_tracked": bn.num_batches_tracked}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, c = self.bn, x.size(1)
        factor = 0.0
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            bn.training or not bn.track_running_stats, factor, bn.eps)


class DynamicSE(nn.Module):
    """Squeeze-excite as :class:`hwnas.model.SqueezeExcite` with an elastic squeeze width
    (``active_squeeze`` first channels of the reduce conv) and input width; the gate is
    hard-sigmoid when ``hard_gate`` (hswish blocks), else sigmoid."""

    def __init__(self, max_channels: int, max_squeeze: int):
        super().__init__()
        self.reduce = nn.Conv2d(max_channels, max_squeeze, 1)
        self.expand = nn.Conv2d(max_squeeze, max_channels, 1)
        self.active_squeeze = max_squeeze
        self.hard_gate = False

    def active_weights(self, channels: int) -> dict[str, torch.Tensor]:
        q = self.active_squeeze
        return {"reduce.weight": self.reduce.weight[:q, :channels], "reduce.bias": self.reduce.bias[:q],
                "expand.weight": self.expand.weight[:channels, :q],
                "expand.bias": self.expand.bias[:channels]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.active_weights(x.size(1))
        s = x.mean((2, 3), keepdim=True)
        s = F.relu(F.conv2d(s, w["reduce.weight"].contiguous(), w["reduce.bias"]))
        s = F.conv2d(s, w["expand.weight"].contiguous(), w["expand.bias"])
        return x * (F.hardsigmoid(s) if self.hard_gate else torch.sigmoid(s))


class DynamicLinear(nn.Module):
    """A linear layer with elastic input features (the first ones)."""

    def __init__(self, max_in: int, out: int):
        super().__init__()
        self.linear = nn.Linear(max_in, out)

    def active_weight(self, in_features: int) -> torch.Tensor:
        return self.linear.weight[:, :in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.active_weight(x.size(1)).contiguous(), self.linear.bias)


__all__ = ["ACT_FN", "DynamicBatchNorm2d", "DynamicConv2d", "DynamicDepthwiseConv2d", "DynamicLinear",
           "DynamicSE", "act"]
