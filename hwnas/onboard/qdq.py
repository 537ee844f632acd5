"""Can this board's onnxruntime run static QDQ int8 models? (``run.py --check``)

:func:`probe` builds, with numpy and a few lines of protobuf encoding (the board has no
``onnx`` package), the model ``hwnas.profiling.quantize`` makes of one convolution -- QuantizeLinear /
DequantizeLinear around a Conv, per-channel int8 weights (DequantizeLinear axis 0), an int32
bias, uint8 activations, opset 17 -- and the same convolution in fp32; it runs both with
this onnxruntime and times them interleaved (informational: one small conv says little
about a network). numpy + onnxruntime + the standard library only.
"""

from __future__ import annotations

import time

from .isa import FORMATS, choose_format, detect

__all__ = ["PROBE", "Y_SCALE", "conv_model", "error_steps", "probe"]

#: the probe convolution: channels, kernel, input height/width
PROBE = {"channels": 32, "kernel": 3, "size": 28}
OPSET, IR_VERSION = 17, 8
#: the probe's output quantization step: errors are counted in these steps
Y_SCALE = 8 / 255
FLOAT, UINT8, INT8, INT32 = 1, 2, 3, 6  # onnx TensorProto data types


# ---- protobuf wire format (the few ONNX messages a model needs) ---------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64: two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _bytes(field: int, b: bytes | str) -> bytes:
    b = b.encode() if isinstance(b, str) else b
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def _tensor(name: str, arr) -> bytes:
    import numpy as np

    dtype = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8,
             np.dtype(np.int8): INT8, np.dtype(np.int32): INT32}[arr.dtype]
    return (b"".join(_int(1, d) for d in arr.shape) + _int(2, dtype) + _bytes(8, name)
            + _bytes(9, np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()))


def _value_info(name: str, shape) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, FLOAT) + _bytes(2, dims)))


def _node(op: str, inputs, outputs, **attrs) -> bytes:
    b = b"".join(_bytes(1, x) for x in inputs) + b"".join(_bytes(2, x) for x in outputs)
    b += _bytes(3, outputs[0] + "_" + op) + _bytes(4, op)
    for k, v in attrs.items():
        if isinstance(v, (list, tuple)):  # AttributeProto: ints (8), type INTS (7)
            b += _bytes(5, _bytes(1, k) + b"".join(_int(8, x) for x in v) + _int(20, 7))
        else:  # i (3), type INT (2)
            b += _bytes(5, _bytes(1, k) + _int(3, int(v)) + _int(20, 2))
    return b


def _model(nodes, inits, inp, out, name: str) -> bytes:
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name)
             + b"".join(_bytes(5, t) for t in inits) + _bytes(11, inp) + _bytes(12, out))
    opset = _bytes(1, "") + _int(2, OPSET)
    return (_int(1, IR_VERSION) + _bytes(2, "hwnas-device-probe") + _bytes(7, graph)
            + _bytes(8, opset))


# ---- the probe models -------------------------------------------------------------------------------

def conv_model(int8: bool, channels: int = PROBE["channels"], kernel: int = PROBE["kernel"],
               size: int = PROBE["size"], seed: int = 0, fmt: str = "u8s8") -> bytes:
    """ONNX bytes of a ``channels`` -> ``channels`` ``kernel`` x ``kernel`` convolution on a
    ``size`` x ``size`` input: fp32, or (``int8``) its static QDQ form as hwnas.profiling.quantize writes
    it in int8 format ``fmt`` (:data:`hwnas.onboard.isa.FORMATS`: per-channel symmetric int8
    weights in [-127, 127], or [-64, 64] with ``u8s8-rr``; uint8 weights with zero point 128
    with ``u8u8``; scales from the seeded random weights; an input in [-1, 1], an output in
    [-4, 4])."""
    import numpy as np

    rng = np.random.default_rng(seed)
    c, k = channels, kernel
    w = (rng.standard_normal((c, c, k, k)) * 0.1).astype(np.float32)
    b = (rng.standard_normal(c) * 0.01).astype(np.float32)
    shape = (1, c, size, size)
    pads = [k // 2] * 4
    inp, out = _value_info("x", shape), _value_info("y", shape)
    if not int8:
        return _model([_node("Conv", ["x", "W", "b"], ["y"], pads=pads)],
                      [_tensor("W", w), _tensor("b", b)], inp, out, "conv_fp32")
    x_scale, y_scale = np.float32(2 / 255), np.float32(Y_SCALE)
    if fmt not in FORMATS:
        raise ValueError(f"unknown int8 format {fmt!r} (known: {', '.join(FORMATS)})")
    qmax = 64 if FORMATS[fmt]["reduce_range"] else 127
    w_scale = (np.abs(w).reshape(c, -1).max(axis=1) / qmax).astype(np.float32)
    w_q = np.clip(np.round(w / w_scale[:, None, None, None]), -qmax, qmax)
    w_zp = np.zeros(c, np.int8)
    if FORMATS[fmt]["weights"] == "uint8":
        w_q, w_zp = w_q + 128, np.full(c, 128, np.uint8)
    w_q = w_q.astype(w_zp.dtype)
    b_scale = (x_scale * w_scale).astype(np.float32)
    b_q = np.round(b / b_scale).astype(np.int32)
    inits = [_tensor("x_scale", np.array(x_scale)), _tensor("x_zero_point", np.array(128, np.uint8)),
             _tensor("y_scale", np.array(y_scale)), _tensor("y_zero_point", np.array(128, np.uint8)),
             _tensor("W_quantized", w_q), _tensor("W_scale", w_scale),
             _tensor("W_zero_point", w_zp),
             _tensor("b_quantized", b_q), _tensor("b_scale", b_scale),
             _tensor("b_zero_point", np.zeros(c, np.int32))]
    nodes = [_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["xq"]),
             _node("DequantizeLinear", ["xq", "x_scale", "x_zero_point"], ["xd"]),
             _node("DequantizeLinear", ["W_quantized", "W_scale", "W_zero_point"], ["wd"], axis=0),
             _node("DequantizeLinear", ["b_quantized", "b_scale", "b_zero_point"], ["bd"], axis=0),
             _node("Conv", ["xd", "wd", "bd"], ["yc"], pads=pads),
             _node("QuantizeLinear", ["yc", "y_scale", "y_zero_point"], ["yq"]),
             _node("DequantizeLinear", ["yq", "y_scale", "y_zero_point"], ["y"])]
    return _model(nodes, inits, inp, out, "conv_qdq_int8")


def _first_line(ex: Exception) -> str:
    s = (str(ex).strip().splitlines() or [type(ex).__name__])[0]
    return s if len(s) <= 200 else s[:197] + "..."


def _input(channels: int, size: int):
    import numpy as np

    return np.random.default_rng(1).uniform(-1, 1, (1, channels, size, size)).astype(np.float32)


def error_steps(fmt: str, channels: int = PROBE["channels"], size: int = PROBE["size"],
                threads: int = 1) -> float:
    """How far this onnxruntime's int8 kernels land from exact integer arithmetic on the probe
    conv in int8 format ``fmt``, in output quantization steps (:data:`Y_SCALE`): the same QDQ
    model run with its graph optimised (QuantizeLinear/DequantizeLinear around the Conv fused
    into an integer convolution, as in every real run) against run unoptimised (each node on
    its own in float: the exact result of the quantized arithmetic, up to float rounding).
    Exact kernels give at most 1 step (a rounding tie); saturating ones many more."""
    import numpy as np
    import onnxruntime as ort

    model = conv_model(True, channels=channels, size=size, fmt=fmt)
    x = _input(channels, size)
    out = []
    for level in (ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = max(1, int(threads or 1)), 1
        so.graph_optimization_level = level
        out.append(ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
                   .run(None, {"x": x})[0])
    return round(float(np.abs(out[0] - out[1]).max()) / Y_SCALE, 3)


def probe(threads: int = 1, rounds: int = 5, runs: int = 10) -> dict:
    """Run the int8 QDQ probe conv and its fp32 twin with this onnxruntime: ``{"runs": bool,
    "error": first line or None, "isa": :func:`hwnas.onboard.isa.detect`, "format": the int8
    format for this CPU, "error_steps": {format: :func:`error_steps`}, "saturates": whether
    full-range U8S8 landed over 1 step from exact, "fp32_ms", "int8_ms": the fastest of
    ``rounds`` interleaved means of ``runs`` runs (in ``format``), "speedup": fp32 / int8,
    "conv": what was timed}``. A measured saturation overrides what the features predict."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = max(1, int(threads or 1)), 1
    conv = f"{PROBE['channels']}ch {PROBE['kernel']}x{PROBE['kernel']} conv at {PROBE['size']}"
    isa = detect()
    out: dict = {"runs": False, "error": None, "conv": conv, "isa": isa,
                 "format": isa["int8_format"]}
    x = _input(PROBE["channels"], PROBE["size"])
    sessions = {}
    for key in ("fp32", "int8"):
        try:
            s = ort.InferenceSession(conv_model(key == "int8", fmt=out["format"]), so,
                                     providers=["CPUExecutionProvider"])
            y = s.run(None, {"x": x})[0]
            if y.shape != x.shape or not np.all(np.isfinite(y)):
                raise RuntimeError(f"wrong output {y.shape}")
        except Exception as ex:  # noqa: BLE001 - onnxruntime raises many types
            out["error"] = f"{key}: {type(ex).__name__}: {_first_line(ex)}"
            return out
        sessions[key] = s
    out["runs"] = True
    try:
        out["error_steps"] = {f: error_steps(f, threads=threads) for f in FORMATS}
    except Exception as ex:  # noqa: BLE001 - informational; the timing below still counts
        out["error_steps"] = {"error": f"{type(ex).__name__}: {_first_line(ex)}"}
    sat = out["error_steps"].get("u8s8")
    if isinstance(sat, float):
        out["saturates"] = sat > 1.5
        if out["saturates"] and out["format"] == "u8s8":  # measured beats predicted
            out["format"] = choose_format("x86-avx2")
    if rounds < 1:  # only whether it runs
        return out
    best = {k: float("inf") for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            for _ in range(runs):
                s.run(None, {"x": x})
            best[k] = min(best[k], (time.perf_counter() - t0) * 1000 / runs)
    out.update(fp32_ms=round(best["fp32"], 4), int8_ms=round(best["int8"], 4),
               speedup=round(best["fp32"] / best["int8"], 3) if best["int8"] > 0 else None)
    return out
