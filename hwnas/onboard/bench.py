"""Time ONNX models with onnxruntime, and describe the machine doing it.

Runs on the board: Python 3 (current onnxruntime wheels need >= 3.11), numpy, onnxruntime and the standard library only (no
``hwnas`` imports), so the package can be copied into a bundle as ``hwnas_device/``.

The measurement protocol (see :class:`Protocol`):

* one onnxruntime session per model: ``intra_op_num_threads = threads``,
  ``inter_op_num_threads = 1``, sequential execution, graph optimisation ALL;
* ``warmup`` untimed runs when the session is created;
* the model's samples are taken in ``passes`` short *bursts* spread over the run (the
  runner interleaves the bursts of many models), each burst starting with
  ``burst_warmup`` untimed runs (the other models have just evicted this one's caches);
* a *sample* is the mean time of ``loops`` consecutive runs lasting about ``sample_ms``
  (``loops`` > 1 only for models faster than that, so tiny blocks are not stored as
  thousands of numbers, while a single run stays a sample, robust to preemption, for
  anything slower);
* a burst takes at least ``ceil(min_repeats / passes)`` samples and at least
  ``min_time_s / passes`` seconds of timed runs, so after its passes a model has at least
  ``min_repeats`` samples covering at least ``min_time_s`` of timed runs;
* recorded: min, p10, median, IQR (p75 - p25) and n (samples) in milliseconds.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, fields

from . import isa

STATISTICS = ("min", "p10", "median")

#: keys of the provenance that decide whether two measurements are comparable
COMPARABLE = ("cpu_model", "machine", "onnxruntime", "threads")
#: protocol settings that must agree too (chunk sizes change memory use, not the numbers)
PROTOCOL_COMPARABLE = ("warmup", "min_repeats", "min_time_s", "passes", "burst_warmup",
                       "sample_ms", "graph_optimization")


def incompatibility(old: dict, new: dict) -> str | None:
    """None if measurements with provenance ``new`` may be mixed with ones with ``old``;
    else the first difference, e.g. ``"onnxruntime '1.17.0' (this measurement: '1.18.1')"``."""
    for k in COMPARABLE:
        if old.get(k) is not None and old.get(k) != new.get(k):
            return f"{k} {old.get(k)!r} (this measurement: {new.get(k)!r})"
    po, pn = old.get("protocol") or {}, new.get("protocol") or {}
    for k in PROTOCOL_COMPARABLE:
        if k in po and k in pn and po[k] != pn[k]:
            return f"protocol {k}={po[k]!r} (this measurement: {pn[k]!r})"
    return None


@dataclass
class Protocol:
    warmup: int = 5  # untimed runs when a session is created
    min_repeats: int = 20  # samples per model, at least
    min_time_s: float = 0.1  # timed seconds per model, at least
    passes: int = 10  # bursts per model, interleaved with the other models
    burst_warmup: int = 1  # untimed runs at the start of every burst
    chunk: int = 64  # models whose passes are interleaved (sessions kept in memory)
    chunk_mb: float = 256.0  # ... and at most this many MB of ONNX files per chunk
    sample_ms: float = 1.0  # a sample is the mean of as many runs as last about this long
    threads: int = 1  # onnxruntime intra-op threads
    graph_optimization: str = "all"

    @classmethod
    def quick(cls, **kw) -> Protocol:
        """A fast, noisy preset for tests and smoke runs."""
        d = dict(warmup=1, min_repeats=3, min_time_s=0.0, passes=3, burst_warmup=0, sample_ms=0.0)
        d.update(kw)
        return cls(**d)

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)

    #: upper bounds: a protocol read from a file or typed by hand cannot ask for days of timing
    LIMITS = {"warmup": 100_000, "burst_warmup": 10_000, "min_repeats": 1_000_000,
              "passes": 10_000, "chunk": 100_000, "threads": 4096, "min_time_s": 3600.0,
              "chunk_mb": 1_000_000.0, "sample_ms": 60_000.0}

    def validate(self) -> None:
        """ValueError naming the first setting that is not a finite number in its range
        (NaN and infinity included: one would be written into the table's provenance and
        refuse every later profile of the device)."""
        for name, top in self.LIMITS.items():
            v = getattr(self, name)
            integer = name not in ("min_time_s", "chunk_mb", "sample_ms")
            if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
                raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, "
                                 f"got {v!r}")
            if not math.isfinite(v) or v > top:
                raise ValueError(f"{name} must be a finite number <= {top:g}, got {v!r}")
        for name in ("warmup", "burst_warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("min_repeats", "passes", "chunk", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.min_time_s < 0 or self.chunk_mb <= 0 or self.sample_ms < 0:
            raise ValueError("min_time_s and sample_ms must be >= 0 and chunk_mb > 0")

    @property
    def samples_per_burst(self) -> int:
        return max(1, math.ceil(self.min_repeats / self.passes))

    @property
    def burst_time_s(self) -> float:
        return self.min_time_s / self.passes


# ---- statistics ----------------------------------------------------------------------------------

def percentile(sorted_xs: list, q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of an already sorted list."""
    if not sorted_xs:
        raise ValueError("no samples")
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def summarize(samples_ms: list) -> dict:
    """min, p10, median, IQR and n of a list of times in ms."""
    xs = sorted(float(x) for x in samples_ms)
    r = {
        "min_ms": xs[0],
        "p10_ms": percentile(xs, 10),
        "median_ms": percentile(xs, 50),
        "iqr_ms": percentile(xs, 75) - percentile(xs, 25),
        "n": len(xs),
    }
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}


# ---- sessions and timing -------------------------------------------------------------------------

class Model:
    """One ONNX model loaded in an onnxruntime session, ready to time."""

    def __init__(self, path: str, input_shape: list | None, threads: int,
                 graph_optimization: str = "all"):
        import numpy as np
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[graph_optimization]
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=so,
                                            providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        shape = input_shape or [d if isinstance(d, int) else 1 for d in inp.shape]
        rng = np.random.default_rng(0)
        self.feed = {inp.name: rng.standard_normal(shape).astype(np.float32)}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.per_run_s = None  # running estimate of one run's time
        self.last_loops = 1  # runs per sample in the last burst

    def run(self) -> None:
        self.session.run(self.outputs, self.feed)

    def warm(self, runs: int) -> None:
        t0 = time.perf_counter()
        for _ in range(runs):
            self.run()
        if runs:
            self.per_run_s = (time.perf_counter() - t0) / runs

    def burst(self, p: Protocol) -> list:
        """One burst: ``burst_warmup`` untimed runs, then samples (ms, mean of ``loops`` runs)."""
        if self.per_run_s is None:  # no warm-up at all: time one run to size the loops
            self.warm(1)
        for _ in range(p.burst_warmup):
            self.run()
        reps = p.samples_per_burst
        # a sample lasts about sample_ms (more runs per sample only for models faster than that)
        target = p.sample_ms / 1000.0
        loops = max(1, int(math.ceil(target / max(self.per_run_s, 1e-7)))) if target > 0 else 1
        self.last_loops = loops
        out = []
        clock = time.perf_counter
        timed = 0.0
        # at least `reps` samples and the burst's time share (more samples if the estimate
        # was too optimistic), so the protocol's minimums always hold
        while len(out) < reps or timed < p.burst_time_s:
            t0 = clock()
            for _ in range(loops):
                self.session.run(self.outputs, self.feed)
            dt = clock() - t0
            timed += dt
            out.append(dt * 1000.0 / loops)
        # update the estimate with the median of this burst
        self.per_run_s = sorted(out)[len(out) // 2] / 1000.0
        return out


def measure(path: str, input_shape: list | None = None, protocol: Protocol | None = None) -> dict:
    """Time one model alone (no interleaving with others): its summary statistics."""
    p = protocol or Protocol()
    m = Model(path, input_shape, p.threads, p.graph_optimization)
    m.warm(p.warmup)
    samples: list = []
    for _ in range(p.passes):
        samples += m.burst(p)
    return summarize(samples)


# ---- provenance ----------------------------------------------------------------------------------

_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xb76": "ARM1176", "0xc07": "Cortex-A7",
}


def read_file(path: str) -> str | None:
    """The text of a system file (``/proc``, ``/sys``), stripped; None if it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip().strip("\x00")
    except OSError:
        return None


def cpu_model() -> str:
    """'AMD EPYC', or on ARM boards e.g. 'Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)'."""
    info = read_file("/proc/cpuinfo") or ""
    fields_: dict = {}
    for line in info.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields_.setdefault(k.strip().lower(), v.strip())
    name = fields_.get("model name") or ""
    board = read_file("/proc/device-tree/model") or fields_.get("model") or ""
    if board.isdigit():  # x86 "model" is a number, not a board name
        board = ""
    if not name or name.lower().startswith("armv"):
        part = fields_.get("cpu part", "").lower()
        name = _ARM_PARTS.get(part, name or (f"ARM part {part}" if part else ""))
    if not name:
        name = platform.processor() or platform.machine() or "unknown"
    if board and board not in name:
        name = f"{name} ({board})"
    return name


#: CPU flags (/proc/cpuinfo) of the dot-product instructions onnxruntime's fast int8 kernels
#: use: ARM's SDOT/UDOT (Cortex-A76 in the Pi 5 has them, the Pi 4's A72 does not), x86 VNNI
DOT_PRODUCT_FLAGS = ("asimddp", "avx512_vnni", "avx_vnni", "avx_vnni_int8")


def dot_product_flags(cpuinfo: str | None = None) -> list[str]:
    """The int8 dot-product flags this CPU reports ([] if none, or no /proc/cpuinfo)."""
    info = read_file("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    have = isa.cpuinfo_flags(info or "")
    return [f for f in DOT_PRODUCT_FLAGS if f in have]


def _os_name() -> str:
    rel = read_file("/etc/os-release") or ""
    for line in rel.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return f"{platform.system()} {platform.version()}".strip()


def provenance(threads: int | None = None) -> dict:
    """Where and with what a measurement was made. Needs numpy and onnxruntime importable."""
    import numpy as np
    import onnxruntime as ort

    gov = read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    freq = read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    fmax = read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    freq_mhz = round(int(freq) / 1000) if freq and freq.isdigit() else None
    if freq_mhz is None:  # e.g. a VM without cpufreq: the nominal clock from /proc/cpuinfo
        for line in (read_file("/proc/cpuinfo") or "").splitlines():
            if line.lower().startswith("cpu mhz"):
                try:
                    freq_mhz = round(float(line.split(":", 1)[1]))
                except ValueError:
                    pass
                break
    temp = read_file("/sys/class/thermal/thermal_zone0/temp")
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    d = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": affinity,
        "machine": platform.machine(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "governor": gov,
        "freq_mhz": freq_mhz,
        "freq_max_mhz": round(int(fmax) / 1000) if fmax and fmax.isdigit() else None,
        "temp_c": round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "int8_dot": " ".join(dot_product_flags()) or "none",
        "isa": isa.detect(),  # how int8 computes here (hwnas.onboard.isa)
    }
    if threads is not None:
        d["threads"] = int(threads)
    return d


def missing_dependency() -> str | None:
    """None if numpy and onnxruntime import, else a one-line message saying what to install."""
    missing = []
    for mod in ("numpy", "onnxruntime"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if not missing:
        return None
    return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed for "
            f"{sys.executable} (python {platform.python_version()}): pip install onnxruntime numpy")
