"""Predictor coverage: measure exactly what a device's table lacks, and where its predictor is
weakest.

* :func:`profile_archs` -- ``hwnas profile --device D --archs NET...`` without a space: only
  the pieces of those networks that the table lacks and the networks themselves are
  measured (the same bundle, protocol, sentinels and atomic merge as a space's profile).
* :func:`refine` -- ``hwnas profile ... --refine N``, adaptive sampling in the spirit of
  nn-Meter's: cross-validate the predictor on the device's networks, group the held-out
  errors (piece kind x activation x SE, feature-map size), then measure up to N new
  networks (with their missing pieces) drawn where the error is largest, refit and report
  the held-out error per group before and after, and what the extra measurements cost.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..arch import Arch
from ..context import Device
from ..errors import HwnasError
from ..pieces import Piece, arch_pieces

log = logging.getLogger(__name__)

__all__ = ["ArchSet", "ArchsReport", "RefineReport", "choose", "group_errors", "heldout_errors",
           "piece_group", "profile_archs", "refine", "resolve_archs"]


# ---- measuring what a table lacks --------------------------------------------------------------

class ArchSet:
    """The distinct pieces of a few Archs, shaped like a search space for :func:`hwnas.profiling.profile.
    profile` (it asks a space for its ``name`` and its ``pieces``; no networks are sampled)."""

    def __init__(self, archs: Sequence[Arch], name: str | None = None):
        if not archs:
            raise HwnasError("no arch to measure (--archs FILE...)")
        self.archs = list(archs)
        ids = sorted({a.to_string() for a in self.archs})
        self.name = name or "archs-" + hashlib.sha1("\n".join(ids).encode()).hexdigest()[:10]

    def pieces(self, resolution: int | None = None) -> list[Piece]:
        """Every distinct piece of the Archs (at their own resolutions)."""
        return list({p.key: p for a in self.archs for p in arch_pieces(a)}.values())

    def missing(self, blocks) -> list[Piece]:
        return [p for p in self.pieces() if p.key not in blocks]


@dataclass
class ArchsReport:
    device: str
    archs: int  # distinct networks asked for
    pieces: int  # their distinct pieces
    pieces_had: int  # of those, already in the table
    networks_had: int
    measured_blocks: int = 0
    measured_networks: int = 0
    seconds: float = 0.0
    drift: str | None = None

    def summary(self) -> str:
        todo_p, todo_n = self.pieces - self.pieces_had, self.archs - self.networks_had
        s = (f"{self.device}: {self.archs} network(s), {self.pieces} distinct pieces; the table "
             f"lacked {todo_p} piece(s) and {todo_n} network(s): measured {self.measured_blocks}"
             f" piece(s) and {self.measured_networks} network(s) in {self.seconds:.0f} s")
        if todo_p == todo_n == 0:
            s = (f"{self.device}: every piece ({self.pieces}) and network ({self.archs}) is "
                 "already in the table: nothing measured")
        return s + (f"\n{self.drift}" if self.drift else "")


def profile_archs(device: str | Device, archs: Sequence[Arch], **kw) -> ArchsReport:
    """Measure the pieces of ``archs`` the device's table lacks and the networks themselves
    (``kw``: :func:`hwnas.profiling.profile.profile`'s protocol, statistic, drift, progress, ...)."""
    from .profile import profile

    dev = Device.of(device)
    table = dev.table_or_new(kw.get("statistic"))
    aset = ArchSet(archs)
    pieces = aset.pieces()
    ids = {a.to_string() for a in aset.archs}
    rep = ArchsReport(dev.name, len(ids), len(pieces), len(pieces) - len(aset.missing(table.blocks)),
                      sum(s in table.networks for s in ids))
    pr = profile(dev, aset, aset.archs[0].resolution, networks=0, archs=aset.archs, **kw)
    rep.measured_blocks, rep.measured_networks = pr.measured_blocks, pr.measured_networks
    rep.seconds = pr.seconds
    if pr.drift is not None:
        rep.drift = f"drift: {pr.drift.short()} over {pr.chunks} chunk(s)"
    return rep


def resolve_archs(specs: Sequence[str], dev: Device) -> list[Arch]:
    """ARCH arguments of ``profile --archs``: arch files, baseline names, canonical strings,
    and ``baselines`` / ``baselines@R``: every baseline at the resolutions of the device's
    table (or at R)."""
    from ..baselines import BASELINES, baseline, resolve_arch

    out: list[Arch] = []
    for spec in specs:
        name, _, res = spec.partition("@")
        if name != "baselines":
            out.append(resolve_arch(spec))
            continue
        if res and not res.isdigit():
            raise HwnasError(f"'{spec}': resolution after '@' must be an integer")
        blocks = dev.table.blocks if dev.has_table else {}
        rs = [int(res)] if res else sorted({Piece.from_key(k).h for k in blocks
                                            if k.startswith("stem_")})
        if not rs:
            raise HwnasError(f"'{spec}': device '{dev.name}' has no table yet: say baselines@R")
        out += [baseline(n, r) for r in rs for n in BASELINES]
    return out


# ---- adaptive sampling -------------------------------------------------------------------------

def piece_group(p: Piece) -> str:
    """The group a piece's error is pooled in: its operator (kind, activation, SE) and its
    feature-map size (rounded to a power of two), e.g. ``mb/hswish/se@h12``."""
    from ..predictor import operator_of

    return f"{operator_of(p)}@h{2 ** round(math.log2(max(p.h, 1)))}" if p.kind != "cls" \
        else "cls"


def heldout_errors(blocks: Mapping[str, float], networks: Mapping[str, float],
                   settings: Mapping[str, Any] | None = None, folds: int = 5,
                   seed: int = 0) -> dict[str, float]:
    """Relative held-out error (predicted / measured - 1) of every network the predictor
    can cover, each predicted by a model fitted on the other folds (KFold, shuffled)."""
    from sklearn.model_selection import KFold

    from ..predictor import LatencyPredictor, parse_archs

    archs = parse_archs(networks)
    base = LatencyPredictor.from_settings(settings or {})._fit_blocks(blocks)
    lo, hi = (base.resolutions_[0], base.resolutions_[-1]) if base.resolutions_ else (0, -1)
    ok = [s for s, a in archs.items() if lo <= a.resolution <= hi
          and not any(base.block_model_.uncovered(p) for p in arch_pieces(a))]
    if len(ok) < max(2 * folds, 10):
        raise HwnasError(f"too few whole-network measurements to cross-validate the predictor: "
                         f"{len(ok)} (need at least {max(2 * folds, 10)})")
    out: dict[str, float] = {}
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(ok):
        m = LatencyPredictor.from_settings({**(settings or {}), "min_networks": 2})
        m.fit(blocks, {ok[i]: networks[ok[i]] for i in tr})
        for i, y in zip(te, m.predict([archs[ok[i]] for i in te]), strict=True):
            out[ok[i]] = float(y) / float(networks[ok[i]]) - 1
    return out


def group_errors(errors: Mapping[str, float], pred) -> dict[str, tuple[int, float]]:
    """Per piece group: (networks holding it, their mean |held-out error| weighted by the
    group's share of each network's latency)."""
    from ..arch import parse_string

    acc: dict[str, list[float]] = {}
    for s, e in errors.items():
        rows = pred.explain(parse_string(s))
        total = sum(ms for _, ms, _ in rows) or 1.0
        share: dict[str, float] = {}
        for key, ms, _ in rows:
            g = piece_group(Piece.from_key(key))
            share[g] = share.get(g, 0.0) + ms / total
        for g, w in share.items():
            a = acc.setdefault(g, [0, 0.0, 0.0])
            a[0] += 1
            a[1] += w * abs(e)
            a[2] += w
    return {g: (int(n), we / w if w else 0.0) for g, (n, we, w) in acc.items()}


def _mutate(a: Arch, rng: random.Random, acts: Sequence[str], kernels: Sequence[int],
            se: bool) -> Arch | None:
    """``a`` with 1 to 3 random changes: a block's activation, SE, kernel, expansion or width;
    the stem's or the head's activation or width. None if the result is not a valid Arch."""
    from dataclasses import replace

    from ..arch import make_divisible, validate

    blocks = list(a.blocks)
    stem, head = a.stem, a.head
    for _ in range(rng.randint(1, 3)):
        what = rng.choice(("act", "act", "se", "kernel", "expand", "width", "stem", "head"))
        i = rng.randrange(len(blocks))
        b = blocks[i]
        if what == "act":
            blocks[i] = replace(b, act=rng.choice(acts))
        elif what == "se" and se:
            blocks[i] = replace(b, se=0.0 if b.se else 0.25)
        elif what == "kernel":
            blocks[i] = replace(b, kernel=rng.choice(kernels))
        elif what == "expand":
            blocks[i] = replace(b, expand=rng.choice((1, 3, 4, 6)))
        elif what == "width":  # a run of blocks of one width, wider or narrower
            f = rng.choice((0.75, 1.25, 1.5))
            j = i
            while j < len(blocks) and blocks[j].out == b.out:
                blocks[j] = replace(blocks[j], out=make_divisible(b.out * f, 8))
                j += 1
        elif what == "stem":
            stem = replace(stem, act=rng.choice(acts),
                           out=rng.choice((stem.out, make_divisible(stem.out * 2, 8))))
        elif what == "head" and head is not None:
            head = replace(head, act=rng.choice(acts),
                           out=rng.choice((head.out, 1280, make_divisible(head.out * 1.5, 8))))
    out = replace(a, blocks=tuple(blocks), stem=stem, head=head)
    try:
        validate(out, "refine")
    except HwnasError:
        return None
    return out


def choose(pred, errors: Mapping[str, float], n: int, seed: int = 0,
           candidates_per_pick: int = 40) -> tuple[list[Arch], dict[str, float]]:
    """Up to ``n`` new networks where the held-out error is largest: mutations of the device's
    networks (seeds drawn by their error), scored by the error of the piece groups they hold
    weighted by latency share; a group no network measured (a transferred activation, a new
    size) scores as the worst measured group. Picks spread: a chosen network halves the
    score of its groups. Returns (networks, the group scores used)."""
    from ..arch import parse_string

    if n <= 0:
        return [], {}
    gerr = {g: e for g, (_, e) in group_errors(errors, pred).items()}
    worst = max(gerr.values(), default=0.05) or 0.05
    bm = pred.block_model_
    acts = bm.acts_ or ["relu6"]
    kernels = sorted({k for r in bm.ranges_.values() for k in r["kernels"] if k > 1}) or [3]
    has_se = any(o.endswith("/se") for o in bm.operators_)
    seeds = list(errors)
    weights = [abs(errors[s]) + 0.01 for s in seeds]
    rng = random.Random(seed)
    known = set(pred.networks_) | set(errors)
    score = dict(gerr)
    picked: list[Arch] = []
    for _ in range(n):
        best, best_s = None, -1.0
        for _ in range(candidates_per_pick):
            a = _mutate(parse_string(rng.choices(seeds, weights)[0]), rng, acts, kernels, has_se)
            if a is None or a.to_string() in known:
                continue
            ps = arch_pieces(a)
            try:
                ms = bm.predict(ps)
            except HwnasError:
                continue
            tot = float(ms.sum()) or 1.0
            s = sum(m / tot * score.get(piece_group(p), worst) for p, m in zip(ps, ms, strict=True))
            if s > best_s:
                best, best_s = a, s
        if best is None:
            break
        picked.append(best)
        known.add(best.to_string())
        for g in {piece_group(p) for p in arch_pieces(best)}:
            score[g] = score.get(g, worst) * 0.5
    return picked, gerr


@dataclass
class RefineReport:
    device: str
    asked: int
    networks: int = 0  # networks measured
    pieces: int = 0  # pieces measured with them
    seconds: float = 0.0
    before: dict[str, tuple[int, float]] = field(default_factory=dict)  # group -> (n, error)
    after: dict[str, tuple[int, float]] = field(default_factory=dict)
    overall: dict[str, tuple[float, float]] = field(default_factory=dict)  # before, after

    def summary(self, top: int = 8) -> str:
        lines = [f"{self.device}: refine: measured {self.networks} network(s) and {self.pieces} "
                 f"piece(s) where the held-out error was largest (asked: {self.asked}) in "
                 f"{self.seconds:.0f} s"]
        for k, (b, a) in self.overall.items():
            lines.append(f"  {k:<26} before {b:7.2f}   after {a:7.2f}"
                         + ("  (MAPE %)" if k.startswith("...") else ""))
        lines.append(f"  {'group (weighted |err| %)':<26} {'n':>4} {'before':>7} {'n':>5} "
                     f"{'after':>7}")
        order = sorted(set(self.before) | set(self.after),
                       key=lambda g: -self.before.get(g, (0, 9.9))[1])
        for g in order[:top]:
            nb, eb = self.before.get(g, (0, float("nan")))
            na, ea = self.after.get(g, (0, float("nan")))
            lines.append(f"  {g:<26} {nb:>4} {100 * eb:>7.2f} {na:>5} {100 * ea:>7.2f}")
        return "\n".join(lines)


def _overall(errors: Mapping[str, float]) -> tuple[float, float]:
    e = np.abs(np.array(list(errors.values())))
    return 100 * float(e.mean()), 100 * float(np.mean(e <= 0.10))


def refine(device: str | Device, n: int, *, folds: int = 5, seed: int = 0,
           statistic: str | None = None, **kw) -> RefineReport:
    """Adaptive sampling (see the module docstring): cross-validate, measure up to ``n`` new
    networks (and their pieces the table lacks) where the error is largest, cross-validate
    again. ``kw`` goes to :func:`profile_archs` (protocol, drift, progress)."""
    import time

    if n < 0:
        raise HwnasError(f"--refine must be >= 0, got {n}")
    t0 = time.monotonic()
    dev = Device.of(device)
    settings = dev.predictor_settings()
    stat = statistic or settings.get("statistic") or dev.table.statistic
    settings["statistic"] = stat
    blocks, nets = dev.table.latencies(stat)
    errors = heldout_errors(blocks, nets, settings, folds, seed)
    pred = dev.predictor(stat)
    rep = RefineReport(dev.name, n, before=group_errors(errors, pred))
    picked, _ = choose(pred, errors, n, seed)
    if picked:
        pr = profile_archs(dev, picked, statistic=statistic, **kw)
        rep.networks, rep.pieces = pr.measured_networks, pr.measured_blocks
    after_dev = Device(dev.name)  # the table as it is now
    blocks, nets = after_dev.table.latencies(stat)
    after = heldout_errors(blocks, nets, settings, folds, seed)
    rep.after = group_errors(after, after_dev.predictor(stat))
    # the same networks before and after (the new ones are hard by design), then all of them
    b, a = _overall(errors), _overall({s: e for s, e in after.items() if s in errors})
    al = _overall(after)
    rep.overall = {"held-out MAPE %": (b[0], a[0]), "held-out within +-10 % (%)": (b[1], a[1]),
                   "... with the new networks": (b[0], al[0])}
    rep.seconds = time.monotonic() - t0
    return rep
