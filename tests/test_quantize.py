"""hwnas quantize / hwnas.profiling.quantize: static QDQ int8 models, bad input, precision keys."""

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error

from hwnas.errors import HwnasError
from hwnas.profiling.precision import parse_precisions, split, tag
from hwnas.profiling.quantize import Calibration, quantize_model, quantized_nodes


def _tiny_onnx(path, channels=3, res=16, seed=0):
    import torch
    from torch import nn

    from hwnas.export import export_module

    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 4, 1),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    export_module(m, torch.randn(1, channels, res, res), path)
    return path


def _run(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_quantize_model_is_qdq_per_channel_uint8(tmp_path):
    src = _tiny_onnx(tmp_path / "m.onnx")
    r = quantize_model(src, tmp_path / "m8.onnx", Calibration(samples=4))
    q = onnx.load(str(tmp_path / "m8.onnx"))
    assert quantized_nodes(q) == r["quantized"] > 0
    inits = {i.name: i for i in q.graph.initializer}
    ops = [n for n in q.graph.node]
    # the first conv's weight: int8, one scale per output channel
    wdq = [n for n in ops if n.op_type == "DequantizeLinear" and n.input[0] in inits
           and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(inits[n.input[0]].dims) == 4]
    assert wdq and list(inits[wdq[0].input[1]].dims) == [8]
    # activations are uint8 (their zero points)
    aq = [n for n in ops if n.op_type == "QuantizeLinear"]
    assert all(inits[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in aq)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16), dtype=np.float32)
    a, b = _run(src, x), _run(tmp_path / "m8.onnx", x)
    assert a.shape == b.shape and np.abs(a - b).max() < 0.1 * (np.abs(a).max() + 1e-3) + 0.05
    assert r["calibration"]["source"] == "random"


def test_calibration_from_dataset_and_npy_shapes(tmp_path):
    x = Calibration("digits", samples=5).arrays((1, 3, 12, 12))
    assert x.shape == (5, 3, 12, 12) and x.dtype == np.float32 and x.std() > 0
    np.save(tmp_path / "good.npy", np.zeros((3, 3, 12, 12), np.float32))
    assert Calibration(str(tmp_path / "good.npy")).arrays((1, 3, 12, 12)).shape == (3, 3, 12, 12)
    np.save(tmp_path / "bad.npy", np.zeros((3, 1, 12, 12), np.float32))
    with pytest.raises(HwnasError, match="shape"):
        Calibration(str(tmp_path / "bad.npy")).arrays((1, 3, 12, 12))


def test_cli_quantize_and_bad_input(cli, home):
    src = _tiny_onnx(home / "m.onnx")
    r = cli("quantize", src, "--data", "digits", "--samples", "4", "-o", home / "m8.onnx", check=0)
    assert "int8" in r.stdout and "dataset:digits" in r.stdout
    assert quantized_nodes(onnx.load(str(home / "m8.onnx"))) > 0
    out = home / "keep.onnx"
    out.write_bytes(b"old")
    # calibration data of the wrong shape
    np.save(home / "bad.npy", np.zeros((2, 3, 8, 8), np.float32))
    assert_one_line_error(cli("quantize", src, "--data", home / "bad.npy", "-o", out), "shape")
    # a model onnxruntime cannot quantize (an operator it does not know)
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"]), helper.make_node("Frobnicate", ["y"], ["z"],
                                                                       domain="acme")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 3, 3], [0.1] * 54)])
    bad = home / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("acme", 1)]), str(bad))
    assert_one_line_error(cli("quantize", bad, "-o", out), "cannot quantize")
    (home / "junk.onnx").write_bytes(b"not onnx")
    assert_one_line_error(cli("quantize", home / "junk.onnx", "-o", out), "not a readable ONNX")
    assert out.read_bytes() == b"old"


def test_cli_quantize_int8_formats(cli, home):
    """auto: this machine's format (or --device's, from its table's ISA record); asked-for
    formats show in the weights: 7-bit int8 (u8s8-rr), uint8 (u8u8)."""
    from hwnas.onboard.isa import classify, detect

    src = _tiny_onnx(home / "m.onnx")

    def weights(path):
        m = onnx.load(str(path))
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
        return next(inits[n.input[0]] for n in m.graph.node if n.op_type == "DequantizeLinear"
                    and n.input[0] in inits and inits[n.input[0]].ndim == 4)

    r = cli("quantize", src, "-o", home / "a.onnx")
    assert f"int8 format {detect()['int8_format']}" in r.stdout
    cli("quantize", src, "-o", home / "rr.onnx", "--int8-format", "u8s8-rr")
    w = weights(home / "rr.onnx")
    assert w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 64
    cli("quantize", src, "-o", home / "uu.onnx", "--int8-format", "u8u8")
    assert weights(home / "uu.onnx").dtype == np.uint8
    cli("device", "add", "pi5", "--target", "ssh://pi@127.0.0.1:1")
    from hwnas.profiling.lut import LatencyTable

    LatencyTable("pi5", provenance={"isa": classify("aarch64", ["asimd", "asimddp"])}).save()
    r = cli("quantize", src, "-o", home / "pi.onnx", "--device", "pi5")
    assert "int8 format u8s8" in r.stdout and "u8s8-rr" not in r.stdout
    assert np.abs(weights(home / "pi.onnx").astype(int)).max() == 127


def test_precision_keys():
    assert tag("mb_h8_i8_o8_k3_s1_m8_q0_r6_res1", "int8").endswith("@int8")
    assert split(tag("k", "int8")) == ("k", "int8") and split("k") == ("k", "fp32")
    assert tag("k", "fp32") == "k"
    assert parse_precisions("fp32, int8,int8") == ("fp32", "int8")
    with pytest.raises(HwnasError):
        parse_precisions("int4")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small CNN trained on digits at 16 px, exported: (ONNX path, dataset, torch accuracy)."""
    import torch
    from torch import nn

    from hwnas.data import load_dataset
    from hwnas.export import export_module

    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = load_dataset("digits", 16)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU6(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    opt = torch.optim.Adam(m.parameters(), 0.01)
    for _ in range(4):
        for xb, yb in ds.batches("train", 64, shuffle=True, generator=torch.Generator().manual_seed(0)):
            opt.zero_grad()
            nn.functional.cross_entropy(m(xb), yb).backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        xt, yt = ds.split("test")
        torch_acc = float((m(ds.prepare(xt)).argmax(1) == yt).float().mean())
    path = tmp_path_factory.mktemp("trained") / "m.onnx"
    export_module(m, torch.randn(1, 3, 16, 16), path)
    return path, ds, torch_acc


#: the devices int8 accuracy is computed for, on whatever CPU runs the test
DEVICES = {"this host": None, "pi5": ("aarch64", ["asimd", "asimddp"]),
           "pi4": ("aarch64", ["asimd"]), "avx2": ("x86_64", ["avx2"]),
           "vnni": ("x86_64", ["avx2", "avx512f", "avx512bw", "avx512_vnni"])}


@pytest.mark.slow
@pytest.mark.parametrize("device", list(DEVICES))
def test_int8_accuracy_of_a_trained_model(trained, tmp_path, device):
    """Accuracy after quantization is measured on the real int8 ONNX model with onnxruntime;
    the fp32 ONNX accuracy equals torch's, and int8 costs little on a trained model -- for a
    device of any CPU, computed on any CPU: quantized in the device's format, computed with
    this host's int8 kernels only where they compute what the device's do (on an AVX2-only
    host, full-range U8S8 for a Pi 5 saturated: -6.4 pp before formats were chosen per CPU)."""
    from hwnas.onboard.isa import choose_format, classify, detect
    from hwnas.profiling.quantize import int8_accuracy

    path, ds, torch_acc = trained
    isa = detect() if DEVICES[device] is None else classify(*DEVICES[device])
    fmt = choose_format(isa)
    r = int8_accuracy(path, ds, output=tmp_path / "m.int8.onnx", samples=32, fmt=fmt,
                      device_isa=isa)
    assert r["accuracy_fp32"] == pytest.approx(torch_acc, abs=0.01)
    assert r["accuracy_fp32"] > 0.5  # trained: far above chance (0.1)
    assert abs(r["accuracy_int8"] - r["accuracy_fp32"]) < 0.05
    q = onnx.load(r["int8_onnx"])
    assert quantized_nodes(q) > 0 and r["calibration"]["samples"] == 32
    host = detect()
    # this host's kernels wherever they compute what the device's do
    if device == "this host" or fmt != "u8s8" or host["u8s8_saturates"] is False:
        assert r["numerics"]["kernels"] == "int8"
    elif host["u8s8_saturates"]:
        assert r["numerics"]["kernels"] == "reference" and r["numerics"]["note"]


def test_retrain_int8_quantizes_once_and_fills_the_columns(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from hwnas.data import load_dataset
    from hwnas.profiling import quantize
    from hwnas.profiling.lut import Stats
    from hwnas.retrain import int8 as retrain_int8

    (tmp_path / "models").mkdir()
    _tiny_onnx(tmp_path / "models" / "w1.onnx")  # 3 classes, untrained
    ds = load_dataset("digits", 16)
    q = retrain_int8.quantize_models({"w1": "models/w1.onnx"}, tmp_path, ds, samples=8,
                                     progress=False)["w1"]
    assert q["onnx_int8"] == "models/w1.int8.onnx" and (tmp_path / q["onnx_int8"]).is_file()
    calls = []
    real = quantize.int8_accuracy
    monkeypatch.setattr(quantize, "int8_accuracy", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = retrain_int8.quantize_models({"w1": "models/w1.onnx"}, tmp_path, ds, samples=8,
                                         progress=False)["w1"]
    assert again == q and not calls  # cached by the fp32 file's hash
    _tiny_onnx(tmp_path / "models" / "w1.onnx", seed=1)  # another model: quantized again
    retrain_int8.quantize_models({"w1": "models/w1.onnx"}, tmp_path, ds, samples=8, progress=False)
    assert len(calls) == 1

    rows = [{"name": "w1", "kind": "winner", "statistic": "min", "measured_stat_ms": 2.0},
            {"name": "b", "kind": "baseline", "statistic": "min", "measured_stat_ms": 1.0}]
    models = [SimpleNamespace(name="w1", search={"precision": "int8"}),
              SimpleNamespace(name="b", search={})]
    st = Stats(0.5, 0.6, 0.7, 0.1, 20)
    retrain_int8.add_columns(rows, models, {"w1": q}, {"models/w1.int8.onnx": st}, [0.55, None],
                             "search")
    r, b = rows
    assert set(retrain_int8.COLUMNS) <= set(r) and r["precision"] == "int8"
    assert b["precision"] == "fp32" and "acc_int8" not in b  # not quantized: columns left empty
    assert r["measured_int8_stat_ms"] == 0.5 and r["measured_int8_median_ms"] == 0.7
    assert r["int8_speedup"] == 4.0 and r["predicted_int8_ms"] == 0.55
    assert r["acc_int8_delta_pp"] == pytest.approx(100 * (r["acc_int8"] - r["acc_onnx_fp32"]), abs=1e-3)
    lines = retrain_int8.format_int8(rows, {"w1": "W1"})
    assert any(ln.split()[:2] == ["W1", "int8"] and "4.00x" in ln and "+10.0" in ln for ln in lines)
