"""Precision of a measured model: ``fp32`` (the default) or ``int8`` (static QDQ, see
:mod:`hwnas.profiling.quantize`).

Table keys carry it: an fp32 entry keeps its plain key (block key or canonical arch string),
so tables written before int8 existed load unchanged; an int8 entry's key is the same key
with ``@int8`` appended (``mb_h56_i24_o24_k3_s1_m144_q0_r6_res1@int8``) and the entry also
says ``"precision": "int8"``. Light module: no onnx, no torch.
"""

from __future__ import annotations

from ..errors import HwnasError

FP32 = "fp32"
INT8 = "int8"
PRECISIONS = (FP32, INT8)
SEP = "@"

__all__ = ["FP32", "INT8", "PRECISIONS", "tag", "split", "check", "parse_precisions"]


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise HwnasError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    return precision


def tag(key: str, precision: str = FP32) -> str:
    """The table key of ``key`` measured at ``precision`` (fp32: ``key`` itself)."""
    return key if check(precision) == FP32 else f"{key}{SEP}{precision}"


def split(key: str) -> tuple[str, str]:
    """(plain key, precision) of a table key; a key without a known suffix is fp32."""
    base, sep, p = key.rpartition(SEP)
    if sep and p in PRECISIONS and p != FP32:
        return base, p
    return key, FP32


def parse_precisions(text: str | None) -> tuple[str, ...]:
    """``"fp32,int8"`` -> ("fp32", "int8"): each known, no repeats, in the given order."""
    items = [s.strip().lower() for s in (text or FP32).split(",") if s.strip()]
    if not items:
        raise HwnasError(f"--precision: give one or more of {', '.join(PRECISIONS)}")
    for p in items:
        if p not in PRECISIONS:
            raise HwnasError(f"--precision: unknown precision '{p}' (known: {', '.join(PRECISIONS)})")
    return tuple(dict.fromkeys(items))
