"""Static int8 quantization of ONNX models on the host (onnxruntime.quantization).

One setting everywhere (``hwnas quantize``, ``hwnas profile --precision int8``): the model
is pre-processed (``quant_pre_process``: shape inference and onnxruntime's graph
optimisation, which folds the exporter's Identity nodes so every bias is an initializer),
then ``quantize_static`` writes a QDQ model with per-channel int8 weights and uint8
activations, calibrated (MinMax) on a few inputs at the model's input resolution: images
of a dataset (``--data``: any :func:`hwnas.data.load_dataset` spec, or a ``.npy`` file of
N x C x H x W float32 inputs) or seeded random normal inputs. The board only times the
result: the device side needs nothing beyond onnxruntime.

Bad input is one line (:class:`~hwnas.errors.HwnasError`) and leaves the output file as
it was: a file that is not an ONNX model, a model onnxruntime cannot quantize or run,
calibration data whose shape is not the model's input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HwnasError
from .io import atomic_write_bytes
from .precision import FP32, INT8, split, tag

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 16
#: what :func:`quantize_model` does, as recorded in a table's provenance (``quantization``)
SETTINGS = {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "weights": "int8 per-channel", "activations": "uint8", "calibrate": "MinMax",
            "preprocess": "quant_pre_process"}

__all__ = ["Calibration", "ArrayReader", "DEFAULT_SAMPLES", "SETTINGS", "model_input",
           "quantize_model", "quantized_nodes", "precision_entries", "export_quantized",
           "provenance", "check_table_calibration", "onnx_accuracy", "int8_accuracy"]


# ---- calibration ---------------------------------------------------------------------------------

class ArrayReader:
    """A ``CalibrationDataReader`` (onnxruntime's protocol: ``get_next()`` returns one feed
    dict, then None) over an N x C x H x W array, one input of batch 1 at a time."""

    def __init__(self, name: str, x: np.ndarray):
        self.name, self.x, self.i = name, np.ascontiguousarray(x, dtype=np.float32), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {self.name: self.x[self.i - 1:self.i]}

    def rewind(self) -> None:
        self.i = 0

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Calibration:
    """Where calibration inputs come from: ``data`` (a dataset spec or a ``.npy`` file;
    None = seeded random normal inputs), ``samples`` inputs, ``seed``."""

    data: str | None = None
    samples: int = DEFAULT_SAMPLES
    seed: int = 0

    def validate(self) -> Calibration:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise HwnasError(f"calibration samples must be a positive integer, got {self.samples!r}")
        return self

    @property
    def source(self) -> str:
        """``random`` | ``dataset:<spec>`` | ``file:<path>``: what the provenance records."""
        if self.data is None:
            return "random"
        return f"file:{self.data}" if self.data.endswith(".npy") else f"dataset:{self.data}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "samples": self.samples, "seed": self.seed}

    def describe(self) -> str:
        what = {"random": "seeded random normal inputs"}.get(self.source, self.source)
        return f"{self.samples} calibration inputs: {what}"

    def arrays(self, shape: Sequence[int]) -> np.ndarray:
        """``samples`` inputs of ``shape`` (1, C, H, W) as an (N, C, H, W) float32 array;
        HwnasError if the data's shape is not the model's."""
        self.validate()
        c, h, w = (int(s) for s in shape[1:])
        if self.data is None:
            rng = np.random.default_rng(self.seed)
            return rng.standard_normal((self.samples, c, h, w), dtype=np.float32)
        if self.data.endswith(".npy"):
            try:
                x = np.load(self.data, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise HwnasError(f"{self.data}: not a readable .npy array ({e})") from None
            if x.ndim == 3:
                x = x[None]
            x = x[: self.samples]
        else:
            from .data import load_dataset

            if h != w:
                raise HwnasError(f"calibration images are square; the model's input is {h}x{w}")
            x = load_dataset(self.data, h, seed=self.seed).minibatch(self.samples, self.seed)
            x = x.numpy()
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise HwnasError(f"calibration data {self.data} has shape {tuple(x.shape)}; the model "
                             f"takes N x {c} x {h} x {w} (channels x height x width)")
        if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
            raise HwnasError(f"calibration data {self.data} must be finite floating-point values")
        return x.astype(np.float32, copy=False)


# ---- quantizing one model ----------------------------------------------------------------------------

def _load(model: str | os.PathLike | bytes, what: str):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        if isinstance(model, bytes):
            return onnx.load_from_string(model)
        return onnx.load(str(model))
    except (OSError, ValueError, DecodeError) as e:
        raise HwnasError(f"{what}: not a readable ONNX model ({str(e).splitlines()[0][:120]})") from None


def model_input(m, what: str = "model") -> tuple[str, tuple[int, ...]]:
    """(name, (1, C, H, W)) of the single float image input of ONNX model ``m``; a symbolic
    batch dimension counts as 1. HwnasError for any other input."""
    from onnx import TensorProto

    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise HwnasError(f"{what}: has {len(inputs)} inputs; hwnas quantizes models with one "
                         "image input (N x C x H x W)")
    t = inputs[0].type.tensor_type
    if t.elem_type != TensorProto.FLOAT:
        raise HwnasError(f"{what}: input '{inputs[0].name}' is not float32; nothing to calibrate")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) != 4 or any(d is None or d < 1 for d in dims[1:]):
        shown = "x".join(str(d) if d else "?" for d in dims)
        raise HwnasError(f"{what}: input '{inputs[0].name}' has shape {shown}; hwnas needs "
                         "N x C x H x W with fixed C, H and W (export at one resolution)")
    return inputs[0].name, (1, *dims[1:])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization warns through the root logger ("consider pre-processing",
    per-bias notes), prints tracebacks of what it tolerates, and onnxruntime's C++ logger
    warns too: keep all of it off the user's terminal (a failure is our one line)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    logging.disable(logging.ERROR)  # quant_pre_process also logs (and prints) its own failure
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def quantized_nodes(m) -> int:
    """How many QuantizeLinear nodes ONNX model ``m`` has (0: nothing was quantized)."""
    return sum(n.op_type == "QuantizeLinear" for n in m.graph.node)


def quantize_model(model: str | os.PathLike | bytes, output: str | os.PathLike,
                   calibration: Calibration | None = None, *, what: str | None = None,
                   inputs: np.ndarray | None = None) -> dict:
    """Quantize ``model`` (a path or ONNX bytes) to a static QDQ int8 model at ``output``
    (written atomically, only once it loads and runs in onnxruntime), calibrated on
    ``calibration``'s inputs (or the given ``inputs``, N x C x H x W). Returns what was
    done: ``{"output", "quantized", "calibration", "input_shape"}``."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    cal = (calibration or Calibration()).validate()
    what = what or (str(model) if not isinstance(model, bytes) else "model")
    m = _load(model, what)
    name, shape = model_input(m, what)
    x = cal.arrays(shape) if inputs is None else np.asarray(inputs, dtype=np.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape[1:]):
        raise HwnasError(f"{what}: calibration inputs of shape {tuple(x.shape)}; the model takes "
                         f"N x {' x '.join(map(str, shape[1:]))}")
    with tempfile.TemporaryDirectory(prefix="hwnas-quantize-") as tmp, _quiet():
        src, pre, out = (Path(tmp) / f for f in ("model.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(m.SerializeToString())
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception as e:  # noqa: BLE001 - optional step: quantize the model as it is
            log.debug("%s: quant_pre_process failed (%s); quantizing without it", what, e)
            pre = src
        try:
            quantize_static(str(pre), str(out), ArrayReader(name, x), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
            q = _load(out.read_bytes(), what)
            n = quantized_nodes(q)
            if n == 0:
                raise HwnasError(f"{what}: onnxruntime found nothing to quantize in it "
                                 "(no Conv, MatMul or Gemm)")
            so = ort.SessionOptions()
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"]).run(
                None, {name: x[:1]})
        except HwnasError:
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime raises many types, all the model's fault
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise HwnasError(f"{what}: onnxruntime cannot quantize it ({type(e).__name__}: "
                             f"{first})") from None
        atomic_write_bytes(output, out.read_bytes())
    return {"output": str(output), "quantized": n, "calibration": cal.to_dict(),
            "input_shape": list(shape)}


# ---- accuracy after quantization (retrain) -----------------------------------------------------------

def onnx_accuracy(path: str | os.PathLike, dataset, split: str = "test",
                  limit: int | None = None) -> float:
    """Top-1 accuracy of the ONNX model at ``path`` on ``dataset``'s ``split`` (a
    :class:`hwnas.data.Dataset`, at the model's input resolution), run with onnxruntime on
    this machine, one image at a time (the exported models have batch 1), 1 thread."""
    import onnxruntime as ort

    m = _load(path, str(path))
    name, shape = model_input(m, str(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    right = total = 0
    for xb, yb in dataset.batches(split, 256, resolution=shape[-1]):
        x = xb.numpy().astype(np.float32, copy=False)
        for i in range(len(x)):
            if limit is not None and total >= limit:
                break
            out = sess.run(None, {name: x[i:i + 1]})[0]
            right += int(np.argmax(out.reshape(-1)) == int(yb[i]))
            total += 1
    if not total:
        raise HwnasError(f"{dataset.name}: the {split} split has no images")
    return right / total


def int8_accuracy(path: str | os.PathLike, dataset, output: str | os.PathLike | None = None,
                  samples: int = 64, seed: int = 0, limit: int | None = None) -> dict:
    """Quantize the trained model at ``path`` (calibrated on ``samples`` training images
    of ``dataset``) to ``output`` (default ``<path stem>.int8.onnx``) and measure the test
    accuracy of both with onnxruntime: ``{"int8_onnx", "accuracy_fp32", "accuracy_int8",
    "calibration"}``. For ``hwnas retrain``: the real quantized model, not a simulation."""
    p = Path(path)
    out = Path(output) if output else p.with_name(p.name.removesuffix(".onnx") + ".int8.onnx")
    _, shape = model_input(_load(p, str(p)), str(p))
    x = dataset.minibatch(samples, seed, resolution=shape[-1]).numpy()
    quantize_model(p, out, inputs=x)
    return {"int8_onnx": str(out), "accuracy_fp32": onnx_accuracy(p, dataset, limit=limit),
            "accuracy_int8": onnx_accuracy(out, dataset, limit=limit),
            "calibration": {"source": f"training images of {dataset.name}", "samples": len(x),
                            "seed": seed}}


# ---- profiling int8 (used by hwnas.profile and hwnas.bundle) -----------------------------------------

def precision_entries(entries: Sequence, precisions: Sequence[str] = (FP32,),
                      calibration: Calibration | None = None) -> list:
    """``entries`` (:class:`hwnas.profile.Entry`, fp32) at each of ``precisions``: fp32 as
    they are; int8 ones with the tagged id, their own file (``*.int8.onnx``) and the
    calibration of networks."""
    out = []
    for p in precisions:
        out += list(entries) if p == FP32 else [dataclasses.replace(
            e, id=tag(e.id, p), file=e.file.removesuffix(".onnx") + f".{p}.onnx", precision=p,
            calibration=calibration or Calibration()) for e in entries]
    return out


#: blocks sit inside a network: dataset images are not their inputs, so they are calibrated
#: on random inputs of their shape (the scales do not change how long int8 kernels take)
BLOCK_CALIBRATION = Calibration(None, samples=4)


def export_quantized(e, path: Path) -> dict:
    """Write the int8 model of bundle entry ``e`` to ``path`` (weights included): its fp32
    model with real (random) weights, quantized. Networks are chained from their pieces
    (:func:`hwnas.bundle.compose_network`) exported with weights into a temporary folder."""
    from .bundle import compose_network
    from .export import export_piece

    if e.source is not None:
        fp32 = Path(e.source).read_bytes()
    elif e.kind == "block":
        fp32 = export_piece(e.piece)
    else:
        with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp:
            def full(p) -> Path:
                f = Path(tmp) / f"{p.key}.onnx"
                if not f.is_file():
                    export_piece(p, f)
                return f

            fp32 = compose_network(e.arch, full)
    cal = BLOCK_CALIBRATION if e.kind == "block" else (e.calibration or Calibration())
    return quantize_model(fp32, path, cal, what=split(e.id)[0][:60])


def provenance(calibration: Calibration | None) -> dict:
    """The ``quantization`` record of a table's provenance: settings and calibration."""
    import onnxruntime as ort

    return dict(SETTINGS, host_onnxruntime=ort.__version__,
                networks=(calibration or Calibration()).to_dict(),
                blocks=BLOCK_CALIBRATION.to_dict())


def check_table_calibration(table, precisions: Sequence[str], calibration: Calibration | None,
                            replace: bool = False) -> dict | None:
    """The ``quantization`` provenance of this profile run (None without int8); HwnasError
    if the table already holds int8 entries made with other settings or calibration."""
    if INT8 not in precisions:
        return None
    new = provenance(calibration)
    old = table.provenance.get("quantization")
    if replace or not isinstance(old, dict) or not table.has_precision(INT8):
        return new
    keys = [k for k in (*SETTINGS, "networks") if old.get(k) != new.get(k)]
    if keys:
        o, n = old.get(keys[0]), new.get(keys[0])
        raise HwnasError(f"the int8 entries of '{table.device}' were made with {keys[0]} {o}, "
                         f"this run would use {n}; profile with the same --data/--calibration "
                         "settings, or --replace to start a new table")
    return new
