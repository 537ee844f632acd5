"""Baseline architectures as plain Archs: MobileNetV2 widths, MobileNetV3-small and -large.

MobileNetV2: Sandler et al. 2018, Table 2 (t, c, n, s); channels ``make_divisible(c * w, 8)``,
the last conv keeps 1280 for widths <= 1.0 (``make_divisible(1280 * w, 8)`` above: 1792 at
1.4). MobileNetV3: Howard et al. 2019, Tables 1 and 2, as torchvision and timm build them:
stem 16 hswish; SE width ``make_divisible(hidden / 4, 8)``; the last 1x1 conv (576 small,
960 large, hswish) before pooling, then the pre-logits linear (1024 small, 1280 large,
hswish; :attr:`hwnas.arch.Head.fc`) and the classifier. Width multipliers (timm's
``mobilenetv3_small_075``) scale the stem, every block's and the last conv's channels with
``make_divisible(c * w, 8)``, not the pre-logits width.

One difference from torchvision / timm, in the ops but not in params or MACs: hwnas gates SE
with a sigmoid in relu blocks and a hard-sigmoid in hswish blocks (:class:`hwnas.model.SqueezeExcite`),
MobileNetV3 with a hard-sigmoid everywhere (its relu blocks with SE: the first of -small,
three of -large).

timm's model names are accepted as baselines (:data:`TIMM_NAMES`): ``mobilenetv2_035`` ...
``mobilenetv2_140``, ``mobilenetv3_small_075``, ``mobilenetv3_small_100``,
``mobilenetv3_large_100``; params at 1000 classes equal timm's published figures (tested).

:func:`resolve_arch` reads an ARCH argument of the command line: a file, a baseline name, a
NAS-Bench-Macro network (``macro:<8 digits>``, :mod:`hwnas.macro`) or a canonical string (it lives here, not in :mod:`hwnas.arch`, which knows no baselines).
"""

from __future__ import annotations

from pathlib import Path

from .arch import Arch, Block, Head, Stem, load_arch, make_divisible, parse_string, validate
from .errors import HwnasError

_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1)]
# kernel, hidden (expanded width at width 1.0), out, se, act, stride -- Howard et al. Table 2
_MBV3S = [(3, 16, 16, 0.25, "relu", 2), (3, 72, 24, 0, "relu", 2), (3, 88, 24, 0, "relu", 1),
          (5, 96, 40, 0.25, "hswish", 2), (5, 240, 40, 0.25, "hswish", 1),
          (5, 240, 40, 0.25, "hswish", 1), (5, 120, 48, 0.25, "hswish", 1),
          (5, 144, 48, 0.25, "hswish", 1), (5, 288, 96, 0.25, "hswish", 2),
          (5, 576, 96, 0.25, "hswish", 1), (5, 576, 96, 0.25, "hswish", 1)]
# -- MobileNetV3-large, Table 1
_MBV3L = [(3, 16, 16, 0, "relu", 1), (3, 64, 24, 0, "relu", 2), (3, 72, 24, 0, "relu", 1),
          (5, 72, 40, 0.25, "relu", 2), (5, 120, 40, 0.25, "relu", 1),
          (5, 120, 40, 0.25, "relu", 1), (3, 240, 80, 0, "hswish", 2),
          (3, 200, 80, 0, "hswish", 1), (3, 184, 80, 0, "hswish", 1),
          (3, 184, 80, 0, "hswish", 1), (3, 480, 112, 0.25, "hswish", 1),
          (3, 672, 112, 0.25, "hswish", 1), (5, 672, 160, 0.25, "hswish", 2),
          (5, 960, 160, 0.25, "hswish", 1), (5, 960, 160, 0.25, "hswish", 1)]


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


def _mobilenet_v3(table: list, last: int, fc: int, width: float, resolution: int,
                  classes: int, name: str) -> Arch:
    """MobileNetV3 from its table, as timm builds it: a block's expansion ratio is the
    table's hidden / input width (4 decimals: ``make_divisible(in * expand, 8)`` gives the
    table's width back at width 1.0, checked), applied to the input width at any width."""
    def ch(c: int) -> int:
        return make_divisible(c * width, 8)

    in1, cin, blocks = 16, ch(16), []
    for k, hidden, o, se, act, s in table:
        e = 1.0 if hidden == in1 else round(hidden / in1, 4)
        b = Block(kernel=k, expand=e, out=ch(o), stride=s, se=se, act=act)
        if width == 1.0 and b.hidden(cin) != hidden:
            raise AssertionError(f"{name}: block {len(blocks)} has {b.hidden(cin)} channels")
        blocks.append(b)
        in1, cin = o, b.out
    a = Arch(resolution=resolution, stem=Stem(ch(16), 3, 2, "hswish"), blocks=tuple(blocks),
             head=Head(ch(last), "hswish", fc), classes=classes)
    validate(a, name)
    return a


def mobilenet_v3_small(resolution: int = 224, classes: int = 1000, width: float = 1.0) -> Arch:
    return _mobilenet_v3(_MBV3S, 576, 1024, width, resolution, classes, "mobilenet_v3_small")


def mobilenet_v3_large(resolution: int = 224, classes: int = 1000, width: float = 1.0) -> Arch:
    return _mobilenet_v3(_MBV3L, 960, 1280, width, resolution, classes, "mobilenet_v3_large")


BASELINES = {
    "mbv2-0.35": lambda r, n: mobilenet_v2(0.35, r or 224, n),
    "mbv2-0.5": lambda r, n: mobilenet_v2(0.5, r or 224, n),
    "mbv2-0.75": lambda r, n: mobilenet_v2(0.75, r or 224, n),
    "mbv2-1.0": lambda r, n: mobilenet_v2(1.0, r or 224, n),
    "mbv2-1.4": lambda r, n: mobilenet_v2(1.4, r or 224, n),
    "mbv3-small": lambda r, n: mobilenet_v3_small(r or 224, n),
    "mbv3-small-0.75": lambda r, n: mobilenet_v3_small(r or 224, n, 0.75),
    "mbv3-large": lambda r, n: mobilenet_v3_large(r or 224, n),
}
#: timm's model names -> the baseline that is the same network
TIMM_NAMES = {"mobilenetv2_035": "mbv2-0.35", "mobilenetv2_050": "mbv2-0.5",
              "mobilenetv2_075": "mbv2-0.75", "mobilenetv2_100": "mbv2-1.0",
              "mobilenetv2_140": "mbv2-1.4", "mobilenetv3_small_075": "mbv3-small-0.75",
              "mobilenetv3_small_100": "mbv3-small", "mobilenetv3_large_100": "mbv3-large"}


def baseline(name: str, resolution: int | None = None, classes: int = 1000) -> Arch:
    """A baseline by its hwnas name or its timm name (:data:`TIMM_NAMES`)."""
    name = TIMM_NAMES.get(name, name)
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
    if name in BASELINES or name in TIMM_NAMES:
        res = spec.split("@")[1] if "@" in spec else None
        if res is not None and not (res.isascii() and res.isdigit()):
            raise HwnasError(f"'{spec}': resolution after '@' must be an integer")
        return baseline(name, int(res) if res else None)
    if spec.startswith("r") and "_" in spec:
        return parse_string(spec)
    raise HwnasError(
        f"'{spec}': not an arch file, a baseline ({', '.join(BASELINES)}; or timm's "
        f"{', '.join(TIMM_NAMES)}), macro:<8 digits> "
        "or a canonical arch string"
    )


__all__ = ["BASELINES", "TIMM_NAMES", "baseline", "mobilenet_v2", "mobilenet_v3_large",
           "mobilenet_v3_small", "resolve_arch"]
