"""NAS-Bench-Macro (Su et al., CVPR 2021): its 6,561 CIFAR-10 networks as Archs, by code.

The benchmark's network (xiusu/NAS-Bench-Macro, train/model.py): a 3x3 stem of 32 channels,
stride 1 (conv + BN + ReLU); three stages of 2, 3 and 3 layers with 64, 128 and 256 output
channels, the first layer of each with stride 2; a 1x1 head of 1280 channels + ReLU; global
average pooling and a linear classifier for 10 classes; 32 px RGB input. Each of the 8 layers
is one of three choices, the digit of its position in the benchmark's code (``"02012100"``):

* ``0`` -- "Identity": a skip block (identity, or 1x1 conv + BN with the stride where the
  shape changes), :meth:`hwnas.arch.Block.skip`;
* ``1`` -- an inverted residual, kernel 3, expansion 3, ReLU;
* ``2`` -- an inverted residual, kernel 5, expansion 6, ReLU.

The same networks are the Archs of ``search_spaces/nas-bench-macro.yaml``. ``macro:<code>``
is an ARCH argument anywhere (:func:`hwnas.baselines.resolve_arch`). The benchmark's own
results (CIFAR-10 test accuracy of 3 seeds, params, MACs as "flops") ship with hwnas, with
their licence (Apache-2.0) and citation: :func:`benchmark_results`. No torch here.
"""

from __future__ import annotations

from typing import Any

from .arch import Arch, Block, Head, Stem, validate
from .errors import HwnasError

PREFIX = "macro:"
STAGES = ((64, 2), (128, 3), (256, 3))  # (out channels, layers); the first layer has stride 2
LAYERS = sum(n for _, n in STAGES)
RESOLUTION, CLASSES = 32, 10
STEM = Stem(out=32, kernel=3, stride=1, act="relu")
HEAD = Head(out=1280, act="relu")
#: the benchmark's candidate ops in code order: 'id', 'ir_3x3_t3', 'ir_5x5_t6'
CHOICES = ("id", "k3e3", "k5e6")


def _layer(digit: str, out: int, stride: int) -> Block:
    if digit == "0":
        return Block.skip(out, stride)
    k, e = (3, 3.0) if digit == "1" else (5, 6.0)
    return Block(kernel=k, expand=e, out=out, stride=stride, act="relu")


def check_code(code: str, where: str = "") -> str:
    """``code`` if it is 8 ASCII digits 0/1/2, else one-line HwnasError naming the problem."""
    w = where or f"{PREFIX}{code}"
    if not isinstance(code, str) or len(code) != LAYERS:
        n = len(code) if isinstance(code, str) else 0
        raise HwnasError(f"'{w}': a NAS-Bench-Macro code has {LAYERS} digits (one per layer, "
                         f"each 0, 1 or 2), got {n} characters")
    for i, ch in enumerate(code):
        if ch not in "012":
            what = "not an ASCII digit" if not ("0" <= ch <= "9") else "not 0, 1 or 2"
            raise HwnasError(f"'{w}': character {i + 1} {ch!r} is {what} (each layer is 0 = "
                             "skip, 1 = k3 e3, 2 = k5 e6)")
    return code


def macro_arch(code: str) -> Arch:
    """The NAS-Bench-Macro network of ``code`` (8 digits 0/1/2, the benchmark's own
    encoding and layer order) as an Arch."""
    check_code(code)
    blocks, digits = [], iter(code)
    for out, n in STAGES:
        for i in range(n):
            blocks.append(_layer(next(digits), out, 2 if i == 0 else 1))
    a = Arch(resolution=RESOLUTION, stem=STEM, blocks=tuple(blocks), head=HEAD,
             classes=CLASSES, channels=3)
    validate(a, f"{PREFIX}{code}")
    return a


def macro_code(arch: Arch) -> str | None:
    """The benchmark code of ``arch``, None if it is not one of the 6,561 networks."""
    if len(arch.blocks) != LAYERS:
        return None
    digits = []
    for b in arch.blocks:
        if b.is_skip:
            digits.append("0")
        elif (b.kernel, b.expand) == (3, 3.0):
            digits.append("1")
        elif (b.kernel, b.expand) == (5, 6.0):
            digits.append("2")
        else:
            return None
    code = "".join(digits)
    return code if macro_arch(code) == arch else None


RESULTS = "resources/nas-bench-macro/cifar10.json"  # inside the hwnas package


def benchmark_results() -> dict[str, dict[str, Any]]:
    """The benchmark's file: code -> {test_acc: [3 seeds], mean_acc, std, params, flops}
    (accuracies in %, flops = multiply-accumulates at 32 px)."""
    import json
    from importlib.resources import files

    return json.loads(files("hwnas").joinpath(RESULTS).read_text(encoding="utf-8"))


def all_codes() -> list[str]:
    """Every code of the benchmark (3^8 = 6,561), in numeric order."""
    from itertools import product

    return ["".join(c) for c in product("012", repeat=LAYERS)]


__all__ = ["CHOICES", "PREFIX", "RESULTS", "all_codes", "benchmark_results", "check_code",
           "macro_arch", "macro_code"]
