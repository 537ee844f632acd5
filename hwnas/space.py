"""SearchSpace: a MobileNet-like space read from search_spaces/*.yaml.

A space is a list of stages. Each stage has an output width (with per-stage width
multiplier choices), a first-layer stride, a depth range, and per-layer kernel and
expansion choices (plus SE and activation choices per stage). It maps a set of
parameters to an :class:`~hwnas.arch.Arch`.

A stage's layer choices are every ``kernel`` x ``expand`` pair, or, with ``layers:``, an
explicit list of them (kernel and expand are then not given), which may hold ``"id"``: a
skip block (:meth:`hwnas.arch.Block.skip`: identity where the shape is kept, else a 1x1
conv + BN with the stride; NAS-Bench-Macro's "Identity"), e.g. ``layers: [id, k3e3, k5e6]``.
``"id"`` is a block of the network (the first layer of a stage keeps its stride and
projects); ``"skip"`` below leaves the layer out.

Every Arch is described by the *same* parameter set (what NSGA-II and GP samplers need):
a layer beyond a stage's minimum depth has the extra choice ``"skip"``. All choices are
plain ints or strings:

* ``resolution`` (int) -- only when the space lists more than one;
* ``s{j}_out`` (int) -- stage j's output channels, one per width multiplier;
* ``s{j}_se`` (str, e.g. "0" / "0.25") and ``s{j}_act`` (str) -- where a stage has choices;
* ``s{j}_l{l}`` (str) -- layer l of stage j: ``"k{kernel}e{expand}"``, ``"id"`` (where the
  stage's ``layers`` list it) or ``"skip"``.

Parameters with a single choice are fixed and not sampled.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .arch import (
    ACTS,
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_RESOLUTION,
    Arch,
    Block,
    Head,
    Stem,
    check_keys,
    check_section,
    check_values,
    load_yaml,
    make_divisible,
    num_str,
    out_size,
    read_text_file,
    safe_name,
    validate,
)
from .errors import HwnasError
from .paths import space_files
from .pieces import Piece, block_piece, cls_piece, head_piece, stem_piece

log = logging.getLogger(__name__)

SKIP = "skip"  # the layer is left out
ID = "id"  # the layer is a skip block
_LAYER_RE = re.compile(r"k(\d+)e(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Stage:
    out: int
    stride: int
    depth: tuple[int, int]
    kernel: tuple[int, ...]
    expand: tuple[float, ...]
    width: tuple[float, ...] = (1.0,)
    se: tuple[float, ...] = (0.0,)
    act: tuple[str, ...] = ("relu6",)
    layers: tuple[str, ...] = ()  # explicit layer choices ("k3e3", "id"); () = kernel x expand

    @property
    def outs(self) -> list[int]:
        return sorted({make_divisible(self.out * w, 8) for w in self.width})

    @property
    def layer_choices(self) -> list[str]:
        if self.layers:
            return list(self.layers)
        return [f"k{k}e{num_str(e)}" for k in self.kernel for e in self.expand]

    @property
    def has_id(self) -> bool:
        """Whether a layer may be a skip block (``"id"``)."""
        return ID in self.layers

    def largest_layer(self) -> str:
        """The layer choice with the most channels and the largest kernel (limits, memory)."""
        mb = [c for c in self.layer_choices if c != ID]
        if not mb:
            return ID
        return max(mb, key=lambda c: (float(_LAYER_RE.fullmatch(c)[2]),
                                      int(_LAYER_RE.fullmatch(c)[1])))


@dataclass(frozen=True)
class SearchSpace:
    name: str
    resolutions: tuple[int, ...]
    stem: Stem
    head: Head | None
    stages: tuple[Stage, ...]
    classes: int = 1000
    channels: int = 3
    source: str = ""

    # ---- parameters --------------------------------------------------------------------
    def params(self) -> list[tuple[str, list[Any]]]:
        """(name, choices) of every sampled parameter, in a fixed order."""
        out: list[tuple[str, list[Any]]] = []
        if len(self.resolutions) > 1:
            out.append(("resolution", list(self.resolutions)))
        for j, st in enumerate(self.stages, 1):
            if len(st.outs) > 1:
                out.append((f"s{j}_out", st.outs))
            if len(st.se) > 1:
                out.append((f"s{j}_se", [num_str(s) for s in st.se]))
            if len(st.act) > 1:
                out.append((f"s{j}_act", list(st.act)))
            for layer in range(st.depth[1]):
                choices = st.layer_choices + ([SKIP] if layer >= st.depth[0] else [])
                if len(choices) > 1:
                    out.append((f"s{j}_l{layer}", choices))
        return out

    def size(self) -> int:
        """Number of parameter configurations (distinct Archs are fewer: skips coincide)."""
        return math.prod(len(c) for _, c in self.params())

    def arch_from_params(self, p: dict[str, Any], resolution: int | None = None) -> Arch:
        res = resolution or p.get("resolution", self.resolutions[-1])
        blocks: list[Block] = []
        for j, st in enumerate(self.stages, 1):
            out = int(p.get(f"s{j}_out", st.outs[-1]))
            se = float(p.get(f"s{j}_se", st.se[0]))
            act = str(p.get(f"s{j}_act", st.act[0]))
            first = True
            for layer in range(st.depth[1]):
                choice = p.get(f"s{j}_l{layer}", st.layer_choices[0])
                if choice == SKIP:
                    continue
                if choice == ID and st.has_id:
                    blocks.append(Block.skip(out, st.stride if first else 1))
                    first = False
                    continue
                m = _LAYER_RE.fullmatch(str(choice))
                if not m:
                    raise HwnasError(f"{self.name}: bad layer choice {choice!r} for s{j}_l{layer}")
                blocks.append(Block(kernel=int(m[1]), expand=float(m[2]), out=out,
                                    stride=st.stride if first else 1, se=se, act=act))
                first = False
        a = Arch(resolution=int(res), stem=self.stem, blocks=tuple(blocks), head=self.head,
                 classes=self.classes, channels=self.channels)
        validate(a, self.name)
        return a

    def suggest(self, trial: Any, resolution: int | None = None) -> Arch:
        """Map an Optuna trial to an Arch (every trial suggests the same parameters)."""
        p = {name: trial.suggest_categorical(name, choices) for name, choices in self.params()
             if not (resolution and name == "resolution")}
        return self.arch_from_params(p, resolution)

    def sample_params(self, rng: random.Random) -> dict[str, Any]:
        return {name: rng.choice(choices) for name, choices in self.params()}

    def sample(self, seed: int | None = None, n: int = 1, resolution: int | None = None) -> list[Arch]:
        rng = random.Random(seed)
        return [self.arch_from_params(self.sample_params(rng), resolution) for _ in range(n)]

    # ---- block enumeration ------------------------------------------------------------------
    def pieces(self, resolution: int) -> list[Piece]:
        """Every distinct piece (block key) an Arch of this space can have at ``resolution``."""
        if resolution < self.min_resolution():
            raise HwnasError(f"{self.name}: resolution {resolution} is below the total stride "
                             f"{self.min_resolution()}")
        st = self.stem
        found: dict[str, Piece] = {}

        def add(p: Piece) -> None:
            found.setdefault(p.key, p)

        def add_block(h: int, cin: int, b: Block) -> None:
            if not b.is_noop(cin):  # an identity skip has no piece
                add(block_piece(h, cin, b))

        add(stem_piece(resolution, self.channels, st))
        h = out_size(resolution, st.kernel, st.stride)
        prev_outs = [st.out]
        for stage in self.stages:
            h_next = out_size(h, 1, stage.stride)  # the same for every odd kernel
            for cin in prev_outs:
                for cout in stage.outs:
                    for b in self._stage_blocks(stage, cout, stage.stride):
                        add_block(h, cin, b)
            if stage.depth[1] > 1:
                for cout in stage.outs:
                    for b in self._stage_blocks(stage, cout, 1):
                        add_block(h_next, cout, b)
            h, prev_outs = h_next, stage.outs
        if self.head is not None:
            for cin in prev_outs:
                add(head_piece(h, cin, self.head))
            add(cls_piece(h, self.head.out, self.classes))
        else:
            for cin in prev_outs:
                add(cls_piece(h, cin, self.classes))
        return list(found.values())


    def _stage_blocks(self, stage: Stage, cout: int, stride: int) -> Iterable[Block]:
        if stage.has_id:
            yield Block.skip(cout, stride)
        for se in stage.se:
            for act in stage.act:
                for c in stage.layer_choices:
                    if c != ID:
                        m = _LAYER_RE.fullmatch(c)
                        yield Block(int(m[1]), float(m[2]), cout, stride, se, act)

    def min_resolution(self) -> int:
        return self.stem.stride * math.prod(s.stride for s in self.stages)

    def describe(self, resolution: int | None = None) -> str:
        res = resolution or self.resolutions[-1]
        lines = [f"space {self.name}  ({self.source})",
                 f"  resolutions: {', '.join(map(str, self.resolutions))}",
                 f"  stem: out {self.stem.out}, k{self.stem.kernel} s{self.stem.stride} {self.stem.act}"]
        lines.append("  stage  outs            stride  depth  kernels  expand   se        act")
        for j, s in enumerate(self.stages, 1):
            lines.append(
                f"  s{j:<5} {','.join(map(str, s.outs)):<15} {s.stride:<7} {s.depth[0]}-{s.depth[1]:<4}"
                f" {','.join(map(str, s.kernel)) or '-':<8} "
                f"{','.join(num_str(e) for e in s.expand) or '-':<8}"
                f" {','.join(num_str(e) for e in s.se):<9} {','.join(s.act)}"
                + (f"   layers: {','.join(s.layers)}" if s.layers else "")
            )
        lines.append(f"  head: {self.head.out} {self.head.act}" if self.head else "  head: none")
        lines.append(f"  parameters: {len(self.params())}, configurations: {self.size():.3e}")
        lines.append(f"  distinct blocks at resolution {res}: {len(self.pieces(res))}")
        return "\n".join(lines)


# ---- loading ---------------------------------------------------------------------------------

_TOP = {"name", "description", "resolutions", "channels", "classes", "stem", "head", "stages"}
_STAGE = {"out", "stride", "depth", "kernel", "expand", "layers", "width", "se", "act"}


def _list(v: Any, where: str, typ: type | tuple, check=None) -> tuple:
    vals = v if isinstance(v, list) else [v]
    if not vals:
        raise HwnasError(f"{where}: must not be empty")
    for x in vals:
        if isinstance(x, bool) or not isinstance(x, typ):
            raise HwnasError(f"{where}: {x!r} is not a {getattr(typ, '__name__', 'number')}")
        if check:
            msg = check(x)
            if msg:
                raise HwnasError(f"{where}: {x!r} {msg}")
    return tuple(vals)


def _layers(s: dict, w: str) -> tuple[str, ...]:
    """A stage's explicit ``layers`` choices (``()`` if it has none): distinct ``k<K>e<E>``
    (odd kernel, expand >= 1) or ``id``; instead of ``kernel`` and ``expand``."""
    if "layers" not in s:
        return ()
    if "kernel" in s or "expand" in s:
        raise HwnasError(f"{w}: give either layers or kernel and expand, not both")
    vals = _list(s["layers"], f"{w}.layers", str)
    for c in vals:
        m = _LAYER_RE.fullmatch(c)
        if c != ID and not (m and int(m[1]) % 2 == 1 and float(m[2]) >= 1):
            raise HwnasError(f"{w}.layers: {c!r} is not a layer choice ('k<odd kernel>e<expand "
                             f">= 1>', e.g. 'k3e6', or '{ID}' for a skip block)")
    if len(set(vals)) != len(vals):
        raise HwnasError(f"{w}.layers: a choice is listed twice")
    return vals


def space_from_dict(d: Any, source: str) -> SearchSpace:
    if not isinstance(d, dict):
        raise HwnasError(f"{source}: must be a mapping")
    check_keys(d, sorted(_TOP), ("name", "resolutions", "stem", "stages"), source, ": ")
    safe_name(d["name"], f"{source}: name")
    def pos(x):
        return (None if x > 0 else "must be positive")
    res = _list(d["resolutions"], f"{source}: resolutions", int, pos)
    stem = check_section(d["stem"], "stem", f"{source}: stem")
    check_values(f"{source}: stem", **stem)
    head = None
    if d.get("head") is not None:
        hd = check_section(d["head"], "head", f"{source}: head")
        check_values(f"{source}: head", **hd)
        if hd.get("fc"):  # the supernet has no elastic pre-logits layer
            raise HwnasError(f"{source}: head.fc: a search space's head has no pre-logits "
                             "layer (only an arch file's may)")
        head = Head(**hd)
    if not isinstance(d["stages"], list) or not d["stages"]:
        raise HwnasError(f"{source}: stages: must be a non-empty list")
    stages = []
    for j, s in enumerate(d["stages"], 1):
        w = f"{source}: stages[{j - 1}]"
        if not isinstance(s, dict):
            raise HwnasError(f"{w}: must be a mapping")
        layers = _layers(s, w)
        check_keys(s, sorted(_STAGE), ("out", "stride") if layers else
                   ("out", "stride", "kernel", "expand"), w)
        def odd(x):
            return (None if x >= 1 and x % 2 == 1 else "must be an odd positive integer")
        depth = _list(s.get("depth", 1), f"{w}.depth", int, pos)
        if len(depth) == 1:
            depth = (depth[0], depth[0])
        if len(depth) != 2 or depth[0] > depth[1]:
            raise HwnasError(f"{w}.depth: must be N or [min, max] with min <= max")
        stride = s["stride"]
        if stride not in (1, 2) or isinstance(stride, bool):
            raise HwnasError(f"{w}.stride: must be 1 or 2, got {stride!r}")
        out = _list(s["out"], f"{w}.out", int, pos)[0]
        if layers:
            ms = [_LAYER_RE.fullmatch(c) for c in layers if c != ID]
            kernel = tuple(sorted({int(m[1]) for m in ms}))
            expand = tuple(sorted({float(m[2]) for m in ms}))
        else:
            kernel = _list(s["kernel"], f"{w}.kernel", int, odd)
            expand = tuple(float(x) for x in _list(s["expand"], f"{w}.expand", (int, float),
                                                   lambda x: None if x >= 1 else "must be >= 1"))
        stages.append(Stage(
            out=out, stride=stride, depth=depth, kernel=kernel, expand=expand, layers=layers,
            width=tuple(float(x) for x in _list(
                s.get("width", 1.0), f"{w}.width", (int, float),
                lambda x: None if 0 < x <= MAX_CHANNELS else f"must be in (0, {MAX_CHANNELS}]")),
            se=tuple(float(x) for x in _list(s.get("se", 0), f"{w}.se", (int, float),
                                              lambda x: None if 0 <= x < 1 else "must be in [0, 1)")),
            act=_list(s.get("act", "relu6"), f"{w}.act", str,
                      lambda x: None if x in ACTS else f"is not one of {', '.join(ACTS)}"),
        ))
    classes = d.get("classes", 1000)
    channels = d.get("channels", 3)
    for k, v in (("classes", classes), ("channels", channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise HwnasError(f"{source}: {k}: must be a positive integer, got {v!r}")
    sp = SearchSpace(name=str(d["name"]), resolutions=res, stem=Stem(**stem), head=head,
                     stages=tuple(stages), classes=classes, channels=channels, source=source)
    for r in res:
        if r < sp.min_resolution():
            raise HwnasError(f"{source}: resolutions: {r} is too small for the total stride "
                             f"{sp.min_resolution()}")
    _check_limits(sp, source)
    return sp


def _check_limits(sp: SearchSpace, source: str) -> None:
    """The limits of :mod:`hwnas.arch` (channels, resolution, depth, classes, memory) on the
    space's largest Arch, from its numbers alone (nothing is built)."""
    for r in sp.resolutions:
        if r > MAX_RESOLUTION:
            raise HwnasError(f"{source}: resolutions: {r} is above the limit of "
                             f"{MAX_RESOLUTION:,}")
    check_values(source, classes=sp.classes, channels=sp.channels)
    for j, st in enumerate(sp.stages):
        w = f"{source}: stages[{j}]"
        check_values(w, out=max(st.outs))
        for k in st.kernel:
            check_values(w, kernel=k)
        for e in st.expand:
            check_values(w, expand=e)
    depth = sum(st.depth[1] for st in sp.stages)
    if depth > MAX_BLOCKS:
        raise HwnasError(f"{source}: stages: up to {depth} blocks, above the limit of "
                         f"{MAX_BLOCKS}")
    largest = {}
    for j, st in enumerate(sp.stages, 1):
        largest[f"s{j}_out"] = max(st.outs)
        largest[f"s{j}_se"] = num_str(max(st.se))
        big = st.largest_layer()
        for layer in range(st.depth[1]):
            largest[f"s{j}_l{layer}"] = big
    sp.arch_from_params(largest, max(sp.resolutions))  # validate: channels, memory


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A space by name (a file in search_spaces/) or by path to a YAML file."""
    p = Path(name_or_path)
    if not p.suffix:
        files = space_files()
        if p.name not in files:
            raise HwnasError(f"unknown space '{name_or_path}' (known: {', '.join(files) or 'none'}; "
                             "or give a path to a YAML file)")
        p = files[p.name]
    text = read_text_file(p, "space file")
    try:
        d = load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"{p}: not valid YAML: {first}") from None
    return space_from_dict(d, str(p))


def load_spaces() -> list[SearchSpace]:
    """Every space of :func:`hwnas.paths.space_files` that loads, by name (a file that does
    not is left out, with a debug log line)."""
    out = []
    for name, f in space_files().items():
        try:
            out.append(load_space(f))
        except HwnasError as e:
            log.debug("space %s left out: %s", name, e)
    return out


__all__ = ["ID", "SKIP", "SearchSpace", "Stage", "load_space", "load_spaces", "space_from_dict"]
