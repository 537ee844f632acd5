"""Baseline architectures as plain Archs: MobileNetV2 widths and a MobileNetV3-small-like net.

MobileNetV2: Sandler et al. 2018, Table 2 (t, c, n, s); channels ``make_divisible(c * w, 8)``,
the last conv keeps 1280 for widths <= 1.0. MobileNetV3-small: Howard et al. 2019, Table 2,
without the extra 1x1 conv after pooling (this builder has one head conv), hence "-like".

:func:`resolve_arch` reads an ARCH argument of the command line: a file, a baseline name, a
NAS-Bench-Macro network (``macro:<8 digits>``, :mod:`hwnas.macro`) or a canonical string (it lives here, not in :mod:`hwnas.arch`, which knows no baselines).
"""

from __future__ import annotations

from pathlib import Path

from .arch import Arch, Block, Head, Stem, load_arch, make_divisible, parse_string, validate
from .errors import HwnasError

_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1)]
# kernel, expand (hidden / in), out, se, act, stride  -- MobileNetV3-small
_MBV3S = [(3, 1, 16, 0.25, "relu", 2), (3, 72 / 16, 24, 0, "relu", 2), (3, 88 / 24, 24, 0, "relu", 1),
          (5, 4, 40, 0.25, "hswish", 2), (5, 6, 40, 0.25, "hswish", 1), (5, 6, 40, 0.25, "hswish", 1),
          (5, 3, 48, 0.25, "hswish", 1), (5, 3, 48, 0.25, "hswish", 1), (5, 6, 96, 0.25, "hswish", 2),
          (5, 6, 96, 0.25, "hswish", 1), (5, 6, 96, 0.25, "hswish", 1)]


def mobilenet_v2(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> Arch:
    blocks = []
    for t, c, n, s in _MBV2:
        out = make_divisible(c * width, 8)
        for i in range(n):
            blocks.append(Block(kernel=3, expand=t, out=out, stride=s if i == 0 else 1, act="relu6"))
    head = make_divisible(1280 * width, 8) if width > 1.0 else 1280
    a = Arch(resolution=resolution, stem=Stem(make_divisible(32 * width, 8), 3, 2, "relu6"),
             blocks=tuple(blocks), head=Head(head, "relu6"), classes=classes)
    validate(a, f"mobilenet_v2({width})")
    return a


def mobilenet_v3_small(resolution: int = 224, classes: int = 1000) -> Arch:
    # expansion ratios chosen so that make_divisible(in * e, 8) gives the paper's widths
    blocks = tuple(Block(kernel=k, expand=round(e, 4), out=o, stride=s, se=se, act=a)
                   for k, e, o, se, a, s in _MBV3S)
    a = Arch(resolution=resolution, stem=Stem(16, 3, 2, "hswish"), blocks=blocks,
             head=Head(576, "hswish"), classes=classes)
    validate(a, "mobilenet_v3_small")
    return a


BASELINES = {
    "mbv2-0.35": lambda r, n: mobilenet_v2(0.35, r or 224, n),
    "mbv2-0.5": lambda r, n: mobilenet_v2(0.5, r or 224, n),
    "mbv2-0.75": lambda r, n: mobilenet_v2(0.75, r or 224, n),
    "mbv2-1.0": lambda r, n: mobilenet_v2(1.0, r or 224, n),
    "mbv3-small": lambda r, n: mobilenet_v3_small(r or 224, n),
}


def baseline(name: str, resolution: int | None = None, classes: int = 1000) -> Arch:
    if name not in BASELINES:
        raise HwnasError(f"unknown baseline '{name}' (known: {', '.join(BASELINES)})")
    return BASELINES[name](resolution, classes)


def resolve_arch(spec: str) -> Arch:
    """An ARCH argument: a file path, a baseline name (``mbv2-0.5``, ``mbv2-0.5@160``), a
    NAS-Bench-Macro code (``macro:02012100``) or a canonical string."""
    if spec.startswith("macro:"):
        from .macro import macro_arch

        return macro_arch(spec[len("macro:"):])
    p = Path(spec)
    try:
        exists = p.exists()
    except OSError:  # e.g. a canonical string longer than a file name may be (255 bytes)
        exists = False
    if p.suffix in (".yaml", ".yml", ".json") or exists:
        return load_arch(p)
    name = spec.split("@")[0]
    if name in BASELINES:
        res = spec.split("@")[1] if "@" in spec else None
        if res is not None and not (res.isascii() and res.isdigit()):
            raise HwnasError(f"'{spec}': resolution after '@' must be an integer")
        return baseline(name, int(res) if res else None)
    if spec.startswith("r") and "_" in spec:
        return parse_string(spec)
    raise HwnasError(
        f"'{spec}': not an arch file, a baseline ({', '.join(BASELINES)}), macro:<8 digits> "
        "or a canonical arch string"
    )


__all__ = ["BASELINES", "baseline", "mobilenet_v2", "mobilenet_v3_small", "resolve_arch"]
