"""The CPU features that decide int8 numerics (hwnas.onboard.isa), and the int8 format hwnas
picks from them: read from /proc/cpuinfo texts and aarch64 auxiliary vectors of the CPUs
users have (an AVX2-only EPYC like this project's CI hosts, AVX-512 without VNNI, VNNI,
a Pi 4, a Pi 5), resolved per device, recorded and compared in a table's provenance."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from hwnas.errors import HwnasError
from hwnas.onboard import isa
from hwnas.profiling.quantize import (
    Calibration,
    check_table_calibration,
    int8_numerics,
    provenance,
    quantization_differs,
    resolve_format,
)

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes
"""
SKYLAKE_X = EPYC_AVX2.replace("AMD EPYC", "Intel Xeon") + "flags\t: avx2 avx512f avx512bw avx512cd\n"
CASCADE = "flags\t: sse4_1 avx2 avx512f avx512bw avx512_vnni\n"
ALDER = "flags\t: sse4_1 avx2 avx_vnni\n"
PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"
PI5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp " \
      "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n"


@pytest.mark.parametrize("machine,text,path,sat,fmt", [
    ("x86_64", EPYC_AVX2, "x86-avx2", True, "u8s8-rr"),
    ("x86_64", SKYLAKE_X, "x86-avx512", True, "u8s8-rr"),
    ("x86_64", CASCADE, "x86-vnni", False, "u8s8"),
    ("x86_64", ALDER, "x86-vnni", False, "u8s8"),
    ("x86_64", "flags\t: sse sse2 sse4_1\n", "x86-sse", True, "u8s8-rr"),
    ("aarch64", PI4, "arm-neon", False, "u8s8"),
    ("aarch64", PI5, "arm-dotprod", False, "u8s8"),
    ("riscv64", "isa\t: rv64imafdc\n", "unknown", None, "u8s8-rr"),
])
def test_cpuinfo_of_each_cpu_kind_gives_its_int8_path_and_format(machine, text, path, sat, fmt):
    r = isa.classify(machine, isa.cpuinfo_flags(text), "cpuinfo")
    assert (r["int8"], r["u8s8_saturates"], r["int8_format"]) == (path, sat, fmt)
    assert isa.describe(r).endswith(f"-> int8 format {fmt}")


def test_unknown_features_get_the_format_exact_everywhere():
    r = isa.classify("x86_64", None, None)
    assert r["flags"] is None and r["int8"] == "unknown" and r["int8_format"] == isa.SAFE_FORMAT
    assert isa.FORMATS[isa.SAFE_FORMAT]["reduce_range"]


def _auxv(hwcap: int, hwcap2: int = 0) -> bytes:
    pairs = [(6, 4096), (16, hwcap), (26, hwcap2), (0, 0)]
    return b"".join(struct.pack("<QQ", k, v) for k, v in pairs)


def test_aarch64_features_from_the_auxiliary_vector():
    """What qemu-user and the kernel give a process: HWCAP bits (asimd 1, asimddp 20)."""
    assert isa._auxv_flags(_auxv((1 << 1) | (1 << 20), 1 << 13)) == ["asimd", "asimddp", "i8mm"]
    assert isa._auxv_flags(_auxv(1 << 1)) == ["asimd"]
    assert isa._auxv_flags(struct.pack("<QQ", 0, 0)) is None  # no AT_HWCAP: unknown


def test_detect_here_is_consistent():
    r = isa.detect()
    assert r["machine"] and r["int8_format"] in isa.FORMATS
    assert r["int8_format"] == isa.choose_format(r)


def _table(prov: dict, int8: bool):
    return SimpleNamespace(provenance=prov, device="d", has_precision=lambda p: int8)


def test_resolve_format_prefers_the_check_then_the_table_then_the_host():
    pi5 = isa.classify("aarch64", ["asimd", "asimddp"])
    assert resolve_format("u8u8", info={"isa": pi5}) == "u8u8"  # asked for
    assert resolve_format(info={"isa": pi5}) == "u8s8"
    # the probe measured saturation where the features predicted none: the measurement wins
    assert resolve_format(info={"isa": pi5, "int8_qdq": {"format": "u8s8-rr"}}) == "u8s8-rr"
    # a table with int8 entries keeps their format (an old record without one was u8s8)
    assert resolve_format(table=_table({"quantization": {"int8_format": "u8u8"}}, True)) == "u8u8"
    assert resolve_format(table=_table({"quantization": {}}, True)) == "u8s8"
    assert resolve_format(table=_table({"isa": pi5}, False)) == "u8s8"
    assert resolve_format(table=_table({}, False)) == isa.SAFE_FORMAT  # remote, unknown
    assert resolve_format(table=_table({}, False), local=True) == isa.detect()["int8_format"]
    with pytest.raises(HwnasError, match="unknown int8 format 'u4'"):
        resolve_format("u4")


def test_a_table_of_another_int8_format_is_refused():
    old = provenance(Calibration(format="u8s8"))
    assert old["int8_format"] == "u8s8" and old["weights"] == "int8 per-channel"
    new = provenance(Calibration(format="u8s8-rr"))
    assert new["weights"].endswith("7-bit (reduce_range)")
    assert quantization_differs(old, new) == "weights"
    legacy = {k: v for k, v in old.items() if k != "int8_format"}  # before formats existed
    assert quantization_differs(legacy, old) is None
    assert quantization_differs(legacy, new) is not None
    t = _table({"quantization": old}, True)
    with pytest.raises(HwnasError, match="made with weights int8 per-channel, this run would use"):
        check_table_calibration(t, ["fp32", "int8"], Calibration(format="u8s8-rr"))
    assert check_table_calibration(t, ["fp32", "int8"], Calibration(format="u8s8"))
    assert check_table_calibration(t, ["fp32", "int8"], Calibration(format="u8s8-rr"), replace=True)


def test_int8_numerics_says_where_the_host_cannot_stand_in_for_the_device(monkeypatch):
    avx2, pi5 = isa.classify("x86_64", ["avx2"]), isa.classify("aarch64", ["asimd", "asimddp"])
    import hwnas.profiling.quantize as q

    monkeypatch.setattr(q, "detect_isa", lambda: avx2)
    assert int8_numerics("u8s8-rr", pi5)["kernels"] == "int8"  # exact everywhere
    r = int8_numerics("u8s8", pi5)  # the host saturates, the Pi does not
    assert r["kernels"] == "reference" and "saturate" in r["note"]
    assert int8_numerics("u8s8", avx2)["kernels"] == "int8"  # both saturate alike
    monkeypatch.setattr(q, "detect_isa", lambda: pi5)
    r = int8_numerics("u8s8", avx2)  # a Pi computing for an AVX2 device: warned, not emulated
    assert r["kernels"] == "int8" and "may differ" in r["note"]
    assert int8_numerics("u8s8", pi5) == {**r, "device_isa": "arm-dotprod", "note": None}


def test_device_check_prints_the_isa_and_the_measured_numerics():
    from hwnas.commands.device import format_info

    info = {"python": "3.11", "numpy": "2", "onnxruntime": "1.32", "machine": "x86_64",
            "isa": isa.classify("x86_64", ["avx2"], "cpuinfo"),
            "int8_qdq": {"runs": True, "error": None, "fp32_ms": 1.0, "int8_ms": 0.5,
                         "speedup": 2.0, "format": "u8s8-rr", "saturates": True,
                         "error_steps": {"u8s8": 15.0, "u8s8-rr": 0.0, "u8u8": 0.0}}}
    out = format_info("d", "local", info)
    assert "int8 ISA" in out and "x86 AVX2, no VNNI: U8S8 can saturate -> int8 format u8s8-rr" in out
    assert "U8S8 saturates here" in out and "u8s8 15, u8s8-rr 0, u8u8 0" in out
    assert "quantize in u8s8-rr" in out
