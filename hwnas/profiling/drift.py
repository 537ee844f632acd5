"""Sentinels and drift: does the device still run as fast as when its table was measured?

A latency table is only useful while the device runs at the speed it had when the table
was measured. Every measurement run on a device -- each chunk of ``hwnas profile``,
``hwnas measure``, the retrain measurement, the demo's check of the shipped table -- also
times a few **sentinel** networks: networks already in the device's table, spanning its
latency range (:meth:`hwnas.profiling.lut.LatencyTable.sentinels`, 3 by default). They are entries
of every chunk of the bundle (``"kind": "sentinel"``, id ``sentinel:r<run>:c<group>:<arch>``),
interleaved with the other models like any entry, and never merged into the table.

**drift** = measured / table for each sentinel (at the table's statistic) and the median
over the sentinels of a chunk or a run (:class:`Drift`). Beyond the threshold (default
+-8 %, ``--drift-threshold``) one warning line says how much slower or faster the device
is and what that usually means.

In a profile's ``results.jsonl`` every chunk with sentinels is *settled* after the run
(:func:`settle`): a ``{"type": "drift", ...}`` record is written after the chunk's records
(its sentinels, their drifts, the median, the verdict), the sentinels' result records
become ``"type": "sentinel"`` (so the runner never skips a sentinel of a later run), and a
chunk beyond the threshold is *refused* (unless ``--accept-drift``): its results and
passes move to ``results.rejected.jsonl`` and the profile measures those entries again
later in the run (at most :data:`MAX_RETRIES` times, then they stay out of the table and
the next run measures them).

``latency_tables/<device>/drift.json`` keeps the last measurement run's drift
(:func:`record`, :func:`last`), which ``hwnas predict --drift-correct`` scales by.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_json, atomic_write_text
from ..onboard.runner import group_entries

log = logging.getLogger(__name__)

DEFAULT_SENTINELS = 3
DEFAULT_THRESHOLD = 0.08  # +-8 %
MAX_RETRIES = 2  # re-measurements of a refused chunk within one profile run
#: fewer samples per sentinel (e.g. the quick protocol's 3) cannot tell +-8 % from noise:
#: the drift is recorded and warned about, but no chunk is refused for it
MIN_SAMPLES = 10
KIND = "sentinel"
PREFIX = "sentinel:"
REJECTED = "results.rejected.jsonl"
DRIFT_FILE = "drift.json"
FORMAT = "hwnas-drift/1"

__all__ = ["DEFAULT_SENTINELS", "DEFAULT_THRESHOLD", "MAX_RETRIES", "MIN_SAMPLES", "ChunkDrift",
           "Drift", "DriftSettings", "chunk_drifts", "corrected_error", "drift_of", "last",
           "layout", "note", "record", "sentinel_arch", "sentinel_id", "settle"]


@dataclass(frozen=True)
class DriftSettings:
    """How measurement runs use sentinels: how many, the threshold (a fraction: 0.08 =
    +-8 %), whether a profile merges chunks beyond it anyway (``accept``), and whether
    predictions are also given scaled by the drift (``correct``)."""

    sentinels: int = DEFAULT_SENTINELS
    threshold: float = DEFAULT_THRESHOLD
    accept: bool = False
    correct: bool = False

    def validate(self) -> DriftSettings:
        if self.sentinels < 0:
            raise HwnasError(f"--sentinels must be >= 0, got {self.sentinels}")
        if not 0 < self.threshold < 10:
            raise HwnasError(f"--drift-threshold must be a percentage > 0, got "
                             f"{100 * self.threshold:g}")
        return self


# ---- sentinel entries ----------------------------------------------------------------------------

def sentinel_id(run: int, group: int, arch: str) -> str:
    """The id of one sentinel of one chunk: unique in the results file (``run`` grows with
    every run of the bundle), and naming the table's network it re-times."""
    return f"{PREFIX}r{run}:c{group}:{arch}"


def sentinel_arch(ident: str) -> str | None:
    """The table network a sentinel id re-times; None if ``ident`` is no sentinel."""
    if not ident.startswith(PREFIX):
        return None
    parts = ident.split(":", 3)
    return parts[3] if len(parts) == 4 else None


def layout(pending: Sequence[dict], sentinels: Sequence[dict], chunk: int, chunk_mb: float,
           mb: Callable[[dict], float], run: int) -> list[dict]:
    """Manifest entries: ``pending`` in order with a copy of ``sentinels`` (manifest entries
    of kind sentinel, ids of :func:`sentinel_id`) in every chunk the runner will make of them, spread among the chunk's
    entries. The chunks follow the runner's rule (at most ``chunk`` models and ``chunk_mb``
    MB each; ``mb`` gives an entry's MB), so each runner chunk holds its sentinels."""
    sents = list(sentinels)[:max(0, chunk - 1)]
    smb = sum(mb(s) for s in sents)
    cap = chunk - len(sents)
    groups = group_entries(pending, cap, chunk_mb - smb, mb)
    out: list[dict] = []
    for g, items in enumerate(groups, 1):
        # an entry alone bigger than a chunk stays alone (the runner would split it off)
        fit = sents if sum(mb(e) for e in items) + smb <= chunk_mb else []
        at = [int((j + 0.5) * len(items) / len(fit)) for j in range(len(fit))]
        for i, e in enumerate(items):
            out.extend(dict(s, id=sentinel_id(run, g, str(sentinel_arch(s["id"]))))
                       for s, pos in zip(fit, at, strict=True) if pos == i)
            out.append(e)
    return out


def run_number(results: str | Path) -> int:
    """1 + the runs a results file has seen (its provenance records): tags sentinel ids."""
    from ..onboard.runner import read_records

    return 1 + sum(r["type"] == "provenance" for r in read_records(str(results)))


def write_layout(bundle: Path, protocol, skip: set[str] = frozenset()) -> int:
    """Rewrite ``bundle``'s manifest for its next run: finished entries first, then the
    pending ones (less ``skip``) with the manifest's sentinel entries laid out in every
    chunk (:func:`layout`); a bundle of sentinels alone times them once. Returns how many
    entries are pending."""
    from ..onboard import weights
    from ..onboard.runner import read_records
    from .bundle import MANIFEST, RESULTS, manifest_text

    bundle = Path(bundle)
    doc = json.loads((bundle / MANIFEST).read_text())
    entries = doc.pop("entries")
    sents = {sentinel_arch(e["id"]): e for e in entries if e.get("kind") == KIND}
    base = [dict(e, id=sentinel_id(0, 0, a)) for a, e in sents.items() if a]
    done = {r["id"] for r in read_records(str(bundle / RESULTS)) if r["type"] == "result"}
    real = [e for e in entries if e.get("kind") != KIND]
    pending = [e for e in real if e["id"] not in done and e["id"] not in skip]

    def mb(e: dict) -> float:
        try:
            size = os.path.getsize(bundle / e["file"])
        except OSError:
            size = 0
        return (size + weights.data_bytes(e)) / 2**20

    run = run_number(bundle / RESULTS)
    out = [e for e in real if e["id"] in done]
    if not real:  # sentinels only (the demo's check of a table): one chunk of them
        out = [dict(s, id=sentinel_id(run, 1, str(a))) for a, s in sents.items() if a]
    else:
        out += layout(pending, base, protocol.chunk, protocol.chunk_mb, mb, run) if base \
            else pending
    atomic_write_text(bundle / MANIFEST, manifest_text(doc, out))
    return len(pending) if real else len(out)


# ---- drift ----------------------------------------------------------------------------------------

@dataclass
class Drift:
    """measured / table for each sentinel (``{"arch", "table_ms", "measured_ms", "drift",
    "n"}``, at the table's ``statistic``; ``n`` = samples measured now) and their median."""

    statistic: str
    sentinels: list[dict[str, Any]]
    threshold: float = DEFAULT_THRESHOLD

    @property
    def median(self) -> float:
        return float(statistics.median(s["drift"] for s in self.sentinels))

    @property
    def beyond(self) -> bool:
        return abs(self.median - 1.0) > self.threshold

    @property
    def samples(self) -> int:
        """The fewest samples a sentinel got (0: unknown)."""
        return min(int(s.get("n") or 0) for s in self.sentinels)

    @property
    def decisive(self) -> bool:
        """Enough samples per sentinel (:data:`MIN_SAMPLES`) to refuse a chunk for it."""
        return self.samples >= MIN_SAMPLES

    def to_dict(self) -> dict[str, Any]:
        return {"median": round(self.median, 4), "beyond": self.beyond,
                "decisive": self.decisive, "threshold": self.threshold,
                "statistic": self.statistic, "sentinels": [dict(s) for s in self.sentinels]}

    @classmethod
    def from_dict(cls, d: Any) -> Drift | None:
        """The Drift of :meth:`to_dict` (None for anything else)."""
        try:
            sents = [{"arch": str(s["arch"]), "table_ms": float(s["table_ms"]),
                      "measured_ms": float(s["measured_ms"]), "drift": float(s["drift"]),
                      "n": int(s.get("n") or 0)} for s in d["sentinels"]]
            if not sents:
                return None
            return cls(str(d.get("statistic") or "?"), sents,
                       float(d.get("threshold", DEFAULT_THRESHOLD)))
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def pooled(cls, drifts: Sequence[Drift | None]) -> Drift | None:
        """One Drift of every sentinel of ``drifts`` (e.g. all chunks of a run)."""
        ds = [d for d in drifts if d is not None]
        if not ds:
            return None
        return cls(ds[0].statistic, [s for d in ds for s in d.sentinels], ds[0].threshold)

    def short(self) -> str:
        """``x1.94 (+94 %, 3 sentinels)``."""
        return (f"x{self.median:.3f} ({100 * (self.median - 1):+.1f} %, "
                f"{len(self.sentinels)} sentinel{'s' if len(self.sentinels) != 1 else ''})")

    def speed(self) -> str:
        d = self.median
        if d >= 1:
            return f"{d:.2f}x slower ({100 * (d - 1):+.0f} %)"
        return f"{1 / d:.2f}x faster ({100 * (d - 1):+.0f} %)"

    def warning(self, device: str, what: str = "this run") -> str:
        """One line: by how much the device is slower or faster than its table, and why
        that usually is."""
        if self.median >= 1:
            why = ("the machine is busy (other processes), throttling (heat, power supply), "
                   "in another power mode or CPU governor, or not the machine the table was "
                   "measured on")
        else:
            why = ("the table was measured while the machine was busy or throttled, or this "
                   "is a faster machine or power mode than the table's")
        noise = ("" if self.decisive else
                 f" (but with {self.samples} samples per sentinel, e.g. --quick, this may be "
                 f"noise: at least {MIN_SAMPLES} tell)")
        return (f"device '{device}' ran {self.speed()} than when its latency table was "
                f"measured (median drift {self.median:.3f} of {len(self.sentinels)} sentinel "
                f"network(s) re-timed in {what}; threshold +-{100 * self.threshold:g} %): "
                f"that usually means {why}; latencies predicted from the table are off by "
                f"about as much{noise}")


def note(d: Drift | dict | None) -> str:
    """One line for the retrain summary, the demo and the report: the drift of the run that
    measured the models, next to their prediction errors ('' for none)."""
    if isinstance(d, dict):
        d = Drift.from_dict(d)
    if d is None:
        return ""
    how = (f"beyond +-{100 * d.threshold:g} %: the prediction errors include it"
           if d.beyond else f"within +-{100 * d.threshold:g} %")
    if d.beyond and not d.decisive:
        how += f", but {d.samples} samples per sentinel may be noise"
    return (f"drift {d.short()}: during this measurement the device ran {d.speed()} than "
            f"when its latency table was measured ({how})")


def corrected_error(predicted: float | None, measured: float | None, drift: float
                    ) -> float | None:
    """The error (%) of the drift-corrected prediction ``predicted * drift``."""
    if predicted is None or measured is None or measured <= 0:
        return None
    return 100.0 * (predicted * drift - measured) / measured


def drift_of(table, measured: Mapping[str, Any], threshold: float = DEFAULT_THRESHOLD
             ) -> Drift | None:
    """The drift of ``measured`` (table network -> :class:`~hwnas.profiling.lut.Stats`) against
    ``table`` (a LatencyTable) at its statistic; None if no sentinel is in the table."""
    out = []
    for arch, st in measured.items():
        ref = table.network_ms(arch)
        now = st.value(table.statistic)
        if ref is None or ref <= 0 or now <= 0:
            continue
        out.append({"arch": arch, "table_ms": round(ref, 6), "measured_ms": round(now, 6),
                    "drift": round(now / ref, 4), "n": st.n})
    return Drift(table.statistic, out, threshold) if out else None


# ---- chunks of a results file ------------------------------------------------------------------

@dataclass
class ChunkDrift:
    """A chunk of a results file that held sentinels, and what was decided about it."""

    run: str  # the sentinels' run tag (r<N>)
    chunk: int | None  # the runner's chunk number (None: unknown)
    drift: Drift | None
    ids: list[str]  # the (non-sentinel) entries finished in the chunk
    verdict: str = ""  # merged | noisy | accepted | re-measure | unmerged | unjudged
    span: tuple[int, int] = field(default=(0, 0), repr=False)  # record indices [start, end)

    def to_record(self) -> dict[str, Any]:
        d = {"type": "drift", "run": self.run, "chunk": self.chunk, "entries": len(self.ids),
             "verdict": self.verdict, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if self.drift is not None:
            d.update(self.drift.to_dict())
        if self.verdict in ("re-measure", "unmerged"):
            d["moved"] = list(self.ids)
        return d


def _stats(rec: dict):
    from .lut import Stats

    return Stats.from_dict(rec, f"result {str(rec.get('id'))[:60]}")


def chunk_drifts(records: Sequence[dict], table, threshold: float = DEFAULT_THRESHOLD
                 ) -> list[ChunkDrift]:
    """The chunks of ``records`` (a results file) whose sentinel results are not settled
    yet: a chunk is the records from a runner's ``chunk`` start record (or a provenance
    record) to the next."""
    bounds = [i for i, r in enumerate(records)
              if r.get("type") == "provenance" or (r.get("type") == "chunk"
                                                   and r.get("at") == "start")]
    out = []
    for a, b in zip(bounds, [*bounds[1:], len(records)], strict=True):
        sent, ids, run = {}, [], ""
        for r in records[a:b]:
            if r.get("type") != "result":
                continue
            arch = sentinel_arch(str(r.get("id", "")))
            if arch is None:
                ids.append(str(r.get("id")))
                continue
            try:
                sent[arch] = _stats(r)
            except HwnasError:
                continue
            run = str(r["id"]).split(":")[1]
        if not sent:
            continue
        head = records[a]
        k = head.get("chunk") if head.get("type") == "chunk" else None
        out.append(ChunkDrift(run, k, drift_of(table, sent, threshold), ids, span=(a, b)))
    return out


def settle(path: str | Path, table, *, threshold: float = DEFAULT_THRESHOLD,
           accept: bool = False, retries: dict[str, int] | None = None,
           max_retries: int = MAX_RETRIES) -> list[ChunkDrift]:
    """Judge the unsettled chunks of the results file ``path`` against ``table`` and
    rewrite the file (see the module docstring). ``retries`` counts, per entry, the
    refusals of this profile run (updated): an entry refused more than ``max_retries``
    times gets the verdict ``unmerged`` (moved aside too, but not measured again in this
    run). Returns the settled chunks."""
    from ..onboard.runner import Lock, RunnerError, read_records

    path = Path(path)
    retries = {} if retries is None else retries
    try:
        lock = Lock(str(path), timeout=30)
    except RunnerError as e:
        raise HwnasError(str(e)) from None
    try:
        records = read_records(str(path), repair=True)
        chunks = chunk_drifts(records, table, threshold)
        if not chunks:
            return []
        moved: set[str] = set()
        for c in chunks:
            if c.drift is None:
                c.verdict = "unjudged"  # its sentinels are not in the table (a new table)
            elif not c.drift.beyond or not c.ids:
                c.verdict = "merged"
            elif not c.drift.decisive:
                c.verdict = "noisy"  # merged: too few samples to tell drift from noise
            elif accept:
                c.verdict = "accepted"
            else:
                for i in c.ids:
                    retries[i] = retries.get(i, 0) + 1
                c.verdict = ("unmerged" if any(retries[i] > max_retries for i in c.ids)
                             else "re-measure")
                moved.update(c.ids)
        after = {c.span[1] - 1: c for c in chunks}
        keep, aside = [], []
        for i, r in enumerate(records):
            t = r.get("type")
            if t in ("result", "pass") and r.get("id") in moved:
                aside.append(r)
            elif t == "result" and sentinel_arch(str(r.get("id", ""))) is not None:
                keep.append(dict(r, type="sentinel"))
            else:
                keep.append(r)
            c = after.get(i)
            if c is not None:
                keep.append(c.to_record())
                if c.verdict in ("re-measure", "unmerged"):
                    aside.append(c.to_record())
        if aside:
            with open(path.with_name(REJECTED), "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in aside))
                f.flush()
                os.fsync(f.fileno())
        mode = path.stat().st_mode & 0o777
        atomic_write_text(path, "".join(json.dumps(r, separators=(",", ":")) + "\n"
                                        for r in keep))
        os.chmod(path, mode)
        return chunks
    finally:
        lock.release()


def settle_bundle(bundle: Path, table, drift: DriftSettings, retries: dict[str, int],
                  given_up: set[str]) -> list[ChunkDrift]:
    """Settle the chunks of a profile bundle's results (:func:`settle`); one warning line
    for the chunks refused; the entries refused too often are added to ``given_up``."""
    from .bundle import RESULTS

    if not (bundle / RESULTS).is_file():
        return []
    chunks = settle(bundle / RESULTS, table, threshold=drift.threshold, accept=drift.accept,
                    retries=retries)
    again = [c for c in chunks if c.verdict == "re-measure"]
    out = [c for c in chunks if c.verdict == "unmerged"]
    for c in out:
        given_up.update(c.ids)
    bad = Drift.pooled([c.drift for c in again + out])
    if bad is not None:
        n = max((retries.get(i, 0) for c in again + out for i in c.ids), default=0)
        what = (f"measuring {len(again)} chunk(s) again (refusal {n} of at most "
                f"{MAX_RETRIES + 1})" if again else "")
        if out:
            what += ("; " if what else "") + (
                f"{sum(len(c.ids) for c in out)} entries of {len(out)} chunk(s) stay out of "
                f"the table after {MAX_RETRIES} re-measurements (the next run measures them)")
        log.warning("%s; refusing to merge them (--accept-drift merges anyway): %s",
                    bad.warning(table.device, f"{len(again) + len(out)} chunk(s)"), what)
    return chunks


def report_drift(rep, dev, settled: Sequence[ChunkDrift], results: Path) -> None:
    """The drift of a profile run's settled chunks into its report (a ProfileReport) and
    the device's drift.json; a warning line for chunks merged beyond the threshold."""
    judged = [c for c in settled if c.drift is not None]
    if not judged:
        return
    rep.drift = Drift.pooled([c.drift for c in judged])
    rep.chunks = len(judged)
    rep.remeasured = sum(c.verdict == "re-measure" for c in judged)
    rep.unmerged = len({i for c in judged if c.verdict == "unmerged" for i in c.ids})
    acc = [c for c in judged if c.verdict == "accepted"]
    rep.accepted = len(acc)
    noisy = [c for c in judged if c.verdict == "noisy"]
    for group, how in ((acc, "merged anyway (--accept-drift)"),
                       (noisy, "merged: too few samples to refuse them")):
        if group:
            pooled = Drift.pooled([c.drift for c in group])
            log.warning("%s; %s (drift records in %s)",
                        pooled.warning(dev.name, f"{len(group)} chunk(s)"), how, results)
    record(dev.dir, dev.name, rep.drift, "profile")


# ---- the device's last drift ---------------------------------------------------------------------

def record(device_dir: Path, device: str, drift: Drift, what: str) -> None:
    """Keep ``drift`` as the device's last measured drift (``drift.json``)."""
    try:
        atomic_write_json(Path(device_dir) / DRIFT_FILE,
                          {"format": FORMAT, "device": device, "what": what,
                           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **drift.to_dict()})
    except OSError as e:
        log.warning("cannot write %s: %s", Path(device_dir) / DRIFT_FILE, e.strerror or e)


def last(device_dir: Path) -> tuple[Drift, dict] | None:
    """The device's last measured drift and its record (what measured it, when)."""
    p = Path(device_dir) / DRIFT_FILE
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        return None
    dr = Drift.from_dict(d)
    return (dr, d) if dr is not None else None
