import numpy as np
import onnxruntime as ort
import pytest
import torch

from hwnas.baselines import baseline
from hwnas.export import check_onnx, export_arch, export_piece
from hwnas.model import arch_costs, build, build_piece, input_tensor, piece_input
from hwnas.pieces import arch_pieces
from hwnas.space import load_space


@pytest.mark.parametrize("name, params_m, macs_m", [
    # published: Sandler et al. 2018 Table 3/4 and the TF-slim model zoo
    ("mbv2-1.0", 3.47, 300), ("mbv2-0.75", 2.61, 209), ("mbv2-0.5", 1.95, 97), ("mbv2-0.35", 1.66, 59),
])
def test_mobilenetv2_costs_match_published(name, params_m, macs_m):
    c = arch_costs(baseline(name))
    assert abs(c.params / 1e6 - params_m) / params_m < 0.02
    assert abs(c.macs / 1e6 - macs_m) / macs_m < 0.05


def test_peak_activation_memory_is_the_largest_block():
    a = baseline("mbv2-1.0")
    # the stride-1 112x112 block: 32ch input + 32ch depthwise output, float32
    assert arch_costs(a).peak_act_bytes >= (32 + 32) * 112 * 112 * 4
    assert arch_costs(a.with_resolution(112)).peak_act_bytes < arch_costs(a).peak_act_bytes


def _ort(data):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.mark.parametrize("space", ["mobilenetv2", "mobilenetv3"])
def test_onnx_parity_of_sampled_archs(space):
    for a in load_space(space).sample(seed=11, n=3, resolution=96) + [baseline("mbv3-small", 96)]:
        torch.manual_seed(0)
        net = build(a).eval()
        # non-trivial BN statistics, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        x = input_tensor(a)
        data = export_arch(a, module=net)
        check_onnx(data)
        with torch.no_grad():
            ref = net(x).numpy()
        out = _ort(data).run(None, {"input": x.numpy()})[0]
        assert out.shape == (1, a.classes)
        assert _rel_err(out, ref) < 1e-4


def test_block_export_has_its_in_network_shape(tmp_path):
    a = load_space("mobilenetv3").sample(seed=2, resolution=96)[0]
    for p in arch_pieces(a)[:6] + arch_pieces(a)[-2:]:
        path = tmp_path / f"{p.key}.onnx"
        export_piece(p, path)
        check_onnx(path)
        torch.manual_seed(0)
        m = build_piece(p).eval()
        x = piece_input(p)
        with torch.no_grad():
            ref = m(x).numpy()
        sess = _ort(str(path))
        assert sess.get_inputs()[0].shape == [1, p.cin, p.h, p.h]
        out = sess.run(None, {"input": x.numpy()})[0]
        assert _rel_err(out, ref) < 1e-4
