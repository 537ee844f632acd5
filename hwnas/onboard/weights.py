"""Weights generated on the board: bundles ship graphs, the runner writes their data.

Runs on the board (numpy + standard library). A bundle's ONNX files hold only the graph;
their initializers are ONNX *external data* (``location`` / ``offset`` / ``length`` in
each tensor) that the bundle does not contain. The manifest describes each model's data
file (see :func:`hwnas.export.weights_spec`, which writes it)::

    "weights": "generated",
    "data": {"file": "models/<name>.onnx.data", "bytes": 123456,
             "tensors": [{"name", "offset", "length", "dtype": "float32", "shape": [...],
                          "role": "conv_weight", "fill": "normal", "mean": 0.0,
                          "std": 0.27}, ...]}

Before the session is created, :func:`write_data` writes that file: seeded random normal
values (``mean + std * z``; ``fill: "abs_normal"`` = ``mean + std * |z|``, for BatchNorm
variances), never raw random bytes, whose NaNs and denormals would change the timing.
The values are a sensible scale (He for conv/linear weights, ~1 for BatchNorm scales and
variances, small around 0 for biases), seeded by the model's file name, so a resumed run
writes the same bytes. Latency depends on the weights' shapes, not their values. Entries
with ``"weights": "included"`` (real weights that matter, e.g. retrained models) ship
their data and are loaded as they are.
"""

from __future__ import annotations

import os
import tempfile
import zlib

DTYPES = {"float32": "<f4", "float16": "<f2", "float64": "<f8"}
FILLS = ("normal", "abs_normal")


class WeightsError(ValueError):
    pass


def spec_of(entry: dict) -> dict | None:
    """The entry's generated-data spec, or None if its model ships its own weights."""
    if entry.get("weights") != "generated":
        return None
    d = entry.get("data")
    if not isinstance(d, dict) or not isinstance(d.get("tensors"), list) or "file" not in d:
        raise WeightsError(f"{entry.get('id')}: weights 'generated' without a data spec")
    return d


def data_bytes(entry: dict) -> int:
    d = spec_of(entry)
    return int(d.get("bytes", 0)) if d else 0


def _check_path(bundle: str, rel: str) -> str:
    path = os.path.normpath(os.path.join(bundle, rel))
    if os.path.isabs(rel) or not path.startswith(os.path.normpath(bundle) + os.sep):
        raise WeightsError(f"data file {rel!r} is outside the bundle")
    return path


def values(t: dict, rng):
    """The array of one tensor spec (``rng`` a numpy Generator)."""
    import numpy as np

    dt = DTYPES.get(t.get("dtype"))
    if dt is None:
        raise WeightsError(f"tensor {t.get('name')}: dtype {t.get('dtype')!r} cannot be generated")
    shape = [int(s) for s in t.get("shape", [])]
    n = int(np.prod(shape)) if shape else 1
    if n * np.dtype(dt).itemsize != int(t["length"]):
        raise WeightsError(f"tensor {t.get('name')}: length {t['length']} does not match "
                           f"{t.get('dtype')} {shape}")
    fill = t.get("fill", "normal")
    if fill not in FILLS:
        raise WeightsError(f"tensor {t.get('name')}: unknown fill {fill!r}")
    z = rng.standard_normal(n, dtype=np.float32)
    if fill == "abs_normal":
        np.abs(z, out=z)
    z *= np.float32(t.get("std", 1.0))
    z += np.float32(t.get("mean", 0.0))
    return z.astype(dt, copy=False)


def write_data(bundle: str, entry: dict) -> str | None:
    """Write the entry's external-data file (atomically); its path, or None if the entry
    ships its weights. WeightsError for a spec that does not describe a valid file."""
    import numpy as np

    d = spec_of(entry)
    if d is None:
        return None
    path = _check_path(bundle, d["file"])
    rng = np.random.default_rng(zlib.crc32(str(entry.get("file", d["file"])).encode()))
    # a fresh name (O_EXCL), never a predictable one a planted symlink could redirect
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    end = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for t in sorted(d["tensors"], key=lambda t: int(t["offset"])):
                off = int(t["offset"])
                if off < end:
                    raise WeightsError(f"tensor {t.get('name')}: offset {off} overlaps the previous")
                f.seek(off)
                f.write(values(t, rng).tobytes())
                end = off + int(t["length"])
            f.truncate(max(end, int(d.get("bytes", end))))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def remove_data(bundle: str, entry: dict) -> None:
    """Delete the entry's generated data file (after its session is gone)."""
    try:
        d = spec_of(entry)
        if d is not None:
            os.unlink(_check_path(bundle, d["file"]))
    except (OSError, WeightsError):
        pass
