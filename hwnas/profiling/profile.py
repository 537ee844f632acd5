"""Profile a device: space -> bundle -> results on the device -> latency table.

``profile()`` enumerates a space's distinct pieces at a resolution (stem, MBConv blocks,
head, classifier), adds sampled whole networks (and given arch files) for the predictor,
leaves out what the device's table already holds, exports each to ONNX in a bundle
(``runs/profile/<device>/<space>-r<R>/``), runs the bundle on the device and merges the
results into ``latency_tables/<device>/`` (see :mod:`hwnas.profiling.lut`).

Who writes the results file: the host's copy, ``<bundle>/results.jsonl``, is the source of
truth. On a *local* device the runner appends to it directly (one process owns the file;
the host only reads its progress lines). On an *SSH* device the bundle, with its current
results file, is copied to the board, where the runner resumes from it; the host appends
every ``RESULT``/``RECORD`` line the runner prints to its own copy as it arrives (under
the same lock the runner uses), so killing the host loses at most the burst in flight.
Running the same command again resumes: exported ONNX files are kept, finished entries
are skipped, entries are merged into the table at the end of every run (also a failed
one), and the bundle's models are deleted once everything is in the table.

Sentinels (:mod:`hwnas.profiling.drift`): every chunk also times a few networks of the device's
table; after the run each chunk's drift (measured / table) is settled in the results file,
and a chunk beyond the threshold is not merged but measured again later in the run (at most
:data:`~hwnas.profiling.drift.MAX_RETRIES` times) unless ``accept``. A table without networks has none.

``measure_archs()`` / ``measure_onnx()`` (:mod:`hwnas.profiling.measure`, importable from here) time
a few whole networks with the same protocol (used by ``hwnas measure`` and the retrain step).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..arch import Arch
from ..context import Device
from ..errors import HwnasError
from ..onboard.bench import Protocol, incompatibility
from ..onboard.runner import Lock, ResultsWriter, RunnerError, read_records
from ..pieces import Piece
from .bundle import DATA_SUFFIX, MANIFEST, RESULTS, build_bundle, compose_network, write_archive
from .drift import Drift, DriftSettings
from .lut import LatencyTable, Stats, check_quantization
from .precision import FP32, INT8, split
from .quantize import check_table_calibration, precision_entries, with_device_format

log = logging.getLogger(__name__)

DEFAULT_NETWORKS = 150  # with mobilenetv2's 503 blocks: 653 measurements (target <= 1000)

__all__ = ["Entry", "Plan", "ResultSet", "ProfileReport", "DEFAULT_NETWORKS", "plan", "build_bundle",
           "run_bundle", "read_results", "merge_results", "profile", "import_results",
           "make_protocol", "work_root", "compose_network", "write_archive", "conditions_warning",
           "DriftSettings", "sentinel_entries"]
# measure_archs, measure_onnx, measure, Measured, describe_stats: hwnas.profiling.measure (see the end)


# ---- entries -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One model of a bundle: a block (piece) or a whole network."""

    id: str
    kind: str  # "block" | "network" | "onnx" | "sentinel" (a table network timed again)
    file: str  # relative to the bundle: models/<name>.onnx
    input_shape: tuple[int, ...] | None
    piece: Piece | None = field(default=None, compare=False)
    arch: Arch | None = field(default=None, compare=False)
    source: Path | None = field(default=None, compare=False)  # an ONNX file to copy
    precision: str = FP32  # int8: quantized on the host (hwnas.profiling.quantize.precision_entries)
    calibration: object = field(default=None, compare=False)  # int8: a quantize.Calibration

    def manifest(self) -> dict:
        d = {"id": self.id, "kind": self.kind, "file": self.file}
        if self.input_shape:
            d["input_shape"] = list(self.input_shape)
        return d


def short_hash(s: str, n: int = 16) -> str:
    return hashlib.sha1(s.encode()).hexdigest()[:n]


def block_entry(piece: Piece) -> Entry:
    return Entry(piece.key, "block", f"models/{piece.key}.onnx", (1, piece.cin, piece.h, piece.h),
                 piece=piece)


def network_entry(arch: Arch, onnx: str | Path | None = None) -> Entry:
    s = arch.to_string()
    return Entry(s, "network", f"models/net-{short_hash(s)}.onnx",
                 (1, arch.channels, arch.resolution, arch.resolution), arch=arch,
                 source=Path(onnx) if onnx else None)


def sentinel_entries(archs: Iterable[str]) -> list[Entry]:
    """The sentinel networks of a bundle (see :mod:`hwnas.profiling.drift`): one ONNX file each,
    laid out in every chunk by :func:`hwnas.profiling.drift.write_layout`."""
    from .drift import KIND, sentinel_id

    out = []
    for s in archs:
        a = Arch.from_string(s)
        out.append(Entry(sentinel_id(0, 0, s), KIND, f"models/sentinel-{short_hash(s)}.onnx",
                         (1, a.channels, a.resolution, a.resolution), arch=a))
    return out


def onnx_entry(path: str | Path) -> Entry:
    from ..io import MAX_ONNX_BYTES, input_file

    p = input_file(path, "an ONNX file", MAX_ONNX_BYTES)  # before anything is copied
    ident = f"onnx:{p.resolve()}"
    return Entry(ident, "onnx", f"models/onnx-{short_hash(ident)}.onnx", None, source=p)


def sample_networks(space, resolution: int, n: int, seed: int = 0) -> list[Arch]:
    """``n`` distinct random Archs of ``space`` at ``resolution`` (fewer if the space is tiny)."""
    rng = random.Random(seed)
    out: dict[str, Arch] = {}
    attempts = 0
    while len(out) < n and attempts < 20 * n + 100:
        a = space.arch_from_params(space.sample_params(rng), resolution)
        out.setdefault(a.to_string(), a)
        attempts += 1
    return list(out.values())


@dataclass
class Plan:
    entries: list[Entry]  # what the table lacks, in a seeded shuffled order
    blocks: int  # distinct blocks of the space at the resolution
    networks: int  # distinct networks asked for
    have: int  # of those, already in the table


def plan(space, resolution: int, networks: int = DEFAULT_NETWORKS, archs: Sequence[Arch] = (),
         seed: int = 0, table: LatencyTable | None = None, precisions: Sequence[str] = (FP32,),
         calibration=None) -> Plan:
    """The blocks and networks to measure: every distinct piece of ``space`` at ``resolution``,
    ``networks`` sampled Archs and ``archs``, minus what ``table`` holds. The order is
    shuffled (seeded) so that blocks and networks share the run's drift."""
    if networks < 0:
        raise HwnasError(f"--networks must be >= 0, got {networks}")
    blocks = [block_entry(p) for p in space.pieces(resolution)]
    nets: dict[str, Entry] = {}
    for a in [*sample_networks(space, resolution, networks, seed), *archs]:
        e = network_entry(a)
        nets.setdefault(e.id, e)
    todo, have = [], 0
    for e in precision_entries([*blocks, *nets.values()], precisions, calibration):
        if table is not None and table.has(e.id, e.kind):
            have += 1
        else:
            todo.append(e)
    random.Random(seed).shuffle(todo)
    return Plan(todo, len(blocks), len(nets), have)


# ---- protocol ------------------------------------------------------------------------------------

def make_protocol(threads: int = 1, quick: bool = False, **overrides) -> Protocol:
    """The measurement protocol: defaults (or the ``quick`` preset) with ``overrides``
    (``warmup``, ``min_repeats``, ``min_time_s``, ``passes``, ...; None = keep)."""
    p = Protocol.quick(threads=threads) if quick else Protocol(threads=threads)
    d = p.to_dict()
    d.update({k: v for k, v in overrides.items() if v is not None})
    p = Protocol.from_dict(d)
    try:
        p.validate()
    except ValueError as e:
        raise HwnasError(f"measurement protocol: {e}") from None
    return p


# ---- bundles -------------------------------------------------------------------------------------

def work_root(device: str) -> Path:
    return paths.runs_dir() / "profile" / device


# ---- running -------------------------------------------------------------------------------------

class _Lines:
    """Handles the runner's stdout: progress bar, and (remote devices) the host's copy."""

    def __init__(self, total: int, writer: ResultsWriter | None, progress: bool, desc: str):
        from tqdm import tqdm

        self.writer = writer
        self.bar = tqdm(total=total, desc=desc, unit="model", disable=None if progress else True,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}]")
        self.started = False
        self.results = 0

    def __call__(self, line: str) -> None:
        tag, _, rest = line.partition(" ")
        if tag in ("RESULT", "RECORD"):
            if tag == "RESULT":
                self.results += 1
            if self.writer is not None:
                try:
                    rec = json.loads(rest)
                except ValueError:
                    log.warning("unreadable line from the runner: %s", line[:80])
                    return
                try:
                    self.writer.append(rec, sync=tag == "RESULT")
                except RunnerError as e:
                    raise HwnasError(str(e)) from None
        elif tag == "PROGRESS":
            parts = rest.split()
            try:
                done = float(parts[0])
            except (IndexError, ValueError):
                return
            if not self.started:  # resumed: what was done before does not count for the rate
                self.bar.reset(total=self.bar.total)
                self.bar.initial = done
                self.started = True
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)  # respects tqdm's mininterval
        elif line.strip():
            log.debug("device: %s", line)

    def close(self) -> None:
        self.bar.close()


def run_bundle(cfg, bundle: Path, progress: bool = True, desc: str = "measure") -> int:
    """Run ``bundle`` on the device of ``cfg`` (a DeviceConfig), resuming from its results
    file; returns how many results arrived in this run. HwnasError on failure."""
    from .hosts import connect

    conn = connect(cfg)
    results = bundle / RESULTS
    manifest = json.loads((bundle / MANIFEST).read_text())
    if cfg.is_local:
        _warn_if_loaded(cfg.name)
    before = len(read_records(str(results))) if results.is_file() else 0
    lock = writer = None
    if not cfg.is_local:  # the host keeps its own copy of what the board appends
        try:
            lock = Lock(str(results), timeout=5)
        except RunnerError as e:
            raise HwnasError(str(e)) from None
        read_records(str(results), repair=True)
        writer = ResultsWriter(str(results))
    lines = _Lines(len(manifest["entries"]), writer, progress, desc)
    try:
        conn.run_bundle(bundle, ["--threads", str(cfg.threads), "--exit-with-parent"], lines)
    finally:
        lines.close()
        if writer is not None:
            writer.close()
        if lock is not None:
            lock.release()
        if results.is_file():  # the chunks of this run: throttled, or a lower clock?
            w = conditions_warning(read_records(str(results))[before:], cfg.name, results)
            if w:
                log.warning("%s", w)
    return lines.results


def _warn_if_loaded(device: str) -> None:
    """One warning line if this machine's 1-minute load average is above its core count."""
    from ..onboard.conditions import load_issue, read_load

    load1 = read_load()
    if load1 is None:
        try:
            load1 = os.getloadavg()[0]
        except (AttributeError, OSError):
            return
    w = load_issue(load1, os.cpu_count())
    if w:
        log.warning("device '%s' (this machine): %s", device, w)


def conditions_warning(records: Sequence[dict], device: str, where: Path | str = "") -> str | None:
    """One line naming what made chunks of ``records`` (a results file's records) suspect:
    a throttle flag (``vcgencmd get_throttled``) or a CPU frequency that fell by more than
    5 % during the chunk; None if nothing did."""
    from ..onboard.conditions import chunk_issues

    starts, ends = {}, {}
    for r in records:
        if r.get("type") == "chunk" and isinstance(r.get("conditions"), dict):
            (starts if r.get("at") == "start" else ends)[r.get("chunk")] = r
    bad = {}
    for k, st in starts.items():
        end = ends.get(k)
        issues = (end.get("issues") if end is not None and isinstance(end.get("issues"), list)
                  else chunk_issues(st["conditions"], (end or st)["conditions"]))
        if issues:
            bad[k] = issues
    if not bad:
        return None
    kinds = list(dict.fromkeys(i for v in bad.values() for i in v))
    more = f" (and {len(kinds) - 3} more)" if len(kinds) > 3 else ""
    return (f"device '{device}': {len(bad)} of {len(starts)} chunk(s) ran throttled or at a "
            f"lower clock: {'; '.join(kinds[:3])}{more}. Their timings are slower than the "
            "board's normal speed: check cooling, the power supply and the power mode"
            + (f" (chunk records in {where})" if where else ""))


# ---- results -------------------------------------------------------------------------------------

@dataclass
class ResultSet:
    """What a results file holds: the latest provenance and one Stats per finished entry."""

    path: Path
    provenance: dict
    stats: dict[str, Stats]
    kinds: dict[str, str]
    inconsistent: str | None = None  # why two provenance records of the file disagree
    sentinels: dict[str, Stats] = field(default_factory=dict)  # not settled yet (by id)


def read_results(path: str | Path) -> ResultSet:
    """Read a bundle's results file (or a bundle directory holding one); a half-written last
    line is ignored. HwnasError if it is not a results file."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS
    if not p.is_file():
        raise HwnasError(f"{p}: no such results file (copy back the bundle's results.jsonl)")
    try:
        records = read_records(str(p))
    except OSError as e:
        raise HwnasError(f"{p}: cannot read: {e.strerror or e}") from None
    provs = [r for r in records if r["type"] == "provenance"]
    results = [r for r in records if r["type"] == "result"]
    if not provs:
        if not results:
            raise HwnasError(f"{p}: not an hwnas results file (no provenance record)")
        raise HwnasError(f"{p}: results without a provenance record (where were they measured?)")
    inconsistent = None
    for other in provs[1:]:
        inconsistent = inconsistent or incompatibility(provs[0], other)
    stats, kinds, sents = {}, {}, {}
    for r in results:
        try:
            st = Stats.from_dict(r, f"{p}: result {r.get('id')}")
            if r.get("kind") == "sentinel":  # a table network timed again: never merged
                sents[r["id"]] = st
                continue
            stats[r["id"]] = st
            kinds[r["id"]] = str(r.get("kind", ""))
        except (HwnasError, KeyError, TypeError) as e:
            log.warning("%s: skipping a malformed result: %s", p, e)
    prov = {k: v for k, v in provs[-1].items() if k != "type"}
    prov["date"] = provs[0].get("date", prov.get("date"))
    return ResultSet(p, prov, stats, kinds, inconsistent, sents)


def _valid_network(s: str) -> bool:
    try:
        return Arch.from_string(split(s)[0]).to_string() == split(s)[0]
    except HwnasError:
        return False


def _valid_block(s: str) -> bool:
    try:
        return Piece.from_key(split(s)[0]).key == split(s)[0]
    except HwnasError:
        return False


def merge_results(device: str | Device, rs: ResultSet, *, replace: bool = False,
                  statistic: str | None = None, source: str = "profile",
                  only: Iterable[str] | None = None) -> tuple[int, int]:
    """Add the blocks and networks of ``rs`` to the device's table (refusing another machine,
    onnxruntime version, thread count or protocol unless ``replace``, which starts a new
    table and keeps the old files as ``*.bak-<date>``). Returns (blocks, networks) added."""
    if rs.inconsistent:
        raise HwnasError(f"{rs.path}: mixes measurements with different {rs.inconsistent}; "
                         "import them into different devices")
    device = Device.of(device).name
    # read afresh, not from a Device: what was measured meanwhile (another run) must be kept
    if replace and LatencyTable.exists(device):  # the old files are only moved aside
        table = LatencyTable(device, statistic or LatencyTable.load(device, any_device=True).statistic)
    else:
        table = LatencyTable.load_or_new(device, statistic)
        table.check_compatible(rs.provenance, f"the results of {rs.path}")
    keep = set(only) if only is not None else None
    blocks, nets, skipped = {}, {}, []
    for k, s in rs.stats.items():
        if keep is not None and k not in keep:
            continue
        kind = rs.kinds.get(k)
        if kind == "block" and _valid_block(k):
            blocks[k] = s
        elif kind == "network" and _valid_network(k):
            nets[k] = s
        else:
            skipped.append(k)
    if skipped:
        log.info("%d result(s) are neither blocks nor networks of an Arch (e.g. %s); not added",
                 len(skipped), skipped[0][:60])
    if not blocks and not nets:
        return 0, 0
    if replace and LatencyTable.exists(device):
        b = table.backup()
        log.warning("replaced the latency table of '%s'; the old one is kept as %s.*", device,
                    b.name.split(".json")[0] + ".json" if b else "?")
    if statistic:
        table.statistic = statistic
    table.update_provenance(rs.provenance)
    table.add_blocks(blocks)
    table.add_networks(nets, source)
    table.save()
    return len(blocks), len(nets)


# ---- profile ---------------------------------------------------------------------------------------

@dataclass
class ProfileReport:
    device: str
    space: str
    resolution: int
    blocks_total: int
    networks_total: int
    already: int
    measured_blocks: int = 0
    measured_networks: int = 0
    bundle: Path | None = None
    seconds: float = 0.0
    archive: Path | None = None
    drift: Drift | None = None  # every sentinel of the chunks settled in this run
    chunks: int = 0  # chunks with sentinels settled in this run
    remeasured: int = 0  # chunks refused for their drift and measured again
    unmerged: int = 0  # entries whose chunks drifted too often: left for the next run
    accepted: int = 0  # chunks beyond the threshold merged anyway (--accept-drift)
    int8_format: str | None = None  # the int8 entries' format (hwnas.onboard.isa), None: fp32

    def summary(self) -> str:
        s = (f"{self.device}: {self.space} at {self.resolution}: {self.blocks_total} distinct "
             f"blocks + {self.networks_total} networks; {self.already} already in the table; "
             f"added {self.measured_blocks} blocks and {self.measured_networks} networks "
             f"in {self.seconds:.0f} s -> {paths.tables_dir() / self.device}")
        if self.drift is not None:
            s += (f"\ndrift: {self.drift.short()} over {self.chunks} chunk(s); "
                  f"{self.remeasured} chunk(s) re-measured for drift beyond "
                  f"+-{100 * self.drift.threshold:g} %")
            if self.accepted:
                s += f", {self.accepted} merged anyway (--accept-drift)"
            if self.unmerged:
                s += f"; {self.unmerged} entries left out of the table (measured next run)"
        return s


def _precheck(cfg, protocol: Protocol, table: LatencyTable, bundle: Path, replace: bool,
              info: dict | None = None) -> dict:
    """Reach the device (unless its check ``info`` is given: it was reached moments ago),
    compare it with its table and the bundle's results; the INFO dict."""
    from .hosts import connect

    info = dict(info) if info is not None else connect(cfg).check()
    info["threads"] = protocol.threads
    info["protocol"] = protocol.to_dict()
    if not replace:
        table.check_compatible(info, f"measurements of device '{cfg.name}' as it is now")
    res = bundle / RESULTS
    if res.is_file():
        provs = [r for r in read_records(str(res)) if r["type"] == "provenance"]
        why = next((w for w in (incompatibility(p, info) for p in provs) if w), None)
        if why:
            stale = res.with_name(f"{RESULTS}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
            res.replace(stale)
            log.warning("%s was measured with %s: moved aside to %s", res, why, stale.name)
    return info


def profile(device: str | Device, space, resolution: int, *, networks: int = DEFAULT_NETWORKS,
            archs: Sequence[Arch] = (), seed: int = 0, protocol: Protocol | None = None,
            statistic: str | None = None, replace: bool = False,
            bundle_only: str | Path | None = None, progress: bool = True,
            drift: DriftSettings | None = None, precisions: Sequence[str] = (FP32,),
            calibration=None, int8_format: str = "auto") -> ProfileReport:
    """Profile ``space`` at ``resolution`` on ``device`` (see the module docstring), with
    the table's sentinels in every chunk (``drift``: :class:`hwnas.profiling.drift.DriftSettings`).
    int8 entries are quantized in ``int8_format`` (auto: the device's, as its check reports
    its CPU; a bundle written for running by hand: as its table records, else the format
    exact on every CPU)."""
    from .drift import report_drift, settle_bundle, write_layout

    t0 = time.monotonic()
    drift = (drift or DriftSettings()).validate()
    dev = Device.of(device)
    device = dev.name
    # measuring needs a registered device; writing a bundle for running by hand does not
    cfg = dev.config_or_default if bundle_only is not None else dev.config
    protocol = protocol or make_protocol(cfg.threads)
    if replace and LatencyTable.exists(device):  # its files are only moved aside (merge_results)
        table = LatencyTable.load(device, any_device=True)
    else:
        table = dev.table_or_new(statistic)
    checked = None  # the device's check INFO, when int8's format needs it (reused by _precheck)
    if INT8 in precisions:
        if int8_format == "auto" and bundle_only is None:
            from .hosts import connect

            checked = connect(cfg).check()
        calibration = with_device_format(calibration, int8_format, cfg.name, table, checked,
                                         local=cfg.is_local and bundle_only is None)
    quant = check_table_calibration(table, precisions, calibration, replace)
    pl = plan(space, resolution, networks, archs, seed, None if replace else table, precisions,
              calibration)
    entries = pl.entries
    # a first profile (no networks yet) or a new table (--replace) has no sentinels
    sents = [] if replace else sentinel_entries(table.sentinels(drift.sentinels))
    rep = ProfileReport(device, space.name, resolution, pl.blocks, pl.networks, pl.have)
    rep.int8_format = calibration.format if INT8 in precisions else None
    info = {"space": space.name, "resolution": resolution, "device": device}
    if bundle_only is not None:
        out = Path(bundle_only)
        if out.name.endswith((".tar.gz", ".tgz")):
            with_dir = out.with_name("." + out.name + ".d")
            build_bundle(with_dir, [*entries, *sents], protocol, progress, info)
            write_layout(with_dir, protocol)
            rep.archive = write_archive(with_dir, out)
            shutil.rmtree(with_dir, ignore_errors=True)
            rep.bundle = out
        else:
            rep.bundle = build_bundle(out, [*entries, *sents], protocol, progress, info)
            write_layout(out, protocol)
        rep.seconds = time.monotonic() - t0
        return rep
    if not entries:
        if statistic and LatencyTable.exists(device) and table.statistic != statistic:
            table.statistic = statistic  # a choice among the stored statistics: no re-measuring
            table.save()
        rep.seconds = time.monotonic() - t0
        return rep
    bundle = work_root(device) / f"{space.name}-r{resolution}"
    _precheck(cfg, protocol, table, bundle, replace, checked)
    _drop_stale_results(bundle, entries)
    build_bundle(bundle, [*entries, *sents], protocol, progress, info)
    rep.bundle = bundle
    err: HwnasError | None = None
    retries: dict[str, int] = {}
    settled: list = []
    given_up: set[str] = set()
    desc = f"{device} {space.name}@{resolution}"
    settled += settle_bundle(bundle, table, drift, retries, given_up)  # chunks of a killed run
    while write_layout(bundle, protocol, given_up):
        try:
            run_bundle(cfg, bundle, progress, desc=desc)
        except HwnasError as e:
            err = e
        new = settle_bundle(bundle, table, drift, retries, given_up)
        settled += new
        if err is not None or not any(c.verdict == "re-measure" for c in new):
            break
    rs = read_results(bundle) if (bundle / RESULTS).is_file() else None
    if rs is not None:
        rs.provenance.update({"quantization": quant} if quant else {})
        rep.measured_blocks, rep.measured_networks = merge_results(
            dev, rs, replace=replace, statistic=statistic, only=[e.id for e in entries])
        _prune(bundle, [*entries, *sents], rs)
    report_drift(rep, dev, settled, bundle / RESULTS)
    if err is not None:
        raise err
    rep.seconds = time.monotonic() - t0
    return rep


def _drop_stale_results(bundle: Path, entries: Sequence[Entry]) -> None:
    """Results already merged into a table (their ONNX files were pruned after the merge)
    of entries the table no longer holds (deleted, or --replace): the user wants them
    measured again, so the old results file is moved aside instead of resumed from."""
    res = bundle / RESULTS
    if not res.is_file():
        return
    done = {r["id"] for r in read_records(str(res)) if r["type"] == "result"}
    stale = [e for e in entries if e.id in done and not (bundle / e.file).is_file()]
    if stale:
        aside = res.with_name(f"{RESULTS}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        res.replace(aside)
        log.warning("%s: %d measurement(s) were merged into the table before and are not in it "
                    "now: measuring again (old results kept as %s)", res, len(stale), aside.name)


def _prune(bundle: Path, entries: Sequence[Entry], rs: ResultSet) -> None:
    """Delete the ONNX files no run needs any more (measured and in the table; pieces only
    kept for chaining networks), so a resumed run ships only what is left to measure."""
    pending = {e.file for e in entries if e.id not in rs.stats}
    if not pending:
        shutil.rmtree(bundle / "models", ignore_errors=True)
        return
    for f in (bundle / "models").glob("*.onnx*"):  # the graph, and weights a runner left
        if f"models/{f.name.removesuffix(DATA_SUFFIX)}" not in pending:
            f.unlink(missing_ok=True)


def import_results(device: str, path: str | Path, *, replace: bool = False,
                   statistic: str | None = None, drift: DriftSettings | None = None
                   ) -> tuple[ResultSet, int, int]:
    """``hwnas lut import``: merge a bundle's results file into the device's table, less
    the chunks whose sentinels drifted beyond the threshold (unless ``drift.accept``)."""
    from .drift import chunk_drifts, record
    from .hosts import validate_name

    validate_name(device)
    drift = (drift or DriftSettings()).validate()
    rs = read_results(path)
    if not rs.stats:
        raise HwnasError(f"{rs.path}: holds no finished measurement yet")
    check_quantization(LatencyTable.load(device) if not replace and LatencyTable.exists(device)
                       else None, rs.provenance, rs.stats, str(rs.path))  # int8: as profile
    records = read_records(str(rs.path))
    refused: set[str] = set()
    if not replace and LatencyTable.exists(device):
        table = LatencyTable.load(device)
        chunks = [c for c in chunk_drifts(records, table, drift.threshold) if c.drift]
        bad = [c for c in chunks if c.drift.beyond and c.drift.decisive and not drift.accept]
        refused = {i for c in bad for i in c.ids}
        if chunks:
            record(table.dir, device, Drift.pooled([c.drift for c in chunks]), "lut import")
        pooled = Drift.pooled([c.drift for c in chunks if c.drift.beyond])
        if pooled is not None:
            log.warning("%s; %s", pooled.warning(device, f"{rs.path}"),
                        f"not importing the {len(refused)} results of those {len(bad)} chunk(s) "
                        "(--accept-drift imports them)" if bad else "imported anyway")
    nb, nn = merge_results(device, rs, replace=replace, statistic=statistic,
                           only=[k for k in rs.stats if k not in refused])
    w = conditions_warning(records, device, rs.path)
    if w:
        log.warning("%s", w)
    if nb == nn == 0 and not refused:
        raise HwnasError(f"{rs.path}: no block or network measurement to import "
                         f"({len(rs.stats)} other results)")
    return rs, nb, nn
