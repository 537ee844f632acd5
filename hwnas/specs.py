"""ARCH arguments in bulk: ``--archs-file F`` (one ARCH spec a line; blank lines and ``#``
comments skipped) beside the ARCH arguments of a command."""

from __future__ import annotations

from pathlib import Path

from .errors import HwnasError

MAX_SPECS_BYTES = 64 * 2**20

__all__ = ["arch_specs", "read_specs"]


def read_specs(path: str | Path) -> list[str]:
    """The ARCH specs of ``path`` in order (text after ``#`` is a comment)."""
    from .io import input_file

    p = input_file(path, "an --archs-file (one ARCH a line)", MAX_SPECS_BYTES)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HwnasError(f"--archs-file {p}: not a UTF-8 text file") from None
    out = []
    for line in text.splitlines():
        s = line.split("#", 1)[0].strip()
        if s:
            out.append(s)
    return out


def arch_specs(args: list[str] | None, archs_file: str | None) -> list[str]:
    """The ARCH arguments, then those of ``archs_file``; at least one in all."""
    specs = list(args or []) + (read_specs(archs_file) if archs_file else [])
    if not specs:
        raise HwnasError("give at least one ARCH (or --archs-file F with one ARCH a line)"
                         + (f"; {archs_file} lists none" if archs_file else ""))
    return specs
