"""Atomic file writes (temp file in the same folder + fsync + rename), with the user's umask.

A reader never sees a half-written file and a crash never damages the previous version. A
write that fails (disk full, read-only file system, no permission) raises
:class:`WriteError`: an ``OSError`` (its ``errno`` kept) that is also an
:class:`~hwnas.errors.HwnasError`, so the command line shows it as one line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import HwnasError


class WriteError(HwnasError, OSError):
    """A file of ours could not be written: one line naming the file and the reason."""

    def __init__(self, path: str | Path, err: OSError):
        super().__init__(f"cannot write {path}: {err.strerror or err}")
        self.errno, self.strerror, self.filename = err.errno, err.strerror, str(path)

    def __str__(self) -> str:
        return str(self.args[0])


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (not Linux): read it by setting it, and put it back
    os.umask(mask)
    return mask


#: the largest ONNX model hwnas reads or copies (EfficientNet-B7 in fp32 is ~260 MB; a
#: MobileNet is < 30 MB): a 1 GB file handed in is refused before it is read or copied
MAX_ONNX_BYTES = 512 * 2**20
#: the largest JSON file of hwnas's own kinds read from a path a user gives (a predictor file)
MAX_JSON_BYTES = 64 * 2**20


def input_file(path: str | Path, what: str, limit: int) -> Path:
    """``path`` if it is a regular file of at most ``limit`` bytes; else HwnasError naming
    the problem (missing, a directory, not a regular file, too large)."""
    p = Path(path)
    try:
        if not p.is_file():
            if p.is_dir():
                raise HwnasError(f"{p}: is a directory, not {what}")
            raise HwnasError(f"{p}: {'not a regular file' if p.exists() else 'no such file'}; "
                             f"expected {what}")
        size = p.stat().st_size
    except OSError as e:
        raise HwnasError(f"{p}: cannot read {what}: {e.strerror or e}") from None
    if size > limit:
        raise HwnasError(f"{p}: {size / 2**20:,.0f} MiB is too large for {what} (at most "
                         f"{limit / 2**20:,.0f} MiB)")
    return p


def file_digest(path: str | Path, algorithm: str = "sha1") -> str:
    """The hex digest of a file's bytes (``hashlib`` algorithm), read in 1 MiB chunks."""
    import hashlib

    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unique_pairs(pairs: list) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"key {k!r} is given twice (which one counts would be a guess)")
        seen[k] = v
    return seen


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses an object with a key given twice (ValueError), where the
    standard parser silently keeps the last: a file must not say two things at once."""
    return json.loads(text, object_pairs_hook=_unique_pairs)


def file_mode() -> int:
    """The mode a new file gets under the user's umask (0o666 & ~umask)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise WriteError(p, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp made it 0600
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(p, e) from e
        raise
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def print_json(obj: Any) -> None:
    """A command's ``--json`` answer: one JSON document on stdout (strict JSON: a NaN or
    infinity becomes null), nothing else there."""
    import math
    import sys

    def clean(x: Any) -> Any:
        if type(x).__module__ == "numpy" and hasattr(x, "item"):  # numpy scalars
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    sys.stdout.write(json.dumps(clean(obj), indent=2, allow_nan=False) + "\n")


__all__ = ["WriteError", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "print_json"]
