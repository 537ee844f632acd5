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
from collections.abc import Sequence
from dataclasses import dataclass

from .arch import Arch
from .context import Device
from .errors import HwnasError
from .pieces import Piece, arch_pieces

log = logging.getLogger(__name__)


# ---- measuring what a table lacks --------------------------------------------------------------

class ArchSet:
    """The distinct pieces of a few Archs, shaped like a search space for :func:`hwnas.profile.
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
    (``kw``: :func:`hwnas.profile.profile`'s protocol, statistic, drift, progress, ...)."""
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
    from .baselines import BASELINES, baseline, resolve_arch

    out: list[Arch] = []
    for spec in specs:
        name, _, res = spec.partition("@")
        if name != "baselines":
            out.append(resolve_arch(spec))
            continue
        if res and not res.isdigit():
            raise HwnasError(f"'{spec}': resolution after '@' must be an integer")
        rs = [int(res)] if res else sorted({Piece.from_key(k).h for k in dev.table.blocks
                                            if k.startswith("stem_")})
        if not rs:
            raise HwnasError(f"'{spec}': device '{dev.name}' has no table yet: say baselines@R")
        out += [baseline(n, r) for r in rs for n in BASELINES]
    return out


def cmd_profile_archs(args, dev: Device, protocol, drift) -> None:
    """``hwnas profile --device D --archs NET...`` (no --space): the CLI's side."""
    archs = resolve_archs(args.archs, dev)
    if args.space is not None or args.resolution is not None or not archs:
        raise HwnasError("hwnas profile needs --space SPACE and --resolution R, or --archs "
                         "FILE... alone (which measures only what the table lacks of them)")
    if args.bundle_only:
        raise HwnasError("--bundle-only needs --space and --resolution")
    rep = profile_archs(dev, archs, protocol=protocol, statistic=args.statistic,
                        replace=args.replace, drift=drift)
    print(rep.summary())
