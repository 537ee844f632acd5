"""A board's onnxruntime and static QDQ int8 models: the probe conv of ``hwnas device check``
(built on the device with numpy, as hwnas.profiling.quantize makes it), and ``hwnas profile
--precision int8`` on a device whose onnxruntime cannot run QDQ models (faked: a python
wrapper whose onnxruntime refuses every model with QuantizeLinear): one line, exit 2, the
fp32 measurements kept."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, put_space

from hwnas.onboard.isa import FORMATS, choose_format, detect
from hwnas.onboard.qdq import conv_model, error_steps, probe
from hwnas.profiling.lut import LatencyTable

NO_QDQ = '''\
"""Test fake: an onnxruntime without static QDQ int8 kernels."""
import onnxruntime as _ort

_Real = _ort.InferenceSession


class _NoQDQ(_Real):
    def __init__(self, model, *args, **kwargs):
        data = bytes(model) if isinstance(model, (bytes, bytearray)) else open(model, "rb").read()
        if b"QuantizeLinear" in data:
            raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an "
                               "implementation for QuantizeLinear(17) node with name 'xq'")
        super().__init__(model, *args, **kwargs)


_ort.InferenceSession = _NoQDQ
'''


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_probe_conv_is_the_qdq_model_hwnas_quantize_makes(tmp_path, fmt):
    from hwnas.profiling.quantize import quantize_model

    fp32, int8 = (onnx.load_from_string(conv_model(q, channels=8, size=12, fmt=fmt))
                  for q in (False, True))
    for m in (fp32, int8):
        onnx.checker.check_model(m, full_check=True)
    ref = tmp_path / "ref.int8.onnx"
    quantize_model(conv_model(False, channels=8, size=12), ref, fmt=fmt)
    ref = onnx.load(str(ref))
    assert Counter(n.op_type for n in int8.graph.node) == Counter(n.op_type for n in ref.graph.node)

    def dtypes(m):  # the dtype of each DequantizeLinear's quantized input, and the weights' axis
        inits = {i.name: i for i in m.graph.initializer}
        out = []
        for n in m.graph.node:
            if n.op_type == "DequantizeLinear":
                t = inits.get(n.input[0])
                axis = next((a.i for a in n.attribute if a.name == "axis"), None)
                out.append((t.data_type if t is not None else "activation", axis,
                            list(t.dims)[:1] if t is not None else None))
        return Counter(map(str, out))

    def weight_range(m):  # the largest |quantized weight - zero point| of the conv's weights
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
        w = next(n for n in m.graph.node if n.op_type == "DequantizeLinear"
                 and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 4)
        q, zp = inits[w.input[0]].astype(int), inits[w.input[2]].astype(int)
        return int(np.abs(q - zp.reshape(-1, 1, 1, 1)).max())

    assert dtypes(int8) == dtypes(ref)  # per-channel weights, int32 bias, uint8 activations
    assert int8.opset_import[0].version == ref.opset_import[0].version
    # 7-bit weights for u8s8-rr (onnxruntime's reduce_range), 8-bit otherwise, in both models
    assert weight_range(int8) == (64 if fmt == "u8s8-rr" else 127)
    top = {"u8s8-rr": 64, "u8s8": 127, "u8u8": 255}[fmt]  # onnxruntime's uint8 weights: asymmetric
    assert weight_range(int8) // 2 < weight_range(ref) <= top


def test_the_format_chosen_for_this_cpu_computes_exactly():
    """On any CPU (AVX2-only, AVX-512, VNNI, ARM): the int8 format hwnas picks for it runs the
    probe conv within one output step of exact integer arithmetic (what the unfused QDQ graph
    computes); full-range U8S8 does so exactly where the CPU's features say it cannot saturate."""
    import onnxruntime as ort

    isa = detect()
    fmt = choose_format(isa)
    assert error_steps(fmt, channels=8, size=12) <= 1
    assert error_steps(fmt) <= 1  # the 32-channel probe
    u8s8 = error_steps("u8s8")
    if isa["u8s8_saturates"] is False:
        assert u8s8 <= 1, f"{isa}: U8S8 saturated on a CPU predicted not to"
    # and the models' outputs are close to fp32's: quantization error, not saturation
    x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 12, 12)).astype(np.float32)
    y32, y8 = (ort.InferenceSession(conv_model(q, channels=8, size=12, fmt=fmt),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
               for q in (False, True))
    assert np.abs(y8 - y32).max() < 0.1 < np.abs(y32).max()


def test_probe_reports_saturation_as_this_cpu_has_it():
    """The check's probe measures each format; on a CPU whose U8S8 saturates (this project's
    AVX2-only hosts) it says so and picks a format that does not."""
    p = probe(rounds=0)
    assert p["runs"], p
    steps = p["error_steps"]
    assert set(steps) == set(FORMATS)
    assert steps["u8s8-rr"] <= 1 and steps["u8u8"] <= 1
    assert p["saturates"] == (steps["u8s8"] > 1.5)
    assert steps[p["format"]] <= 1
    if p["isa"]["u8s8_saturates"]:
        assert p["format"] != "u8s8"


def test_probe_runs_here():
    p = probe(rounds=2, runs=3)
    assert p["runs"] and p["error"] is None
    assert p["fp32_ms"] > 0 and p["int8_ms"] > 0
    assert p["speedup"] == pytest.approx(p["fp32_ms"] / p["int8_ms"], rel=0.01)


@pytest.fixture
def no_qdq(tmp_path):
    """A python for a local device whose onnxruntime cannot run QDQ models."""
    fake = tmp_path / "fake_site"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(NO_QDQ)
    w = tmp_path / "python-no-qdq"
    w.write_text(f'#!/bin/sh\nPYTHONPATH="{fake}${{PYTHONPATH:+:$PYTHONPATH}}" exec '
                 f'"{sys.executable}" "$@"\n')
    w.chmod(0o755)
    return w


def test_device_check_reports_qdq(cli, no_qdq):
    cli("device", "add", "ok", "--target", "local", check=0)
    line = next(x for x in cli("device", "check", "ok", check=0).stdout.splitlines()
                if x.startswith("int8 QDQ models"))
    assert "run" in line and "than fp32" in line and "FAIL" not in line
    cli("device", "add", "old", "--target", "local", "--python", no_qdq, check=0)
    r = cli("device", "check", "old", check=0)  # informational: the board can still do fp32
    line = next(x for x in r.stdout.splitlines() if x.startswith("int8 QDQ models"))
    assert "FAIL" in line and "QuantizeLinear" in line and "--precision fp32" in line


def test_profile_int8_on_a_board_without_qdq_keeps_fp32(cli, home, no_qdq):
    put_space(home)
    from hwnas.space import load_space

    tiny = load_space("tiny")
    cli("device", "add", "old", "--target", "local", "--python", no_qdq, check=0)
    args = ("profile", "--device", "old", "--space", "tiny", "-r", "32", "--networks", "1",
            "--quick")
    r = cli(*args, "--precision", "fp32,int8")
    # this machine's own load warning (a shared CI box) is not part of the error
    r.stderr = "\n".join(x for x in r.stderr.splitlines() if "1-minute load average" not in x)
    assert_one_line_error(r, "device 'old': its onnxruntime", "cannot run static QDQ int8 models",
                          "QuantizeLinear", "--precision fp32", "onnxruntime >= ")
    t = LatencyTable.load("old")
    assert set(t.blocks) == {p.key for p in tiny.pieces(32)} and len(t.networks) == 1
    assert not t.has_precision("int8")
    # nothing measured is lost: fp32 again has nothing left to measure
    r = cli(*args, "--precision", "fp32", check=0)
    assert "added 0 blocks and 0 networks" in r.stdout


def test_lut_import_of_a_hand_run_int8_bundle_records_the_calibration(cli, home, tmp_path):
    """bundle-only + run by hand + lut import leaves the int8 provenance a direct profile
    run records; results quantized otherwise than the table's int8 entries are refused."""
    import json
    import subprocess

    from hwnas.profiling.quantize import provenance

    put_space(home)
    out = tmp_path / "pi-bundle"
    cli("profile", "--device", "pi", "--space", "tiny", "-r", "32", "--networks", "1",
        "--precision", "fp32,int8", "--bundle-only", out, "--quick", check=0)
    man = json.loads((out / "manifest.json").read_text())
    assert man["quantization"]["networks"] == {"source": "random", "samples": 16, "seed": 0}
    assert {e.get("precision") for e in man["entries"] if e["id"].endswith("@int8")} == {"int8"}
    board = tmp_path / "board"  # "on the board": a copy with only the bundle, plain python
    subprocess.run(["cp", "-r", str(out), str(board)], check=True)
    rr = subprocess.run([sys.executable, "run.py"], cwd=board, capture_output=True, text=True,
                        timeout=300)
    assert rr.returncode == 0, rr.stderr
    lines = (board / "results.jsonl").read_text().splitlines()
    # another calibration / no record at all, while the table is still empty: kept for later
    other, bare = [], []
    for line in lines:
        rec = json.loads(line)
        if rec["type"] == "provenance":
            other.append(json.dumps(dict(rec, quantization=dict(
                rec["quantization"], networks={"source": "dataset:digits", "samples": 16,
                                               "seed": 0}))))
            rec.pop("quantization")
            bare.append(json.dumps(rec))
        else:
            other.append(line)
            bare.append(line)
    (tmp_path / "other.jsonl").write_text("\n".join(other) + "\n")
    (tmp_path / "bare.jsonl").write_text("\n".join(bare) + "\n")
    assert_one_line_error(cli("lut", "import", tmp_path / "bare.jsonl", "--device", "pi"),
                          "int8 results without a record of how they were quantized")
    assert not LatencyTable.exists("pi")

    cli("lut", "import", board, "--device", "pi", check=0)
    doc = json.loads((home / "latency_tables" / "pi" / "blocks.json").read_text())
    q = doc["provenance"]["quantization"]
    assert q == provenance(None)  # what hwnas profile --precision fp32,int8 records
    assert LatencyTable.load("pi").has_precision("int8")
    files = {n: (home / "latency_tables" / "pi" / n).read_bytes()
             for n in ("blocks.json", "networks.json")}
    r = cli("lut", "import", tmp_path / "other.jsonl", "--device", "pi")
    assert_one_line_error(r, "int8 entries of 'pi' were made with networks", "dataset:digits",
                          "--replace")
    for n, data in files.items():
        assert (home / "latency_tables" / "pi" / n).read_bytes() == data
    # --replace: a new table with the other calibration recorded
    cli("lut", "import", tmp_path / "other.jsonl", "--device", "pi", "--replace", check=0)
    q = json.loads((home / "latency_tables" / "pi" / "blocks.json").read_text())["provenance"]
    assert q["quantization"]["networks"]["source"] == "dataset:digits"


def test_qdq_line_says_what_failed():
    from hwnas.commands.device import qdq_line

    assert qdq_line({"runs": False, "error": "int8: RuntimeError: no QuantizeLinear(17)"}) \
        .startswith("FAIL: this onnxruntime cannot run static QDQ int8 models (int8: ")
    assert "fp32 probe conv either" in qdq_line({"runs": False, "error": "fp32: opset 17"})
    assert "1.25x slower than fp32" in qdq_line({"runs": True, "fp32_ms": 0.4, "int8_ms": 0.5,
                                                 "speedup": 0.8, "conv": "c"})
