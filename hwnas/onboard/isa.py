"""The CPU's instruction-set features that decide how int8 models compute, and the int8 format
hwnas quantizes with for such a CPU. Standard library only: it runs on the board.

onnxruntime's U8S8 kernels (uint8 activations x int8 weights, what ``quantize_static`` writes
by default) multiply on x86-64 CPUs without VNNI with ``VPMADDUBSW``, which adds two
uint8 x int8 products into a *saturating* int16: 255 x 127 x 2 = 64770 > 32767, so a
convolution's result can be wrong by many steps (onnxruntime's quantization docs; seen on
this project's AVX2-only CI hosts as 7 output steps on one 8-channel conv and -6.4 pp of
accuracy). With VNNI (``VPDPBUSD``: int32 accumulation) and on ARM (NEON, SDOT/UDOT) there
is no such path. The cures onnxruntime names: 7-bit weights (``reduce_range``: 255 x 64 x 2
= 32640, never saturates) or U8U8. hwnas picks, per target CPU:

* ``u8s8`` -- full-range int8 weights: x86 with AVX512-VNNI or AVX-VNNI, and ARM;
* ``u8s8-rr`` -- 7-bit weights (``reduce_range``): x86 without VNNI, and any CPU whose features
  are unknown (exact everywhere; one bit of weight precision is the price).

``u8u8`` (uint8 weights) is also exact everywhere and can be asked for explicitly.

:func:`detect` reads the features (``/proc/cpuinfo`` flags on x86; the auxiliary vector's
HWCAP on aarch64, which qemu-user also fills for the CPU it emulates, else ``/proc/cpuinfo``
Features; ``sysctl`` on macOS); :func:`classify` turns a feature list into the record
``hwnas device check`` prints and a table's provenance keeps.
"""

from __future__ import annotations

import platform
import struct
import subprocess

__all__ = ["FORMATS", "SAFE_FORMAT", "ISA_FLAGS", "classify", "cpuinfo_flags", "detect",
           "choose_format", "saturates", "describe"]

#: int8 formats: activation type, weight type, 7-bit weights (onnxruntime's reduce_range)
FORMATS = {
    "u8s8": {"activations": "uint8", "weights": "int8", "reduce_range": False},
    "u8s8-rr": {"activations": "uint8", "weights": "int8", "reduce_range": True},
    "u8u8": {"activations": "uint8", "weights": "uint8", "reduce_range": False},
}
#: exact on every CPU: what a device of unknown features gets
SAFE_FORMAT = "u8s8-rr"

#: the features that matter for int8 (x86 flags as /proc/cpuinfo spells them; ARM HWCAP names)
ISA_FLAGS = ("sse4_1", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx_vnni_int8",
             "amx_int8", "asimd", "asimddp", "i8mm", "sve")
_VNNI = ("avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8")
# aarch64 AT_HWCAP / AT_HWCAP2 bits (linux arch/arm64/include/uapi/asm/hwcap.h)
_AT_HWCAP, _AT_HWCAP2 = 16, 26
_HWCAP = {"asimd": 1 << 1, "asimddp": 1 << 20, "sve": 1 << 22}
_HWCAP2 = {"i8mm": 1 << 13}
# macOS sysctl names for the same x86 features
_MAC = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512BW": "avx512bw",
        "AVX512VNNI": "avx512_vnni", "AVXVNNI": "avx_vnni", "SSE4.1": "sse4_1"}


def _arch(machine: str) -> str:
    m = machine.lower()
    if m in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "x86"
    if m in ("aarch64", "arm64") or m.startswith("armv8"):
        return "arm64"
    if m.startswith("arm"):
        return "arm32"
    return m or "unknown"


def cpuinfo_flags(text: str) -> list[str]:
    """The :data:`ISA_FLAGS` a /proc/cpuinfo text lists (x86 ``flags``, ARM ``Features``)."""
    flags: set[str] = set()
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() in ("flags", "features"):
            flags.update(v.split())
    return [f for f in ISA_FLAGS if f in flags]


def _auxv_flags(data: bytes) -> list[str] | None:
    """HWCAP features from /proc/self/auxv bytes (64-bit little-endian pairs); None if absent."""
    caps: dict[int, int] = {}
    for i in range(0, len(data) - 15, 16):
        k, v = struct.unpack_from("<QQ", data, i)
        if k == 0:
            break
        caps[k] = v
    if _AT_HWCAP not in caps:
        return None
    have = {n for n, b in _HWCAP.items() if caps[_AT_HWCAP] & b}
    have |= {n for n, b in _HWCAP2.items() if caps.get(_AT_HWCAP2, 0) & b}
    return [f for f in ISA_FLAGS if f in have]


def _read(path: str, binary: bool = False):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _mac_flags() -> list[str] | None:
    try:
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                             capture_output=True, text=True, timeout=5).stdout.upper().split()
    except (OSError, subprocess.SubprocessError):
        return None
    have = {v for k, v in _MAC.items() if k in out}
    return [f for f in ISA_FLAGS if f in have] if out else None


def detect() -> dict:
    """This CPU's int8-relevant features: :func:`classify` of what the OS reports."""
    machine = platform.machine()
    arch = _arch(machine)
    flags, source = None, None
    if arch == "arm64":
        aux = _read("/proc/self/auxv", binary=True)
        flags = _auxv_flags(aux) if aux else None
        source = "auxv" if flags is not None else None
    if flags is None:
        text = _read("/proc/cpuinfo")
        if text:
            flags, source = cpuinfo_flags(text), "cpuinfo"
    if flags is None and platform.system() == "Darwin":
        if arch == "arm64":  # every Apple silicon CPU has NEON and the dot product
            flags, source = ["asimd", "asimddp"], "apple-silicon"
        else:
            flags = _mac_flags()
            source = "sysctl" if flags is not None else None
    return classify(machine, flags, source)


def classify(machine: str, flags: list[str] | None, source: str | None = "given") -> dict:
    """``{"machine", "arch", "flags", "source", "int8", "u8s8_saturates", "int8_format"}``:
    ``int8`` names the int8 multiply path (``x86-vnni``, ``x86-avx512``, ``x86-avx2``,
    ``x86-sse``, ``arm-dotprod``, ``arm-neon``, ``unknown``); ``flags`` None = unknown."""
    arch = _arch(machine)
    fl = [f for f in ISA_FLAGS if f in set(flags or ())]
    if flags is None:
        path = "unknown"
    elif arch == "x86":
        path = ("x86-vnni" if any(f in fl for f in _VNNI) else
                "x86-avx512" if "avx512bw" in fl else "x86-avx2" if "avx2" in fl else "x86-sse")
    elif arch == "arm64":
        path = "arm-dotprod" if "asimddp" in fl else "arm-neon"
    else:
        path = "unknown"
    sat = saturates(path)
    return {"machine": machine, "arch": arch, "flags": fl if flags is not None else None,
            "source": source if flags is not None else None, "int8": path,
            "u8s8_saturates": sat, "int8_format": choose_format(path)}


def saturates(path: str) -> bool | None:
    """Whether onnxruntime's U8S8 kernels can saturate on a CPU of int8 path ``path``
    (None: unknown)."""
    if path in ("x86-avx2", "x86-avx512", "x86-sse"):
        return True
    if path in ("x86-vnni", "arm-dotprod", "arm-neon"):
        return False
    return None


def choose_format(path: str | dict | None) -> str:
    """The int8 format for a target whose int8 path is ``path`` (or an ISA record): full-range
    U8S8 where it cannot saturate, 7-bit weights elsewhere and when unknown."""
    if isinstance(path, dict):
        path = path.get("int8")
    return "u8s8" if saturates(path or "unknown") is False else SAFE_FORMAT


def describe(isa: dict | None) -> str:
    """One line: ``x86 AVX2, no VNNI: U8S8 can saturate -> int8 format u8s8-rr``."""
    if not isinstance(isa, dict) or not isa.get("int8"):
        return "unknown"
    path = isa["int8"]
    text = {"x86-vnni": "x86 with VNNI", "x86-avx512": "x86 AVX-512, no VNNI",
            "x86-avx2": "x86 AVX2, no VNNI", "x86-sse": "x86 without AVX2",
            "arm-dotprod": "ARM with dot product (SDOT/UDOT)",
            "arm-neon": "ARM NEON, no dot product", "unknown": "features unknown"}.get(path, path)
    sat = isa.get("u8s8_saturates")
    how = ("U8S8 can saturate" if sat else "U8S8 exact" if sat is False else "U8S8 unknown")
    return f"{text}: {how} -> int8 format {isa.get('int8_format') or choose_format(path)}"
