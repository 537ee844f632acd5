"""Throttling and load: the board's clock, temperature and load around each chunk.

Runs on the board (standard library only). Everything is read "where readable": a VM
has no cpufreq or thermal zones, only a Raspberry Pi has ``vcgencmd``; what cannot be
read is left out of the snapshot. The readers take a ``root`` (default ``/``) and the
``vcgencmd`` command, so tests read fixture files instead of the live machine.

A snapshot (:func:`snapshot`) is a JSON-able dict::

    {"time": 1717000000.0,                       # time.time()
     "freq_mhz": {"cpu0": 1500, "cpu1": 1500},   # scaling_cur_freq of each CPU
     "temp_c": {"cpu-thermal": 52.6},            # each thermal zone, by its type
     "throttled": {"raw": "0x50005", "now": ["under-voltage", "throttled"],
                   "since_boot": ["under-voltage", "throttled"]},   # vcgencmd get_throttled
     "load1": 0.42}                              # 1-minute load average

:func:`chunk_issues` compares the snapshots before and after a chunk and names what
makes its timings suspect: a throttle flag set now, one that occurred during the chunk,
or a CPU frequency more than ``FREQ_DROP`` below the chunk's start.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time

from .bench import read_file

#: bits of ``vcgencmd get_throttled``: bit n = now, bit n + 16 = has occurred since boot
THROTTLE_BITS = {0: "under-voltage", 1: "frequency capped", 2: "throttled",
                 3: "soft temperature limit"}
VCGENCMD = ("vcgencmd", "get_throttled")
FREQ_DROP = 0.05  # a frequency this much below the chunk's start is a warning


def _sub(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _cpu_number(path: str) -> int:
    name = path.split("/cpufreq")[0].rsplit("/cpu", 1)[-1]
    return int(name) if name.isdigit() else 1 << 30


def read_freqs(root: str = "/") -> dict:
    """The current frequency of each CPU in MHz (``scaling_cur_freq`` is in kHz)."""
    out = {}
    pattern = _sub(root, "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
    for p in sorted(glob.glob(pattern), key=_cpu_number):
        v = read_file(p)
        if v and v.isdigit():
            out[f"cpu{_cpu_number(p)}"] = round(int(v) / 1000)
    return out


def read_temps(root: str = "/") -> dict:
    """The temperature of each thermal zone in °C (``temp`` is in millidegrees), keyed by
    the zone's ``type`` (e.g. ``cpu-thermal``), or its directory name without one."""
    out = {}
    zones = glob.glob(_sub(root, "/sys/class/thermal/thermal_zone[0-9]*"))
    for z in sorted(zones, key=lambda z: int(z.rsplit("zone", 1)[-1] or 0)):
        v = read_file(os.path.join(z, "temp"))
        try:
            c = round(int(v) / 1000, 1)
        except (TypeError, ValueError):
            continue
        name = read_file(os.path.join(z, "type")) or os.path.basename(z)
        if name in out:
            name = f"{name} ({os.path.basename(z)})"
        out[name] = c
    return out


def read_load(root: str = "/") -> float | None:
    """The 1-minute load average (``/proc/loadavg``)."""
    v = read_file(_sub(root, "/proc/loadavg"))
    try:
        return float(v.split()[0]) if v else None
    except ValueError:
        return None


def parse_throttled(text: str | None) -> dict | None:
    """``throttled=0x50005`` -> ``{"raw": "0x50005", "now": [...], "since_boot": [...]}``
    (flag names from :data:`THROTTLE_BITS`); None if ``text`` is not such a line."""
    key, _, v = (text or "").strip().partition("=")
    if key.strip() != "throttled":
        return None
    try:
        bits = int(v, 0)
    except ValueError:
        return None
    return {"raw": hex(bits),
            "now": [n for b, n in THROTTLE_BITS.items() if bits >> b & 1],
            "since_boot": [n for b, n in THROTTLE_BITS.items() if bits >> (b + 16) & 1]}


def read_throttled(cmd=VCGENCMD, timeout: float = 2.0) -> dict | None:
    """Run ``vcgencmd get_throttled`` (or ``cmd``) and parse it; None where there is none."""
    cmd = list(cmd)
    if not cmd or shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_throttled(r.stdout) if r.returncode == 0 else None


def snapshot(root: str = "/", vcgencmd=VCGENCMD) -> dict:
    """What is readable now (see the module docstring); unreadable parts are left out."""
    d = {"time": round(time.time(), 3), "freq_mhz": read_freqs(root),
         "temp_c": read_temps(root), "throttled": read_throttled(vcgencmd) if vcgencmd else None,
         "load1": read_load(root)}
    return {k: v for k, v in d.items() if v not in (None, {})}


def chunk_issues(start: dict, end: dict) -> list[str]:
    """What makes a chunk's timings suspect, from its start and end snapshots: e.g.
    ``["throttled now: soft temperature limit", "CPU frequency fell 1500 -> 1200 MHz (-20 %)"]``."""
    out = []
    now = [f for s in (start, end) for f in (s.get("throttled") or {}).get("now", [])]
    if now:
        out.append("throttled now: " + ", ".join(dict.fromkeys(now)))
    before = set((start.get("throttled") or {}).get("since_boot", []))
    new = [f for f in (end.get("throttled") or {}).get("since_boot", []) if f not in before]
    if new and not set(new) <= set(now):
        out.append("during the chunk: " + ", ".join(new))
    f0, f1 = start.get("freq_mhz") or {}, end.get("freq_mhz") or {}
    if f0 and f1:
        a, b = max(f0.values()), max(f1.values())
        if a > 0 and b < a * (1 - FREQ_DROP):
            out.append(f"CPU frequency fell {a} -> {b} MHz ({(b - a) / a:+.0%})")
    return out


def load_issue(load1: float | None, cores: int | None) -> str | None:
    """A line if the 1-minute load average is above the number of cores, else None."""
    if load1 is None or not cores or load1 <= cores:
        return None
    return (f"the 1-minute load average is {load1:.2f} on {cores} cores: other programs are "
            "running, so the timings will be slower and noisier than on a quiet machine")
