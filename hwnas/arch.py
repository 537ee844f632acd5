"""Arch: a complete, explicit description of one MobileNet-like network.

An Arch needs no search space to be understood. It is read from / written to YAML or
JSON (see ARCHITECTURE.md) and has a canonical compact string, used as its ID in
tables, studies and file names, that parses back to the same Arch.

Channel rounding: the expansion (hidden) width of an MBConv block is
``make_divisible(in_channels * expand, 8)`` (the MobileNetV2/V3 rule: nearest multiple
of 8, never below 90 % of the exact value), except ``expand == 1`` which keeps
``in_channels`` (no expansion conv). The squeeze-excite width is
``make_divisible(hidden * se, 8)``.

Skip blocks (``Block.skip(out, stride, act)``, ``kind="skip"``; NAS-Bench-Macro's
"Identity", FBNet's skip): the identity where the block keeps the shape (stride 1, input
channels == ``out``), else a 1x1 convolution (no bias) with the stride + BatchNorm; ``act``
(off by default: ``""``) adds an activation after it. A skip has no kernel, expansion or SE
(stored as kernel 1, expand 1, se 0). In an arch file: ``{kind: skip, out: 64, stride: 2}``
(``act`` only when set); in the canonical string: ``idc64s2`` (``id`` + channels + stride,
then the activation's code when set: it is the skip's own, not a change from the previous
block, and skips leave the running activation/SE of MBConv tokens untouched).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import HwnasError
from .io import input_file, loads_json

ACTS = ("relu", "relu6", "hswish")

# ---- limits -----------------------------------------------------------------------------------
#: Documented limits (README, "Limits"), checked on reading an Arch (file, string, space, code
#: through :func:`validate`), before anything is built: a small file cannot make a command
#: allocate tens of GB. The memory limit is the one a user may raise (:data:`MAX_MEMORY_ENV`,
#: or ``hwnas --max-memory-gb GB ...``).
MAX_RESOLUTION = 4096
MAX_CHANNELS = 16384  # input, stem, block (also the expanded width), head
MAX_BLOCKS = 256
MAX_CLASSES = 100_000
MAX_KERNEL = 15
MAX_EXPAND = 32
#: predicted memory of one model at batch 1, float32: weights + peak live activations
#: (:func:`hwnas.costs.arch_costs`)
DEFAULT_MAX_MEMORY_GB = 4.0
MAX_MEMORY_ENV = "HWNAS_MAX_MEMORY_GB"
_MAX = {"resolution": MAX_RESOLUTION, "channels": MAX_CHANNELS, "out": MAX_CHANNELS,
        "fc": MAX_CHANNELS,
        "classes": MAX_CLASSES, "kernel": MAX_KERNEL, "expand": MAX_EXPAND}
ACT_CODE = {"relu": "re", "relu6": "r6", "hswish": "hs"}
CODE_ACT = {v: k for k, v in ACT_CODE.items()}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (MobileNet rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def num_str(x: float) -> str:
    """Shortest exact text of a number: 6 -> '6', 2.5 -> '2.5'."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Stem:
    out: int
    kernel: int = 3
    stride: int = 2
    act: str = "relu6"


BLOCK_KINDS = ("mb", "skip")


@dataclass(frozen=True)
class Block:
    """One block: inverted residual (MBConv, ``kind="mb"``) or skip (``kind="skip"``, made
    with :meth:`skip`; see the module docstring)."""

    kernel: int
    expand: float
    out: int
    stride: int = 1
    se: float = 0.0
    act: str = "relu6"  # a skip: "" (no activation) or the activation after it
    kind: str = "mb"

    @classmethod
    def skip(cls, out: int, stride: int = 1, act: str = "") -> Block:
        """A skip block: identity if the shape is kept, else 1x1 conv + BN (+ ``act``)."""
        return cls(kernel=1, expand=1.0, out=out, stride=stride, se=0.0, act=act, kind="skip")

    @property
    def is_skip(self) -> bool:
        return self.kind == "skip"

    def hidden(self, in_channels: int) -> int:
        if self.expand == 1:
            return in_channels
        return make_divisible(in_channels * self.expand, 8)

    def se_channels(self, in_channels: int) -> int:
        return make_divisible(self.hidden(in_channels) * self.se, 8) if self.se else 0

    def residual(self, in_channels: int) -> bool:
        """A residual add (MBConv only: a skip is never an add)."""
        return self.kind == "mb" and self.stride == 1 and in_channels == self.out

    def projects(self, in_channels: int) -> bool:
        """A skip that changes the shape (stride 2 or other channels): 1x1 conv + BN."""
        return self.kind == "skip" and (self.stride != 1 or in_channels != self.out)

    def is_noop(self, in_channels: int) -> bool:
        """A skip that does nothing (keeps the shape, no activation): it has no piece."""
        return self.kind == "skip" and not self.projects(in_channels) and not self.act


@dataclass(frozen=True)
class Head:
    """The 1x1 conv (+ BN + ``act``) before global pooling; ``fc`` > 0 adds MobileNetV3's
    pre-logits layer after the pooling: a linear ``out`` -> ``fc`` (with bias) + ``act``,
    then the classifier reads ``fc`` features (canonical string ``h576hsf1024``)."""

    out: int
    act: str = "relu6"
    fc: int = 0


@dataclass(frozen=True)
class Arch:
    resolution: int
    stem: Stem
    blocks: tuple[Block, ...]
    head: Head | None
    classes: int = 1000
    channels: int = 3

    # ---- derived shapes -------------------------------------------------------------
    def stages(self) -> Iterator[tuple[int, int, int, Block]]:
        """Yield (index, input H(=W), input channels, block) for every block."""
        h = out_size(self.resolution, self.stem.kernel, self.stem.stride)
        c = self.stem.out
        for i, b in enumerate(self.blocks):
            yield i, h, c, b
            h = out_size(h, b.kernel, b.stride)
            c = b.out

    def final_size(self) -> tuple[int, int]:
        """(H, channels) of the feature map entering the head."""
        h = out_size(self.resolution, self.stem.kernel, self.stem.stride)
        c = self.stem.out
        for b in self.blocks:
            h, c = out_size(h, b.kernel, b.stride), b.out
        return h, c

    @property
    def features(self) -> int:
        """Channels entering the classifier."""
        if self.head is None:
            return self.final_size()[1]
        return self.head.fc or self.head.out

    # ---- canonical string -----------------------------------------------------------
    def to_string(self) -> str:
        """Canonical compact string, e.g. ``r224c3_s32k3s2r6_k3e1c16s1_k3e6c24s2x2_h1280r6_n1000``.

        Blocks are ``k<kernel>e<expand>c<out>s<stride>`` plus ``q<se>`` and an activation
        code (``re``/``r6``/``hs``) only where they change from the previous block (the
        stem's activation, SE off at the start). Runs of identical stride-1 blocks are
        written once with ``x<count>`` (the first of a stage keeps its stride).
        """
        parts = [f"r{self.resolution}c{self.channels}"]
        st = self.stem
        parts.append(f"s{st.out}k{st.kernel}s{st.stride}{ACT_CODE[st.act]}")
        act, se = st.act, 0.0
        toks: list[str] = []
        for b in self.blocks:
            if b.is_skip:
                toks.append(f"idc{b.out}s{b.stride}{ACT_CODE[b.act] if b.act else ''}")
                continue
            t = f"k{b.kernel}e{num_str(b.expand)}c{b.out}s{b.stride}"
            if b.se != se:
                t += f"q{num_str(b.se)}"
            if b.act != act:
                t += ACT_CODE[b.act]
            act, se = b.act, b.se
            toks.append(t)
        # run-length: consecutive identical tokens (only possible once se/act are settled)
        i = 0
        while i < len(toks):
            j = i + 1
            while j < len(toks) and toks[j] == toks[i]:
                j += 1
            parts.append(toks[i] + (f"x{j - i}" if j - i > 1 else ""))
            i = j
        hd = self.head
        parts.append(f"h{hd.out}{ACT_CODE[hd.act]}{f'f{hd.fc}' if hd.fc else ''}" if hd else "h0")
        parts.append(f"n{self.classes}")
        return "_".join(parts)

    def file_stem(self, max_len: int = 200) -> str:
        """A file-name-safe stem: the canonical string, or its head plus a hash if long."""
        s = self.to_string()
        if len(s) <= max_len:
            return s
        return s[: max_len - 13] + "-" + hashlib.sha1(s.encode()).hexdigest()[:12]

    @classmethod
    def from_string(cls, s: str) -> Arch:
        return parse_string(s)

    # ---- dict / file ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def clean(d: dict) -> dict:
            return {k: (int(v) if isinstance(v, float) and v.is_integer() and k != "se" else v)
                    for k, v in d.items()}

        return {
            "input": {"resolution": self.resolution, "channels": self.channels},
            "stem": asdict(self.stem),
            "blocks": [_block_dict(b, clean) for b in self.blocks],
            "head": ({k: v for k, v in asdict(self.head).items() if k != "fc" or v}
                     if self.head else None),
            "classes": self.classes,
        }

    def with_resolution(self, resolution: int) -> Arch:
        a = replace(self, resolution=resolution)
        validate(a, "arch")
        return a


def _block_dict(b: Block, clean) -> dict[str, Any]:
    """An arch file's block: MBConv fields as before (no ``kind``); a skip's kind, out, stride
    and act (only when set)."""
    if not b.is_skip:
        return clean({k: v for k, v in asdict(b).items() if k != "kind"})
    return {"kind": "skip", "out": b.out, "stride": b.stride, **({"act": b.act} if b.act else {})}


def out_size(h: int, k: int, s: int) -> int:
    """Output height of a k x k conv with stride s and padding k // 2 (odd kernels):
    floor((h + 2*(k//2) - k)/s) + 1 = ceil(h/s)."""
    return (h + 2 * (k // 2) - k) // s + 1


# ---- validation -----------------------------------------------------------------------

_TOP = {"input", "stem", "blocks", "head", "classes"}
_FIELDS = {
    "input": {"resolution": int, "channels": int},
    "stem": {"out": int, "kernel": int, "stride": int, "act": str},
    "block": {"kernel": int, "expand": float, "out": int, "stride": int, "se": float, "act": str},
    "head": {"out": int, "act": str, "fc": int},
    "skip": {"kind": str, "out": int, "stride": int, "act": str},
}
_FIELDS["block"]["kind"] = str
_REQUIRED = {
    "input": {"resolution"},
    "stem": {"out"},
    "block": {"kernel", "expand", "out"},
    "head": {"out"},
    "skip": {"out"},
}


def check_keys(d: dict, allowed: Iterable[str], required: Iterable[str], where: str,
               sep: str = ".") -> None:
    """HwnasError naming the first key of ``d`` not in ``allowed`` (listed in that order), or
    the first of ``required`` that ``d`` lacks (as ``<where><sep><key>: missing``)."""
    allowed = list(allowed)
    for k in d:
        if k not in allowed:
            raise HwnasError(f"{where}: unknown key '{k}' (allowed: {', '.join(allowed)})")
    for k in required:
        if k not in d:
            raise HwnasError(f"{where}{sep}{k}: missing")


def check_section(d: Any, kind: str, where: str) -> dict:
    if not isinstance(d, dict):
        raise HwnasError(f"{where}: must be a mapping, got {type(d).__name__}")
    spec = _FIELDS[kind]
    check_keys(d, spec, _REQUIRED[kind], where)
    out = {}
    for k, v in d.items():
        t = spec[k]
        if t is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise HwnasError(f"{where}.{k}: must be an integer, got {v!r}")
        if t is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise HwnasError(f"{where}.{k}: must be a number, got {v!r}")
        if t is str and not isinstance(v, str):
            raise HwnasError(f"{where}.{k}: must be a string, got {v!r}")
        out[k] = float(v) if t is float else v
    return out


def check_values(where: str, **kw: Any) -> None:
    for name, v in kw.items():
        w = f"{where}.{name}"
        if isinstance(v, float) and not math.isfinite(v):
            raise HwnasError(f"{w}: must be a finite number, got {v}")
        if name in _MAX and v > _MAX[name]:
            raise HwnasError(f"{w}: {num_str(v)} is above the limit of {_MAX[name]:,}")
        if name == "fc" and v < 0:
            raise HwnasError(f"{w}: must be >= 0 (0 = no pre-logits layer), got {v}")
        if name in ("out", "resolution", "channels", "classes") and v <= 0:
            raise HwnasError(f"{w}: must be positive, got {v}")
        if name == "kernel" and (v < 1 or v % 2 == 0):
            raise HwnasError(f"{w}: must be an odd positive integer, got {v}")
        if name == "stride" and v not in (1, 2):
            raise HwnasError(f"{w}: must be 1 or 2, got {v}")
        if name == "act" and v not in ACTS:
            raise HwnasError(f"{w}: unknown activation '{v}' (allowed: {', '.join(ACTS)})")
        if name == "expand" and v < 1:
            raise HwnasError(f"{w}: must be >= 1, got {v}")
        if name == "se" and not (0 <= v < 1):
            raise HwnasError(f"{w}: must be in [0, 1) (0 = off), got {v}")


def from_dict(d: Any, source: str = "arch") -> Arch:
    """Build and validate an Arch; errors name ``source`` and the field."""
    if not isinstance(d, dict):
        raise HwnasError(f"{source}: must be a mapping with keys {sorted(_TOP)}")
    check_keys(d, sorted(_TOP), ("input", "stem", "blocks"), source, ": ")
    inp = check_section(d["input"], "input", f"{source}: input")
    stem = check_section(d["stem"], "stem", f"{source}: stem")
    if not isinstance(d["blocks"], list) or not d["blocks"]:
        raise HwnasError(f"{source}: blocks: must be a non-empty list")
    if len(d["blocks"]) > MAX_BLOCKS:
        raise HwnasError(f"{source}: blocks: {len(d['blocks'])} blocks is above the limit of "
                         f"{MAX_BLOCKS}")
    blocks = [_check_block(b, f"{source}: blocks[{i}]") for i, b in enumerate(d["blocks"])]
    head = d.get("head")
    if head is not None:
        head = check_section(head, "head", f"{source}: head")
    classes = d.get("classes", 1000)
    if isinstance(classes, bool) or not isinstance(classes, int):
        raise HwnasError(f"{source}: classes: must be an integer, got {classes!r}")
    arch = Arch(
        resolution=inp["resolution"],
        channels=inp.get("channels", 3),
        stem=Stem(**stem),
        blocks=tuple(blocks),
        head=Head(**head) if head is not None else None,
        classes=classes,
    )
    validate(arch, source)
    return arch


def _check_block(d: Any, where: str) -> Block:
    """One block of an arch file: MBConv fields, or ``kind: skip`` with out, stride, act."""
    kind = d.get("kind", "mb") if isinstance(d, dict) else "mb"
    if kind not in BLOCK_KINDS:
        raise HwnasError(f"{where}.kind: unknown block kind {kind!r} (allowed: "
                         f"{', '.join(BLOCK_KINDS)})")
    if kind == "skip":
        f = check_section(d, "skip", where)
        return Block.skip(f["out"], f.get("stride", 1), f.get("act", ""))
    return Block(**check_section(d, "block", where))


def validate(a: Arch, source: str = "arch") -> None:
    """HwnasError (naming ``source`` and the field) unless every value of ``a`` is valid and
    within the limits (:data:`MAX_RESOLUTION`, ... and :func:`max_memory_bytes`)."""
    check_values(f"{source}: input", resolution=a.resolution, channels=a.channels)
    check_values(f"{source}: stem", **asdict(a.stem))
    if len(a.blocks) > MAX_BLOCKS:
        raise HwnasError(f"{source}: blocks: {len(a.blocks)} blocks is above the limit of "
                         f"{MAX_BLOCKS}")
    cin = a.stem.out
    for i, b in enumerate(a.blocks):
        if b.kind not in BLOCK_KINDS:
            raise HwnasError(f"{source}: blocks[{i}].kind: unknown block kind {b.kind!r} "
                             f"(allowed: {', '.join(BLOCK_KINDS)})")
        if b.is_skip:
            if (b.kernel, b.expand, b.se) != (1, 1.0, 0.0):
                raise HwnasError(f"{source}: blocks[{i}]: a skip block has no kernel, expand "
                                 f"or se (got kernel {b.kernel}, expand {num_str(b.expand)}, "
                                 f"se {num_str(b.se)})")
            check_values(f"{source}: blocks[{i}]", out=b.out, stride=b.stride,
                         **({"act": b.act} if b.act else {}))
            cin = b.out
            continue
        check_values(f"{source}: blocks[{i}]",
                     **{k: v for k, v in asdict(b).items() if k != "kind"})
        if b.hidden(cin) > MAX_CHANNELS:
            raise HwnasError(f"{source}: blocks[{i}]: {cin} x expand {num_str(b.expand)} = "
                             f"{b.hidden(cin):,} channels is above the limit of {MAX_CHANNELS:,}")
        cin = b.out
    if a.head is not None:
        check_values(f"{source}: head", **asdict(a.head))
    check_values(source, classes=a.classes)
    # resolution too small for the strides: every feature map must stay >= 1 pixel
    # and the input must be divisible enough that no stride sees a 1-pixel map.
    total = a.stem.stride
    for b in a.blocks:
        total *= b.stride
    if a.resolution < total:
        raise HwnasError(
            f"{source}: input.resolution: {a.resolution} is too small for a total stride of "
            f"{total} (need >= {total})"
        )
    check_memory(a, source)


def max_memory_bytes() -> int:
    """The memory limit of one model: :data:`MAX_MEMORY_ENV` (GB), else
    :data:`DEFAULT_MAX_MEMORY_GB`."""
    text = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if not text:
        return int(DEFAULT_MAX_MEMORY_GB * 2**30)
    try:
        gb = float(text)
    except ValueError:
        gb = math.nan
    if not (math.isfinite(gb) and gb > 0):
        raise HwnasError(f"{MAX_MEMORY_ENV}={text!r}: expected a positive number of GB")
    return int(gb * 2**30)


def model_memory_bytes(a: Arch) -> int:
    """Predicted memory of ``a`` at batch 1, float32: weights plus peak live activations
    (:func:`hwnas.costs.arch_costs`, counted from shapes: nothing is allocated)."""
    from .costs import BYTES_PER_ELEM, arch_costs

    params, _, peak = arch_costs(a)
    return params * BYTES_PER_ELEM + peak


def check_memory(a: Arch, source: str = "arch") -> None:
    """HwnasError if ``a`` would need more memory than :func:`max_memory_bytes`."""
    need, limit = model_memory_bytes(a), max_memory_bytes()
    if need > limit:
        raise HwnasError(f"{source}: the model needs about {need / 2**30:.3g} GB (weights + "
                         f"activations, batch 1), above the limit of {limit / 2**30:.3g} GB "
                         f"(raise it with hwnas --max-memory-gb GB or {MAX_MEMORY_ENV})")


# ---- canonical string parsing ------------------------------------------------------------

_NUM = r"\d+(?:\.\d+)?"
_RE_IN = re.compile(r"r(\d+)c(\d+)")
_RE_STEM = re.compile(r"s(\d+)k(\d+)s(\d+)(re|r6|hs)")
_RE_BLOCK = re.compile(rf"k(\d+)e({_NUM})c(\d+)s(\d+)(?:q({_NUM}))?(re|r6|hs)?(?:x(\d+))?")
_RE_SKIP = re.compile(r"idc(\d+)s(\d+)(re|r6|hs)?(?:x(\d+))?")
_RE_HEAD = re.compile(r"h(\d+)(re|r6|hs)?(?:f(\d+))?")
_RE_CLS = re.compile(r"n(\d+)")


def _short(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def parse_string(s: str) -> Arch:
    toks = s.strip().split("_")
    bad = HwnasError(f"'{s}' is not a canonical arch string (e.g. r224c3_s32k3s2r6_k3e1c16s1_h1280r6_n1000)")
    if len(toks) < 5:
        raise bad
    m_in, m_st = _RE_IN.fullmatch(toks[0]), _RE_STEM.fullmatch(toks[1])
    m_h, m_n = _RE_HEAD.fullmatch(toks[-2]), _RE_CLS.fullmatch(toks[-1])
    if not (m_in and m_st and m_h and m_n):
        raise bad
    stem = Stem(out=int(m_st[1]), kernel=int(m_st[2]), stride=int(m_st[3]), act=CODE_ACT[m_st[4]])
    act, se = stem.act, 0.0
    blocks: list[Block] = []
    for t in toks[2:-2]:
        m = _RE_BLOCK.fullmatch(t)
        if m:
            if m[5] is not None:
                se = float(m[5])
            if m[6] is not None:
                act = CODE_ACT[m[6]]
            b = Block(kernel=int(m[1]), expand=float(m[2]), out=int(m[3]), stride=int(m[4]),
                      se=se, act=act)
            n = int(m[7] or 1)
        elif m := _RE_SKIP.fullmatch(t):
            b = Block.skip(int(m[1]), int(m[2]), CODE_ACT[m[3]] if m[3] else "")
            n = int(m[4] or 1)
        else:
            raise HwnasError(f"'{s}': cannot read block token '{t}'")
        if len(blocks) + n > MAX_BLOCKS:
            raise HwnasError(f"'{_short(s)}': more than {MAX_BLOCKS} blocks (the limit)")
        blocks.extend([b] * n)
    if m_h[1] == "0":
        head = None
    else:
        if m_h[2] is None:
            raise bad
        head = Head(out=int(m_h[1]), act=CODE_ACT[m_h[2]], fc=int(m_h[3] or 0))
    arch = Arch(resolution=int(m_in[1]), channels=int(m_in[2]), stem=stem, blocks=tuple(blocks),
                head=head, classes=int(m_n[1]))
    validate(arch, f"'{s}'")
    return arch


# ---- files ------------------------------------------------------------------------------------

#: an arch or space file larger than this is not read (a 256-block arch file is ~40 KB; a
#: 15 MB YAML file kept the parser busy for minutes at 1.2 GB)
MAX_FILE_BYTES = 2**18
#: a name a file gives (a space's ``name``) that becomes part of a path: no separators, no
#: "..", nothing that could leave the folder it is joined to
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def safe_name(name: Any, what: str) -> str:
    """``name`` if it is a plain file-name-safe word (:data:`SAFE_NAME`); else HwnasError."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise HwnasError(f"{what}: {str(name)[:60]!r} is not a plain name (letters, digits, "
                         "'.', '_', '+', '-'; no '/' or '..'): it would make a path outside "
                         "its folder")
    return name


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping with a key given twice, which YAML's loaders
    otherwise resolve silently to the last value. The pure-Python parser on purpose: libyaml's
    C parser recurses in C and crashed (SIGSEGV) on a document nested 10^5 deep, where this one
    raises RecursionError; :data:`MAX_FILE_BYTES` keeps its slowness bounded (seconds)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k_node, _ in node.value:
                k = self.construct_object(k_node, deep=True)
                if isinstance(k, (str, int, float, bool)) and k in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {k!r} is given twice", k_node.start_mark)
                seen.add(k) if isinstance(k, (str, int, float, bool)) else None
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """Parse YAML safely (a key given twice is a YAMLError; too deep is a RecursionError)."""
    return yaml.load(text, Loader=_StrictLoader)


def read_text_file(p: Path, what: str) -> str:
    """The UTF-8 text of a small input file (an arch or space file); HwnasError (one line) if
    it is missing, unreadable, larger than :data:`MAX_FILE_BYTES` or not UTF-8 text."""
    try:
        if not p.exists():
            raise HwnasError(f"{p}: no such {what}")
        # a directory, FIFO (never opened: it would block) or too large: one line each
        data = input_file(p, what, MAX_FILE_BYTES).read_bytes()
    except OSError as e:
        raise HwnasError(f"{p}: cannot read {what}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HwnasError(f"{p}: not a text file (byte {e.start} is not UTF-8); expected "
                         f"{what} in YAML or JSON") from None


def load_arch(path: str | Path) -> Arch:
    p = Path(path)
    text = read_text_file(p, "arch file")
    try:
        d = loads_json(text) if p.suffix == ".json" else load_yaml(text)
    except (ValueError, yaml.YAMLError, RecursionError) as e:  # ValueError: JSON, huge ints
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HwnasError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {first}") from None
    return from_dict(d, str(p))


def dump_arch(arch: Arch, fmt: str = "yaml") -> str:
    d = arch.to_dict()
    if fmt == "json":
        return json.dumps(d, indent=2) + "\n"
    # flow style per block keeps one block per line, as in ARCHITECTURE.md
    lines = [
        f"# {arch.to_string()}",
        f"input: {{resolution: {arch.resolution}, channels: {arch.channels}}}",
        "stem: " + _flow(d["stem"]),
        "blocks:",
        *["  - " + _flow(b) for b in d["blocks"]],
        "head: " + (_flow(d["head"]) if d["head"] else "null"),
        f"classes: {arch.classes}",
    ]
    return "\n".join(lines) + "\n"


def _flow(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {num_str(v) if isinstance(v, (int, float)) else v}" for k, v in d.items()) + "}"


def save_arch(arch: Arch, path: str | Path) -> Path:
    from .io import atomic_write_text

    p = Path(path)
    return atomic_write_text(p, dump_arch(arch, "json" if p.suffix == ".json" else "yaml"))


__all__ = [
    "ACTS", "ACT_CODE", "BLOCK_KINDS", "CODE_ACT", "DEFAULT_MAX_MEMORY_GB", "MAX_BLOCKS", "MAX_CHANNELS",
    "MAX_CLASSES", "MAX_EXPAND", "MAX_FILE_BYTES", "MAX_KERNEL", "MAX_MEMORY_ENV",
    "MAX_RESOLUTION", "Arch", "Block", "Head", "Stem", "check_keys", "check_memory",
    "check_section", "check_values", "dump_arch", "from_dict", "load_arch", "make_divisible",
    "max_memory_bytes", "model_memory_bytes", "num_str", "out_size", "parse_string",
    "read_text_file", "save_arch", "validate",
]
