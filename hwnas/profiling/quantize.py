"""Static int8 quantization of ONNX models on the host (onnxruntime.quantization).

One setting everywhere (``hwnas quantize``, ``hwnas profile --precision int8``): the model
is pre-processed (``quant_pre_process``: shape inference and onnxruntime's graph
optimisation, which folds the exporter's Identity nodes so every bias is an initializer),
then ``quantize_static`` writes a QDQ model with per-channel int8 weights and uint8
activations in the int8 format of the target CPU (:mod:`hwnas.onboard.isa`: full-range U8S8
where onnxruntime's kernels cannot saturate, 7-bit weights (``reduce_range``) on x86 without
VNNI and on devices of unknown features, or U8U8), calibrated (MinMax) on a few inputs at the
model's input resolution: images
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

from ..errors import HwnasError
from ..io import atomic_write_bytes
from ..onboard.isa import FORMATS, SAFE_FORMAT
from ..onboard.isa import choose_format as _choose
from ..onboard.isa import detect as detect_isa
from .precision import FP32, INT8, split, tag

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 16
#: what :func:`quantize_model` does, as recorded in a table's provenance (``quantization``);
#: ``weights`` and ``activations`` as in the int8 format (:func:`format_settings`)
SETTINGS = {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "weights": "int8 per-channel", "activations": "uint8", "calibrate": "MinMax",
            "preprocess": "quant_pre_process"}
#: the provenance keys two int8 entries of one table must agree on (an old record without
#: ``int8_format`` was full-range U8S8, all hwnas made before formats were chosen per CPU)
COMPARED = (*SETTINGS, "int8_format", "networks")

__all__ = ["Calibration", "ArrayReader", "DEFAULT_SAMPLES", "SETTINGS", "FORMATS", "model_input",
           "quantize_model", "quantized_nodes", "precision_entries", "export_quantized",
           "provenance", "check_table_calibration", "onnx_accuracy", "int8_accuracy",
           "format_settings", "device_format", "quantization_differs", "int8_numerics"]


def format_settings(fmt: str) -> dict[str, str]:
    """SETTINGS with the weights and activations of int8 format ``fmt``."""
    f = FORMATS[fmt]
    w = f"{f['weights']} per-channel" + (", 7-bit (reduce_range)" if f["reduce_range"] else "")
    return dict(SETTINGS, weights=w, activations=f["activations"], int8_format=fmt)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise HwnasError(f"unknown int8 format '{fmt}' (known: {', '.join(FORMATS)}, or auto)")
    return fmt


def device_format(isa: dict | None = None, probe: dict | None = None) -> str:
    """The int8 format for a device: what its ``hwnas device check`` probe chose (it measures
    saturation), else what its ISA record implies, else the format exact everywhere."""
    if isinstance(probe, dict) and probe.get("format") in FORMATS:
        return probe["format"]
    if isinstance(isa, dict) and isa.get("int8"):
        return _choose(isa)
    return SAFE_FORMAT


def resolve_format(requested: str = "auto", *, info: dict | None = None, table=None,
                   local: bool = False) -> str:
    """The int8 format to quantize in: ``requested`` unless "auto"; else the device's as its
    check ``info`` (``run.py --check``'s INFO: ISA and probe) says, else as its ``table`` says
    (the format of its int8 entries, then its recorded ISA), else this host's when the device
    is ``local``, else the format exact on every CPU."""
    if requested != "auto":
        return check_format(requested)
    if isinstance(info, dict) and (info.get("isa") or info.get("int8_qdq")):
        return device_format(info.get("isa"), info.get("int8_qdq"))
    prov = getattr(table, "provenance", None) or {}
    q = prov.get("quantization")
    if isinstance(q, dict) and table.has_precision(INT8):
        return q.get("int8_format") or "u8s8"
    if isinstance(prov.get("isa"), dict):
        return device_format(prov["isa"])
    return device_format(detect_isa()) if local else SAFE_FORMAT


def with_device_format(calibration, requested: str, device: str, table, info: dict | None,
                       local: bool) -> object:
    """``calibration`` (a :class:`Calibration`) with the int8 format resolved for ``device``
    from its check ``info`` (None: not reached), its latency ``table`` and whether it is this
    machine (:func:`resolve_format`); logs which and why."""
    from dataclasses import replace as dc_replace

    fmt = resolve_format(requested, info=info, table=table, local=local)
    isa = (info or {}).get("isa") or table.provenance.get("isa")
    log.debug("int8 format %s for '%s' (%s)", fmt, device,
             "asked for" if requested != "auto" else f"its CPU: {(isa or {}).get('int8', 'unknown')}")
    return dc_replace(calibration or Calibration(), format=fmt)


def quantization_differs(old: dict, new: dict) -> str | None:
    """The first key of :data:`COMPARED` on which two ``quantization`` records differ."""
    for k in COMPARED:
        o, n = old.get(k), new.get(k)
        if k == "int8_format":
            o, n = o or "u8s8", n or "u8s8"
        if o != n:
            return k
    return None


def int8_numerics(fmt: str, device_isa: dict | None = None) -> dict:
    """How to compute int8 accuracy on this host for a device quantized in ``fmt``: with this
    host's int8 kernels where they compute what the device's do (``fmt`` cannot saturate, or
    neither CPU saturates, or both do), else with the unfused QDQ graph (each node in float: the
    exact quantized arithmetic, what a non-saturating device computes) -- ``{"host", "host_isa",
    "device_isa", "kernels": "int8" | "reference", "note": str | None}``."""
    from ..onboard.bench import cpu_model

    host = detect_isa()
    exact = FORMATS[fmt]["reduce_range"] or FORMATS[fmt]["weights"] == "uint8"
    hs = host.get("u8s8_saturates")
    ds = (device_isa or {}).get("u8s8_saturates") if isinstance(device_isa, dict) else None
    out = {"host": cpu_model(), "host_isa": host.get("int8"), "format": fmt,
           "device_isa": (device_isa or {}).get("int8") if isinstance(device_isa, dict) else None,
           "kernels": "int8", "note": None}
    if exact or hs is False and ds is not True:
        return out
    if hs is not False and ds is False:  # host saturates (or may), the device does not
        out["kernels"] = "reference"
        out["note"] = (f"this host ({host.get('int8')}) may saturate in {fmt} where the device "
                       f"({out['device_isa']}) does not: int8 accuracy computed with the exact "
                       "quantized arithmetic (unfused QDQ graph), not this host's int8 kernels")
        return out
    if hs is not ds:
        out["note"] = (f"int8 accuracy computed with this host's kernels ({host.get('int8')}); "
                       f"the device's ({out['device_isa'] or 'unknown'}) may differ in {fmt}")
    return out


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
    #: the int8 format (:data:`FORMATS`) the models are quantized in: the target CPU's
    format: str = SAFE_FORMAT

    def validate(self) -> Calibration:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise HwnasError(f"calibration samples must be a positive integer, got {self.samples!r}")
        check_format(self.format)
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
            from ..data import load_dataset

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

    from ..io import MAX_ONNX_BYTES, input_file

    try:
        if isinstance(model, bytes):
            return onnx.load_from_string(model)
        return onnx.load(str(input_file(model, "an ONNX model", MAX_ONNX_BYTES)))
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
                   inputs: np.ndarray | None = None, fmt: str | None = None) -> dict:
    """Quantize ``model`` (a path or ONNX bytes) to a static QDQ int8 model at ``output``
    (written atomically, only once it loads and runs in onnxruntime) in int8 format ``fmt``
    (default: ``calibration``'s), calibrated on ``calibration``'s inputs (or the given
    ``inputs``, N x C x H x W). Returns what was done: ``{"output", "quantized",
    "calibration", "input_shape", "int8_format"}``."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    cal = (calibration or Calibration()).validate()
    fmt = check_format(fmt or cal.format)
    f = FORMATS[fmt]
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
                            weight_type=QuantType.QUInt8 if f["weights"] == "uint8"
                            else QuantType.QInt8, reduce_range=f["reduce_range"])
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
            "input_shape": list(shape), "int8_format": fmt}


# ---- accuracy after quantization (retrain) -----------------------------------------------------------

def onnx_accuracy(path: str | os.PathLike, dataset, split: str = "test",
                  limit: int | None = None, kernels: str = "int8") -> float:
    """Top-1 accuracy of the ONNX model at ``path`` on ``dataset``'s ``split`` (a
    :class:`hwnas.data.Dataset`, at the model's input resolution), run with onnxruntime on
    this machine, one image at a time (the exported models have batch 1), 1 thread.
    ``kernels="reference"`` runs the graph unoptimised (a QDQ model then computes the exact
    quantized arithmetic in float instead of with this CPU's int8 kernels)."""
    import onnxruntime as ort

    m = _load(path, str(path))
    name, shape = model_input(m, str(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    if kernels == "reference":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
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
                  samples: int = 64, seed: int = 0, limit: int | None = None,
                  fmt: str = SAFE_FORMAT, device_isa: dict | None = None) -> dict:
    """Quantize the trained model at ``path`` (calibrated on ``samples`` training images
    of ``dataset``) in int8 format ``fmt`` (the device's) to ``output`` (default
    ``<path stem>.int8.onnx``) and measure the test accuracy of both with onnxruntime on this
    host, computing int8 as the device (``device_isa``) would (:func:`int8_numerics`):
    ``{"int8_onnx", "accuracy_fp32", "accuracy_int8", "calibration", "numerics"}``. For
    ``hwnas retrain``: the real quantized model, not a simulation."""
    p = Path(path)
    out = Path(output) if output else p.with_name(p.name.removesuffix(".onnx") + ".int8.onnx")
    _, shape = model_input(_load(p, str(p)), str(p))
    x = dataset.minibatch(samples, seed, resolution=shape[-1]).numpy()
    quantize_model(p, out, inputs=x, fmt=fmt)
    num = int8_numerics(fmt, device_isa)
    if num["note"]:
        log.warning("%s: %s", p.name, num["note"])
    return {"int8_onnx": str(out), "accuracy_fp32": onnx_accuracy(p, dataset, limit=limit),
            "accuracy_int8": onnx_accuracy(out, dataset, limit=limit, kernels=num["kernels"]),
            "calibration": {"source": f"training images of {dataset.name}", "samples": len(x),
                            "seed": seed}, "numerics": num}


# ---- profiling int8 (used by hwnas.profiling.profile and hwnas.profiling.bundle) -----------------------------------------

def precision_entries(entries: Sequence, precisions: Sequence[str] = (FP32,),
                      calibration: Calibration | None = None) -> list:
    """``entries`` (:class:`hwnas.profiling.profile.Entry`, fp32) at each of ``precisions``: fp32 as
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
    (:func:`hwnas.profiling.bundle.compose_network`) exported with weights into a temporary folder."""
    from ..export import export_piece
    from .bundle import compose_network

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
    net = e.calibration or Calibration()
    cal = BLOCK_CALIBRATION if e.kind == "block" else net
    return quantize_model(fp32, path, cal, what=split(e.id)[0][:60], fmt=net.format)


def provenance(calibration: Calibration | None) -> dict:
    """The ``quantization`` record of a table's provenance: settings and calibration."""
    import onnxruntime as ort

    cal = calibration or Calibration()
    return dict(format_settings(cal.format), host_onnxruntime=ort.__version__,
                networks=cal.to_dict(), blocks=BLOCK_CALIBRATION.to_dict())


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
    key = quantization_differs(old, new)
    if key:
        o, n = old.get(key) or ("u8s8" if key == "int8_format" else None), new.get(key)
        raise HwnasError(f"the int8 entries of '{table.device}' were made with {key} {o}, "
                         f"this run would use {n}; profile with the same --data/--calibration/"
                         "--int8-format settings, or --replace to start a new table")
    return new
