"""Time a few whole networks or ONNX files on a device with the profiling protocol.

``hwnas measure`` and the retrain step call :func:`measure` (or its older shapes
:func:`measure_archs` / :func:`measure_onnx`, also importable from :mod:`hwnas.profiling.profile`).
The models are timed interleaved in one bundle (``runs/profile/<device>/measure-<id>/``,
deleted when done; a killed call resumes when called again with the same models), together
with the sentinels of the device's table (:mod:`hwnas.profiling.drift`): the result carries their
drift, and one warning line says so when it is beyond the threshold.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arch import Arch
from ..context import Device
from ..errors import HwnasError
from ..onboard.bench import Protocol
from .bundle import RESULTS, build_bundle
from .drift import Drift, DriftSettings
from .lut import Stats

log = logging.getLogger(__name__)

__all__ = ["Measured", "describe_stats", "measure", "measure_archs", "measure_onnx",
           "measurement_protocol", "protocol_matches_table"]


@dataclass
class Measured:
    """What a measurement run gives: Stats per arch string (archs) or path (ONNX files),
    the device's drift during the run (None: its table has no networks) and provenance."""

    stats: dict[str, Stats]
    drift: Drift | None = None
    provenance: dict = field(default_factory=dict)


def _table(dev: Device):
    try:
        return dev.table if dev.has_table else None
    except HwnasError as e:  # an unreadable table: measure without sentinels
        log.warning("device '%s': no sentinels (%s)", dev.name, e)
        return None


def _run(dev: Device, entries: list, protocol: Protocol | None, quick: bool, progress: bool,
         drift: DriftSettings, what: str) -> Measured:
    from ..onboard.runner import read_records
    from .drift import chunk_drifts, record, write_layout
    from .profile import (
        make_protocol,
        read_results,
        run_bundle,
        sentinel_entries,
        short_hash,
        work_root,
    )

    device, cfg = dev.name, dev.config
    protocol = protocol or make_protocol(cfg.threads, quick=quick)
    ident = short_hash(json.dumps([sorted(e.id for e in entries), protocol.to_dict()]), 12)
    bundle = work_root(device) / f"measure-{ident}"
    table = _table(dev)
    sents = sentinel_entries(table.sentinels(drift.sentinels)) if table is not None else []
    done = read_results(bundle).stats if (bundle / RESULTS).is_file() else {}
    if not all(e.id in done for e in entries):
        build_bundle(bundle, [*entries, *sents], protocol, progress, {"device": device})
        write_layout(bundle, protocol)
        run_bundle(cfg, bundle, progress, desc=f"{device} {what}")
    rs = read_results(bundle)
    missing = [e.id for e in entries if e.id not in rs.stats]
    if missing:
        raise HwnasError(f"device '{device}': no result for {missing[0][:80]} ({len(missing)} missing)")
    d = None
    if table is not None:
        chunks = chunk_drifts(read_records(str(bundle / RESULTS)), table, drift.threshold)
        d = Drift.pooled([c.drift for c in chunks])
    shutil.rmtree(bundle, ignore_errors=True)
    if d is not None:
        record(dev.dir, device, d, what)
        if d.beyond:
            log.warning("%s", d.warning(device, f"this {what}"))
    return Measured({e.id: rs.stats[e.id] for e in entries}, d, rs.provenance)


def measure(device: str | Device, archs: Sequence[Arch] = (), files: Sequence[str | Path] = (),
            *, onnx: dict[str, str | Path] | None = None, protocol: Protocol | None = None,
            quick: bool = False, source: str | None = None, replace: bool = False,
            progress: bool = True, drift: DriftSettings | None = None,
            what: str = "measurement") -> Measured:
    """Time whole networks (``archs``; ``onnx`` maps an arch string to an ONNX file to time
    instead of a fresh export, e.g. trained weights) and ONNX ``files`` on ``device`` with
    the profiling protocol, interleaved, with the table's sentinels. With ``source``
    (``measure`` or ``retrain``) the archs' results are also added to the device's
    networks.json. Stats are keyed by canonical arch string and by ``str(path)``."""
    from .profile import ResultSet, make_protocol, merge_results, network_entry, onnx_entry

    drift = (drift or DriftSettings()).validate()
    onnx = onnx or {}
    seen, entries, keys = set(), [], {}
    for a in archs:
        s = a.to_string()
        if s not in seen:
            seen.add(s)
            entries.append(network_entry(a, onnx.get(s)))
            keys[entries[-1].id] = s
    nets = len(entries)
    for f in files:
        e = onnx_entry(f)
        if e.id not in keys:
            entries.append(e)
        keys[e.id] = str(f)
    if not entries:
        return Measured({})
    dev = Device.of(device)
    if source is not None and not replace and nets:  # refuse another protocol before measuring
        table = dev.table_or_new()
        p = protocol or make_protocol(dev.config.threads, quick=quick)
        table.check_compatible({**table.provenance, "threads": p.threads, "protocol": p.to_dict()},
                               "these measurements")
    m = _run(dev, entries, protocol, quick, progress, drift, what)
    stats = {keys[i]: v for i, v in m.stats.items()}
    for f in files:  # the same file given twice: both keys
        stats[str(f)] = m.stats[onnx_entry(f).id]
    if source is not None and nets:
        net_stats = {keys[e.id]: m.stats[e.id] for e in entries[:nets]}
        rs = ResultSet(Path(f"measure on {dev.name}"), m.provenance, net_stats,
                       {k: "network" for k in net_stats})
        merge_results(dev, rs, replace=replace, source=source)
    return Measured(stats, m.drift, m.provenance)


def measure_archs(device: str | Device, archs: Sequence[Arch], *,
                  onnx: dict[str, str | Path] | None = None, protocol: Protocol | None = None,
                  quick: bool = False, source: str | None = None, replace: bool = False,
                  progress: bool = True) -> dict[str, Stats]:
    """:func:`measure` of whole networks: Stats per canonical arch string."""
    return measure(device, archs, onnx=onnx, protocol=protocol, quick=quick, source=source,
                   replace=replace, progress=progress).stats


def measure_onnx(device: str | Device, files: Sequence[str | Path], *,
                 protocol: Protocol | None = None, quick: bool = False,
                 progress: bool = True) -> dict[str, Stats]:
    """:func:`measure` of ONNX files: Stats per given path."""
    return measure(device, files=files, protocol=protocol, quick=quick, progress=progress).stats


def measurement_protocol(device: str | Device, quick: bool = False, **overrides):
    """The protocol to measure with: the one the device's latency table was measured with
    (so the measurement compares with the table, and ``--feedback`` can join it) at the
    device's thread count -- else the profiler's default, or its quick preset with ``quick``
    -- with ``overrides`` (``warmup``, ``min_repeats``, ``min_time_s``, ``passes``, ...)."""
    from .profile import make_protocol

    dev = Device.of(device)
    cfg = dev.config
    base: dict[str, Any] = {}
    if not quick and dev.has_table:
        base = dict(dev.table.provenance.get("protocol") or {})
        base.pop("threads", None)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return make_protocol(cfg.threads, quick=quick, **base)


def protocol_matches_table(dev: Device, protocol) -> bool | None:
    """Whether ``protocol`` is the one the device's table was measured with (None: no table);
    a warning when it is not: the predictor learnt the table's numbers."""
    from .lut import incompatibility

    if not dev.has_table:
        return None
    prov = dev.table.provenance
    if not prov.get("protocol"):
        return None
    why = incompatibility(prov, {**prov, "threads": protocol.threads,
                                 "protocol": protocol.to_dict()})
    if why:
        log.warning("measuring with another protocol than the table of '%s' (%s): predicted "
                    "and measured latencies (error_pct) compare different protocols", dev.name, why)
    return why is None


def describe_stats(s: Stats) -> str:
    return (f"median {s.median_ms:.3f} ms  IQR {s.iqr_ms:.3f} ms  n {s.n}  "
            f"(min {s.min_ms:.3f}, p10 {s.p10_ms:.3f})")
