"""Bundles: a self-contained directory the board runs with ``python3 run.py``.

Layout::

    manifest.json        {"schema": 2, "kind": "hwnas-bundle", "protocol": {...}, "weights": "...",
                          "entries": [{"id", "kind": "block"|"network"|"onnx", "file",
                                       "input_shape", "weights": "generated"|"included",
                                       "data": {"file", "bytes", "tensors": [...]}}]}
    models/<name>.onnx   one ONNX file per entry: the graph only (see below)
    run.py               the entry point (hwnas/onboard/run.py)
    hwnas_device/        a copy of hwnas/onboard (numpy + onnxruntime + stdlib only)
    results.jsonl        appended by the runner (see hwnas/onboard/runner.py)

Bundles without weights: every weight of a block or sampled network is ONNX external data
(``models/<name>.onnx.data``) that the bundle does not hold; ``data`` lists each tensor's
offset, length, dtype, shape and how to fill it, and the runner writes the file on the
device just before it creates the session (hwnas/onboard/weights.py), deleting it after the
chunk. So over SSH only graphs travel (a mobilenetv2 bundle at 224 px is ~1/100 of its
size with weights). Entries made from a given ONNX file (``measure_archs(onnx=...)``, e.g.
the retrained winners, and ``hwnas measure FILE.onnx``) ship their real weights:
``"weights": "included"``.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import HwnasError
from ..io import atomic_write_bytes, atomic_write_text, file_mode

DEVICE_PACKAGE = Path(__file__).resolve().parent.parent / "onboard"
PACKAGE_NAME = "hwnas_device"
MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
SCHEMA = 2  # 2: graph-only models with generated weights (the runner reads 1 and 2)
DATA_SUFFIX = ".data"  # models/<name>.onnx -> models/<name>.onnx.data, written on the device


def write_runner(dir: Path) -> None:
    """Copy ``run.py`` and the device package (as ``hwnas_device/``) into ``dir``."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    pkg = dir / PACKAGE_NAME
    pkg.mkdir(exist_ok=True)
    for src in sorted(DEVICE_PACKAGE.glob("*.py")):
        if src.name == "run.py":
            continue
        shutil.copyfile(src, pkg / src.name)
    shutil.copyfile(DEVICE_PACKAGE / "run.py", dir / "run.py")


# ---- graph-only ONNX files -----------------------------------------------------------------------

def write_graph(path: Path, onnx_bytes: bytes) -> None:
    """Write ``onnx_bytes`` to ``path`` as a graph whose weights are external data in
    ``<path>.data`` (not written: the device generates it)."""
    import onnx

    from ..export import externalize

    m = onnx.load_from_string(onnx_bytes)
    externalize(m, path.name + DATA_SUFFIX)
    atomic_write_bytes(path, m.SerializeToString())


def compose_network(arch, piece_file: Callable) -> bytes:
    """The ONNX model of a whole network, made by chaining its pieces' ONNX files.

    Each piece file is what :func:`hwnas.export.export_piece` writes (with weights, or a
    graph-only file of :func:`write_graph`: its external data is not read, the composed
    model then points to it and :func:`write_graph` re-points it to the network's own
    data file). Chaining them (names prefixed per piece, each piece's input wired to the
    previous piece's output) gives the same operators as exporting the network with
    torch (up to Identity nodes, which onnxruntime removes), ~10x faster, since nothing
    is traced or run. Weights are random either way, which does not change latency.
    """
    import onnx
    from onnx import compose, helper

    from ..pieces import arch_pieces

    nodes, inits = [], []
    prev = first_in = last_out = None
    opset = ir = None
    for i, p in enumerate(arch_pieces(arch)):
        m = onnx.load(str(piece_file(p)), load_external_data=False)
        opset, ir = m.opset_import, m.ir_version
        g = compose.add_prefix(m, f"p{i}_").graph
        in_name = g.input[0].name
        for n in g.node:
            if prev is not None:
                for j, x in enumerate(n.input):
                    if x == in_name:
                        n.input[j] = prev
            nodes.append(n)
        inits.extend(g.initializer)
        first_in = first_in or g.input[0]
        prev, last_out = g.output[0].name, g.output[0]
    graph = helper.make_graph(nodes, arch.file_stem(60), [first_in], [last_out], initializer=inits)
    model = helper.make_model(graph, opset_imports=opset, ir_version=ir)
    return model.SerializeToString()


def _export(e, path: Path, models: Path) -> None:
    from ..export import export_piece

    if getattr(e, "precision", "fp32") != "fp32":  # quantized on the host, weights included
        from .quantize import export_quantized

        export_quantized(e, path)
    elif e.source is not None:  # real weights: shipped as they are
        atomic_write_bytes(path, e.source.read_bytes())
    elif e.kind == "block":
        write_graph(path, export_piece(e.piece))
    else:
        def piece_file(p) -> Path:
            f = models / f"{p.key}.onnx"
            if not f.is_file():  # a piece the bundle does not measure (e.g. already in the table)
                write_graph(f, export_piece(p))
            return f

        write_graph(path, compose_network(e.arch, piece_file))


def entry_manifest(bundle: Path, e) -> dict:
    """The manifest entry of ``e``: its :meth:`Entry.manifest` plus where its weights come
    from (read from its ONNX file's external data references)."""
    import onnx
    from google.protobuf.message import DecodeError

    from ..export import weights_spec

    d = e.manifest()
    if getattr(e, "precision", "fp32") != "fp32":  # the runner tells a QDQ failure by it
        d["precision"] = e.precision
    f = bundle / e.file
    if e.source is not None or not f.is_file():
        d["weights"] = "included"
        return d
    try:
        spec = weights_spec(onnx.load(str(f), load_external_data=False), str(Path(e.file).parent))
    except (OSError, ValueError, DecodeError) as ex:
        raise HwnasError(f"{f}: not a readable ONNX file ({ex}); delete it and run again") from None
    if spec is None:
        d["weights"] = "included"
    else:
        d["weights"], d["data"] = "generated", spec
    return d


def manifest_text(head: dict, entries: list[dict]) -> str:
    """The manifest as JSON: the header indented, one line per entry (it lists every tensor)."""
    body = ",\n".join("    " + json.dumps(d, separators=(",", ":")) for d in entries)
    return json.dumps(head, indent=2)[:-2] + ',\n  "entries": [\n' + body + "\n  ]\n}\n"


def build_bundle(bundle: str | Path, entries: Sequence, protocol, progress: bool = True,
                 info: dict | None = None) -> Path:
    """Write (or complete) a bundle directory: graph-only ONNX files not yet there (real
    weights for entries made from a given file), the manifest, the runner. Returns the
    bundle path."""
    import torch
    from tqdm import tqdm

    bundle = Path(bundle)
    if bundle.exists() and not bundle.is_dir():
        raise HwnasError(f"{bundle}: exists and is not a directory")
    marker = bundle / ".hwnas-bundle"  # written first: a half-built bundle is still ours
    if bundle.is_dir() and any(bundle.iterdir()) and not (bundle / MANIFEST).is_file() \
            and not marker.is_file():
        raise HwnasError(f"{bundle}: exists, is not empty and is not an hwnas bundle (no {MANIFEST})")
    # blocks first: networks are chained from their pieces' ONNX files
    todo = sorted((e for e in entries if not (bundle / e.file).is_file()),
                  key=lambda e: e.kind != "block")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # exporting is latency-bound; extra threads only contend
    try:
        (bundle / "models").mkdir(parents=True, exist_ok=True)
        marker.touch()
        for e in tqdm(todo, desc="export", unit="model",
                      disable=None if progress and todo else True, file=None, leave=False):
            try:
                _export(e, bundle / e.file, bundle / "models")
            except OSError as ex:
                raise HwnasError(f"cannot write {bundle / e.file}: {ex.strerror or ex} "
                                 "(free some space and run again; finished files are kept)") from None
        head = {"schema": SCHEMA, "kind": "hwnas-bundle",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "protocol": protocol.to_dict(),
                "weights": "graphs only: entries with weights 'generated' get seeded random "
                           "weights written on the device; 'included' ones ship their own",
                **quantization_info(entries), **(info or {})}
        atomic_write_text(bundle / MANIFEST,
                          manifest_text(head, [entry_manifest(bundle, e) for e in entries]))
        write_runner(bundle)
    except OSError as ex:
        raise HwnasError(f"cannot write the bundle {bundle}: {ex.strerror or ex}") from None
    finally:
        torch.set_num_threads(threads)
    return bundle


def quantization_info(entries: Sequence) -> dict:
    """``{"quantization": ...}``: how the bundle's int8 entries were made (the same record
    :func:`hwnas.profiling.quantize.provenance` gives a profile run's table), which the runner copies
    into its results' provenance so ``hwnas lut import`` records it; {} without int8."""
    int8 = [e for e in entries if getattr(e, "precision", "fp32") != "fp32"]
    if not int8:
        return {}
    # every int8 entry carries the networks' calibration (blocks use their own, fixed one)
    cal = next((e.calibration for e in int8 if getattr(e, "calibration", None) is not None), None)
    from .quantize import provenance

    return {"quantization": provenance(cal)}


def write_archive(bundle: Path, archive: Path) -> Path:
    """Pack ``bundle`` as ``archive`` (.tar.gz) with one top folder named like the archive."""
    top = archive.name.removesuffix(".tar.gz").removesuffix(".tgz")
    try:  # a fresh name (O_EXCL), never a predictable one a planted symlink could redirect
        fd, name = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".tmp", dir=archive.parent)
    except OSError as ex:
        raise HwnasError(f"cannot write {archive}: {ex.strerror or ex}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for p in sorted(bundle.rglob("*")):
                if "__pycache__" in p.parts or p.name in (RESULTS, RESULTS + ".lock") \
                        or p.name.endswith(".onnx" + DATA_SUFFIX):
                    continue
                tar.add(p, arcname=f"{top}/{p.relative_to(bundle)}", recursive=False)
        os.chmod(tmp, file_mode())  # mkstemp made it 0600
        tmp.replace(archive)
    except OSError as ex:
        tmp.unlink(missing_ok=True)
        raise HwnasError(f"cannot write {archive}: {ex.strerror or ex}") from None
    return archive
