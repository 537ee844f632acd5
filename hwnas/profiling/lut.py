"""Latency tables: per-block lookup table (LUT) and whole-network measurements of a device.

Files under ``latency_tables/<device>/`` (one table per device holds every space and
resolution):

* ``blocks.json`` -- ``{"schema": 1, "kind": "hwnas-lut", "device", "statistic",
  "provenance": {...}, "entries": {"<block key>": {"min_ms", "p10_ms", "median_ms",
  "iqr_ms", "n"}}}``
* ``networks.json`` -- the same header, entries keyed by canonical arch string, each
  also with ``"source"`` (``profile`` | ``measure`` | ``retrain``).

Precision (:mod:`hwnas.profiling.precision`): fp32 entries have plain keys (tables from before int8
load unchanged); int8 entries are keyed ``<key>@int8`` and say ``"precision": "int8"``.
A :class:`LatencyTable` object holds one precision's entries in ``blocks``/``networks``
(fp32 for the table itself); :meth:`LatencyTable.view` gives the one of another precision,
sharing the files. The provenance's ``quantization`` says how int8 entries were made.

``statistic`` (``min``, ``p10`` or ``median``) is the one lookups return; all are stored.
The provenance says where and how the numbers were measured (CPU, cores, machine, OS,
kernel, Python, numpy and onnxruntime versions, threads, governor/frequency, date and
the protocol). Measurements whose provenance shows another CPU, machine, onnxruntime
version, thread count or protocol are refused (:meth:`LatencyTable.check_compatible`):
mixing them would make the table describe no machine in particular.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import HwnasError
from ..io import atomic_write_json, loads_json
from ..onboard.bench import COMPARABLE, PROTOCOL_COMPARABLE, STATISTICS, incompatibility
from ..pieces import arch_pieces
from .precision import FP32, PRECISIONS, split, tag

log = logging.getLogger(__name__)

SCHEMA = 1
KIND = "hwnas-lut"
BLOCKS_FILE = "blocks.json"
NETWORKS_FILE = "networks.json"
#: the statistic new tables use (chosen from benchmarks/profile_bench.py: on a shared VM the
#: minimum over interleaved passes repeats best; see the README's benchmark section)
DEFAULT_STATISTIC = "min"
#: the largest latency a table may hold (ms): ~2.8 hours; 1e308 ms is a lie, not a measurement
MAX_MS = 1e7
SOURCES = ("profile", "measure", "retrain", "import")
__all__ = ["Stats", "LatencyTable", "STATISTICS", "DEFAULT_STATISTIC", "table_dir", "COMPARABLE",
           "PROTOCOL_COMPARABLE", "check_quantization", "check_statistic", "incompatibility",
           "lut_sum"]


def check_statistic(statistic: str) -> str:
    """``statistic`` if it is one of :data:`STATISTICS` (defined once, in
    :mod:`hwnas.onboard.bench`: the board computes them), else HwnasError."""
    if statistic not in STATISTICS:
        raise HwnasError(f"unknown statistic '{statistic}' (known: {', '.join(STATISTICS)})")
    return statistic


def lut_sum(blocks: Mapping[str, float], arch) -> float | None:
    """The LUT estimate of ``arch``: the latencies ``blocks`` (block key -> ms) holds for
    its pieces (stem, blocks, head, classifier) added up; None if a piece is missing."""
    total = 0.0
    for p in arch_pieces(arch):
        v = blocks.get(p.key)
        if v is None:
            return None
        total += v
    return float(total)


@dataclass(frozen=True)
class Stats:
    """Summary of one model's timings, in milliseconds; ``n`` samples."""

    min_ms: float
    p10_ms: float
    median_ms: float
    iqr_ms: float
    n: int

    def value(self, statistic: str) -> float:
        return getattr(self, f"{check_statistic(statistic)}_ms")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "entry") -> Stats:
        if not isinstance(d, dict):
            raise HwnasError(f"{where}: must be an object with min_ms, p10_ms, median_ms, iqr_ms, n")
        try:
            vals = {k: float(d[k]) for k in ("min_ms", "p10_ms", "median_ms", "iqr_ms")}
            n = d["n"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError("n")
        except KeyError as e:
            raise HwnasError(f"{where}: missing {e.args[0]}") from None
        except (TypeError, ValueError):
            raise HwnasError(f"{where}: min_ms, p10_ms, median_ms, iqr_ms must be numbers and n "
                             "a positive integer") from None
        if any(not math.isfinite(v) or v < 0 or v > MAX_MS for v in vals.values()):
            raise HwnasError(f"{where}: times must be finite numbers in [0, {MAX_MS:g}] ms")
        if min(vals["min_ms"], vals["p10_ms"], vals["median_ms"]) <= 0:
            # a 0 ms network would make the predictor's 1/y^2 weights infinite
            raise HwnasError(f"{where}: a latency of 0 ms is not a measurement")
        return cls(n=n, **vals)


def table_dir(device: str) -> Path:
    return paths.tables_dir() / device


def _round(s: Stats) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.to_dict().items()}


class LatencyTable:
    """The latency table of one device (blocks and whole networks)."""

    def __init__(self, device: str, statistic: str = DEFAULT_STATISTIC,
                 provenance: dict | None = None, blocks: dict[str, Stats] | None = None,
                 networks: dict[str, Stats] | None = None,
                 network_sources: dict[str, str] | None = None):
        check_statistic(statistic)
        self.device = device
        self.statistic = statistic
        self.provenance: dict = dict(provenance or {})
        self.blocks: dict[str, Stats] = dict(blocks or {})
        self.networks: dict[str, Stats] = dict(networks or {})
        self.network_sources: dict[str, str] = dict(network_sources or {})
        self.precision = FP32
        self._root: LatencyTable | None = None  # a view: the table that owns the files
        self._others: dict[str, tuple[dict, dict, dict]] = {}  # precision -> entries

    # ---- precisions ---------------------------------------------------------------------------
    def has_precision(self, precision: str) -> bool:
        root = self._root or self
        if precision == FP32:
            return bool(root.blocks or root.networks)
        d = root._others.get(precision)
        return bool(d and (d[0] or d[1]))

    def view(self, precision: str, *, create: bool = False) -> LatencyTable:
        """This table's entries at ``precision`` (same device, statistic, provenance; saving
        a view saves the whole table). HwnasError, saying how to measure them, if it has no
        entries of that precision (unless ``create``)."""
        root = self._root or self
        if precision not in PRECISIONS:
            raise HwnasError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
        if precision == FP32:
            return root
        if not create and not root.has_precision(precision):
            raise HwnasError(
                f"latency table of '{root.device}' has no {precision} entries: run hwnas profile "
                f"--device {root.device} --space SPACE --resolution R --precision fp32,{precision}")
        d = root._others.setdefault(precision, ({}, {}, {}))
        v = LatencyTable(root.device, root.statistic, root.provenance)
        v.blocks, v.networks, v.network_sources = d
        v.precision, v._root = precision, root
        return v

    def has(self, key: str, kind: str) -> bool:
        """Whether the table holds ``key`` (a tagged key: see :mod:`hwnas.profiling.precision`), a
        block (``kind`` "block") or a network."""
        base, p = split(key)
        root = self._root or self
        d = (root.blocks, root.networks) if p == FP32 else root._others.get(p, ({}, {}))[:2]
        return base in (d[0] if kind == "block" else d[1])

    # ---- files --------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return table_dir(self.device)

    @staticmethod
    def exists(device: str) -> bool:
        d = table_dir(device)
        return (d / BLOCKS_FILE).is_file() or (d / NETWORKS_FILE).is_file()

    @classmethod
    def load(cls, device: str, where: str | Path | None = None, *,
             any_device: bool = False) -> LatencyTable:
        """The table of ``device`` (from ``where``, a folder holding its files, instead of
        ``latency_tables/<device>/``: e.g. a shipped table not copied yet). A file whose
        ``device`` field names another device (copied in from another folder) is refused
        unless ``any_device`` (``profile --replace``, which only moves it aside)."""
        d = Path(where) if where is not None else table_dir(device)
        if not ((d / BLOCKS_FILE).is_file() or (d / NETWORKS_FILE).is_file()):
            raise HwnasError(f"device '{device}' has no latency table ({d / BLOCKS_FILE}): "
                             f"run hwnas profile --device {device} --space SPACE --resolution R")
        heads, entries = [], []
        for name in (BLOCKS_FILE, NETWORKS_FILE):
            p = d / name
            if not p.is_file():
                heads.append(None)
                entries.append({})
                continue
            try:
                doc = loads_json(p.read_text())
            except (OSError, ValueError) as e:
                raise HwnasError(f"{p}: not a readable JSON latency table ({str(e).splitlines()[0]})") from None
            if not isinstance(doc, dict) or doc.get("kind") != KIND:
                raise HwnasError(f"{p}: not an hwnas latency table (kind must be '{KIND}')")
            if doc.get("schema") != SCHEMA:
                raise HwnasError(f"{p}: schema {doc.get('schema')!r} is not supported (expected {SCHEMA})")
            if not isinstance(doc.get("entries"), dict):
                raise HwnasError(f"{p}: entries must be an object")
            if doc.get("statistic") not in STATISTICS:
                raise HwnasError(f"{p}: statistic must be one of {', '.join(STATISTICS)}, "
                                 f"got {doc.get('statistic')!r}")
            if not isinstance(doc.get("provenance", {}), dict):
                raise HwnasError(f"{p}: provenance must be an object")
            if "device" in doc and doc["device"] != device and not any_device:
                raise HwnasError(
                    f"{p}: says device {doc['device']!r}, but this is the folder of device "
                    f"'{device}' (copied from another device?); move it back, or profile "
                    f"'{device}' afresh with --replace (the old files are kept as *.bak-DATE)")
            heads.append(doc)
            entries.append(doc["entries"])
        head = heads[0] or heads[1]
        prov = dict(head.get("provenance") or {})
        if heads[0] and heads[1]:  # both files: the networks' provenance only adds
            for k, v in (heads[1].get("provenance") or {}).items():
                prov.setdefault(k, v)
        t = cls(device, head["statistic"], prov)
        for k, v in entries[0].items():
            base, p = split(k)
            t.view(p, create=True).blocks[base] = Stats.from_dict(v, f"{d / BLOCKS_FILE}: entries.{k}")
        for k, v in entries[1].items():
            base, p = split(k)
            vw = t.view(p, create=True)
            vw.networks[base] = Stats.from_dict(v, f"{d / NETWORKS_FILE}: entries.{k}")
            vw.network_sources[base] = str(v.get("source", "profile"))
        return t

    @classmethod
    def load_or_new(cls, device: str, statistic: str | None = None) -> LatencyTable:
        if cls.exists(device):
            return cls.load(device)
        return cls(device, statistic or DEFAULT_STATISTIC)

    def _header(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "kind": KIND, "device": self.device, "statistic": self.statistic,
                "provenance": self.provenance}

    def save(self) -> None:
        """Write blocks.json and networks.json atomically (each file is always whole)."""
        if self._root is not None:
            self._root.statistic = self.statistic
            self._root.provenance = self.provenance
            return self._root.save()
        be = {k: _round(self.blocks[k]) for k in sorted(self.blocks)}
        ne = {k: dict(_round(self.networks[k]), source=self.network_sources.get(k, "profile"))
              for k in sorted(self.networks)}
        for p, (b, n, src) in sorted(self._others.items()):
            be.update({tag(k, p): dict(_round(b[k]), precision=p) for k in sorted(b)})
            ne.update({tag(k, p): dict(_round(n[k]), source=src.get(k, "profile"), precision=p)
                       for k in sorted(n)})
        blocks = dict(self._header(), entries=be)
        nets = dict(self._header(), entries=ne)
        try:
            atomic_write_json(self.dir / BLOCKS_FILE, blocks)
            atomic_write_json(self.dir / NETWORKS_FILE, nets)
        except OSError as e:
            raise HwnasError(f"cannot write the latency table in {self.dir}: {e.strerror or e}") from None

    def backup(self) -> Path | None:
        """Move the current files aside (``*.json.bak-<date>``); returns the first backup."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        first = None
        for name in (BLOCKS_FILE, NETWORKS_FILE):
            p = self.dir / name
            if p.is_file():
                b = p.with_name(f"{name}.bak-{stamp}")
                p.replace(b)
                first = first or b
        return first

    # ---- lookups ------------------------------------------------------------------------------
    def block_ms(self, key: str) -> float | None:
        s = self.blocks.get(key)
        return None if s is None else s.value(self.statistic)

    def network_ms(self, arch_string: str) -> float | None:
        s = self.networks.get(arch_string)
        return None if s is None else s.value(self.statistic)

    def latencies(self, statistic: str | None = None
                  ) -> tuple[dict[str, float], dict[str, float]]:
        """(block key -> ms, arch string -> ms) at ``statistic`` (default: the table's): the
        plain data the predictor is fitted on."""
        stat = check_statistic(statistic or self.statistic)
        return ({k: s.value(stat) for k, s in self.blocks.items()},
                {k: s.value(stat) for k, s in self.networks.items()})

    def sentinels(self, n: int = 3) -> list[str]:
        """``n`` whole networks of the table spanning its latency range (at the quantiles
        (i + 0.5) / n of its networks sorted by latency): the ones every measurement run
        times again to see whether the device still runs as fast as when the table was
        measured (:mod:`hwnas.profiling.drift`). Networks measured with generated weights (source
        ``profile``/``measure``) are preferred; [] for a table without networks."""
        nets = sorted((v, k) for k, v in self.latencies()[1].items() if v > 0)
        pref = [x for x in nets if self.network_sources.get(x[1], "profile") in
                ("profile", "measure")]
        pool = pref if len(pref) >= n else nets
        if n < 1 or not pool:
            return []
        picks = sorted({min(len(pool) - 1, int((i + 0.5) * len(pool) / n)) for i in range(n)})
        return [pool[i][1] for i in picks]

    def missing_keys(self, arch) -> list[str]:
        return [p.key for p in arch_pieces(arch) if p.key not in self.blocks]

    def lut_sum(self, arch) -> float:
        """:func:`lut_sum` at the table's statistic, but a missing block is an error here:
        HwnasError naming the first missing key and how many are missing."""
        total = lut_sum(self.latencies()[0], arch)
        if total is None:
            missing = self.missing_keys(arch)
            raise HwnasError(f"latency table of '{self.device}' lacks block {missing[0]} "
                             f"({len(set(missing))} missing for {arch.to_string()[:60]}...; "
                             f"profile that space and resolution first)")
        return total

    def coverage(self, space, resolution: int) -> tuple[int, int]:
        """(blocks of ``space`` at ``resolution`` in the table, distinct blocks there)."""
        keys = [p.key for p in space.pieces(resolution)]
        return sum(k in self.blocks for k in keys), len(keys)

    # ---- updates ------------------------------------------------------------------------------
    def check_compatible(self, provenance: dict, what: str = "these measurements") -> None:
        """HwnasError (one line) if ``provenance`` cannot join this table."""
        root = self._root or self
        if not any(root.has_precision(p) for p in PRECISIONS) or not self.provenance:
            return
        why = incompatibility(self.provenance, provenance)
        if why:
            raise HwnasError(
                f"latency table of '{self.device}' ({self.dir}) was measured with {why}; "
                f"refusing to mix {what} into it (use another device name, or --replace to start "
                "a new table and keep the old one as a backup)")

    def update_provenance(self, provenance: dict) -> None:
        """Take the newest machine description; keep the first date, record the update."""
        first = self.provenance.get("date") or provenance.get("date")
        new = {k: v for k, v in provenance.items() if k not in ("type", "disk_free_mb", "runner_schema")}
        if "quantization" in self.provenance:  # how the int8 entries were made: kept
            new.setdefault("quantization", self.provenance["quantization"])
        self.provenance = dict(new, date=first, updated=provenance.get("date"))

    def add_blocks(self, measurements: dict[str, Stats]) -> None:
        """Add entries; a tagged key (``<key>@int8``) goes to that precision's entries."""
        for k, v in measurements.items():
            base, p = split(k)
            (self if p == self.precision else self.view(p, create=True)).blocks[base] = v

    def add_networks(self, measurements: dict[str, Stats], source: str) -> None:
        if source not in SOURCES:
            raise HwnasError(f"unknown measurement source '{source}' (known: {', '.join(SOURCES)})")
        for k, v in measurements.items():
            base, p = split(k)
            t = self if p == self.precision else self.view(p, create=True)
            t.networks[base] = v
            t.network_sources[base] = source

    # ---- display ------------------------------------------------------------------------------
    def describe(self, spaces: Iterable[tuple[Any, int]] = ()) -> str:
        pv = self.provenance
        lines = [f"latency table of '{self.device}'  ({self.dir})",
                 f"  statistic: {self.statistic}   blocks: {len(self.blocks)}   "
                 f"networks: {len(self.networks)}"]
        srcs: dict[str, int] = {}
        for s in self.network_sources.values():
            srcs[s] = srcs.get(s, 0) + 1
        if srcs:
            lines.append("  networks by source: " + ", ".join(f"{k} {v}" for k, v in sorted(srcs.items())))
        for p, (b, n, _) in sorted((self._root or self)._others.items()):
            q = pv.get("quantization") or {}
            cal = (q.get("networks") or {}).get("source", "?")
            lines.append(f"  {p}: blocks {len(b)}   networks {len(n)}   ({q.get('format', '?')}, "
                         f"weights {q.get('weights', '?')}, activations {q.get('activations', '?')}"
                         f", networks calibrated on {cal} inputs)")
        if pv:
            lines.append(f"  cpu: {pv.get('cpu_model')}  ({pv.get('cores')} cores, {pv.get('machine')})")
            lines.append(f"  os: {pv.get('os')}, kernel {pv.get('kernel')}")
            lines.append(f"  python {pv.get('python')}, numpy {pv.get('numpy')}, onnxruntime "
                         f"{pv.get('onnxruntime')}, threads {pv.get('threads')}")
            lines.append(f"  governor: {pv.get('governor') or 'n/a'}, frequency: "
                         f"{pv.get('freq_mhz') or 'n/a'} MHz")
            lines.append(f"  measured: {pv.get('date')}" + (f", updated {pv['updated']}"
                                                           if pv.get("updated") else ""))
            proto = pv.get("protocol") or {}
            if proto:
                lines.append("  protocol: " + ", ".join(f"{k} {v}" for k, v in proto.items()))
        for space, res in spaces:
            have, total = self.coverage(space, res)
            lines.append(f"  coverage of {space.name} at {res}: {have}/{total} blocks "
                         f"({100.0 * have / max(total, 1):.0f}%)")
        return "\n".join(lines)


def check_quantization(table: LatencyTable | None, provenance: Mapping[str, Any],
                       ids: Iterable[str], what: str) -> None:
    """For ``hwnas lut import``: HwnasError (one line) if results ``ids`` with ``provenance``
    (a results file's: the runner copies its bundle's ``quantization`` record into it) hold
    int8 entries without a record of how they were quantized, or quantized with other
    settings or calibration than ``table``'s int8 entries (None: no table yet, or
    ``--replace``) -- what ``hwnas profile`` refuses too (hwnas.profiling.quantize.check_table_calibration)."""
    int8 = [i for i in ids if split(i)[1] != FP32]
    if not int8:
        return
    new = provenance.get("quantization")
    if not isinstance(new, dict):
        raise HwnasError(f"{what}: {len(int8)} int8 results without a record of how they were "
                         "quantized (a bundle from an older hwnas): write the bundle again with "
                         "hwnas profile ... --precision fp32,int8 --bundle-only DIR and measure it")
    old = table.provenance.get("quantization") if table is not None else None
    if table is None or not isinstance(old, dict) or not any(
            table.has_precision(p) for p in PRECISIONS if p != FP32):
        return
    from .quantize import quantization_differs

    key = quantization_differs(old, new)
    if key:
        raise HwnasError(f"the int8 entries of '{table.device}' were made with {key} "
                         f"{old.get(key)}, the int8 results of {what} with "
                         f"{new.get(key)}; import them into another device, or --replace "
                         "to start a new table")
