"""Models from elsewhere: the Arch of an ONNX file that hwnas did not export (hwnas.onnx_import).

The networks are independent torch re-implementations (tests/onnx_models.py: torchvision's
MobileNetV2 / MobileNetV3-small, a timm-like MobileNetV3-small), exported by torch; the
recovered Arch must count the same params and MACs as the torch module, and the ONNX file's
weights must be exactly those params (less BatchNorm folded into the convs' biases).
"""

from __future__ import annotations

import json
from dataclasses import replace

import onnx
import pytest
import torch
from conftest import assert_one_line_error
from onnx_models import (
    TimmMobileNetV3Small,
    TVInvertedResidualV2,
    TVMobileNetV2,
    TVMobileNetV3Small,
    bn_channels,
    conv_norm_act,
    export,
    n_params,
)
from test_predictor import _write_table, main, space, synth  # noqa: F401  (fixtures)
from torch import nn

from hwnas import onnx_import
from hwnas.baselines import baseline
from hwnas.costs import arch_costs
from hwnas.errors import HwnasError
from hwnas.model import count_macs
from hwnas.onnx_import import arch_from_graph, arch_of_onnx_file, initializer_elements
from hwnas.pieces import arch_pieces

MODELS = {  # name: (module factory, resolution, the hwnas baseline it is)
    "tv-mbv2-0.5": (lambda: TVMobileNetV2(0.5), 96, "mbv2-0.5"),
    "tv-mbv2-1.0": (lambda: TVMobileNetV2(1.0, classes=10), 128, "mbv2-1.0"),
    "tv-mbv3-small": (lambda: TVMobileNetV3Small(), 224, "mbv3-small"),
    "timm-mbv3-small": (lambda: TimmMobileNetV3Small(classes=100), 160, "mbv3-small"),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (torch module, ONNX path), exported once (TorchScript exporter, opset 17)."""
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, (make, res, _) in MODELS.items():
        torch.manual_seed(0)
        m = make()
        export(m, res, d / f"{name}.onnx")
        out[name] = (m, d / f"{name}.onnx")
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_foreign_export_recovers_the_arch(exported, name):
    module, path = exported[name]
    _, res, base = MODELS[name]
    model = onnx.load(str(path))
    a = arch_of_onnx_file(path)
    classes = module.classifier[-1].out_features if isinstance(module.classifier, nn.Sequential) \
        else module.classifier.out_features
    assert a == baseline(base, res, classes)
    c = arch_costs(a)
    assert c.params == n_params(module)
    assert c.macs == count_macs(module, torch.randn(1, 3, res, res))
    # the file's weights are the params, BN's scale and shift folded into one bias per channel
    assert initializer_elements(model) == n_params(module) - bn_channels(module)


def test_dynamo_export_recovers_the_arch(tmp_path):
    pytest.importorskip("onnxscript")  # the dynamo exporter needs it; not installed here
    for make, res, base in (MODELS["tv-mbv2-0.5"], MODELS["tv-mbv3-small"]):
        m = make()
        export(m, res, tmp_path / "d.onnx", dynamo=True)
        assert arch_of_onnx_file(tmp_path / "d.onnx") == baseline(base, res)


def _without_metadata(path, out):
    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.save(m, str(out))
    return out


@pytest.mark.parametrize("spec", ["mbv3-small@96", "mbv3-large@64", "mbv2-0.35@64",
                                  "macro:02012100", "sample:mobilenetv3"])
def test_hwnas_exports_round_trip_through_the_graph(tmp_path, spec):
    from hwnas.baselines import resolve_arch
    from hwnas.export import export_arch
    from hwnas.space import load_space

    a = (load_space("mobilenetv3").sample(seed=3, n=1, resolution=96)[0]
         if spec.startswith("sample:") else resolve_arch(spec))
    export_arch(a, tmp_path / "a.onnx")
    bare = _without_metadata(tmp_path / "a.onnx", tmp_path / "bare.onnx")
    got = arch_of_onnx_file(bare)
    # an identity skip is no node of the graph: the same network without it (same pieces)
    keep = [b for _, _, c, b in a.stages() if not b.is_noop(c)]
    assert got.to_string() == replace(a, blocks=tuple(keep)).to_string()
    assert arch_pieces(got) == arch_pieces(a)
    assert (got == a) == (len(keep) == len(a.blocks))


def test_cli_arch_info_and_predict_read_foreign_onnx(exported, main, home, synth, tmp_path):  # noqa: F811
    _, path = exported["tv-mbv3-small"]
    d = json.loads(main("arch", "info", path, "--json", check=0).stdout)
    assert d["arch"] == baseline("mbv3-small").to_string()
    assert d["params"] == n_params(exported["tv-mbv3-small"][0])
    # a small torchvision-style network inside the synthetic table's space, at 64 px
    net = nn.Sequential(conv_norm_act(3, 8, 3, 2), TVInvertedResidualV2(8, 8, 1, 1),
                        TVInvertedResidualV2(8, 16, 2, 3), TVInvertedResidualV2(16, 24, 2, 6),
                        conv_norm_act(24, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(64, 10))
    export(net, 64, tmp_path / "small.onnx")
    arch = arch_of_onnx_file(tmp_path / "small.onnx")
    dev = _write_table(home, synth)
    by_onnx = main("predict", tmp_path / "small.onnx", "--device", dev, "--json", check=0)
    by_string = main("predict", arch.to_string(), "--device", dev, "--json", check=0)
    assert json.loads(by_onnx.stdout) == json.loads(by_string.stdout)
    assert json.loads(by_onnx.stdout)["blocks_in_table"] == len(arch.blocks) + 3


class _Grouped(nn.Module):
    """A stem then a grouped (not depthwise) 3x3 conv: not a MobileNet block."""

    def __init__(self):
        super().__init__()
        self.stem = conv_norm_act(3, 96, 3, 2)
        self.g = nn.Conv2d(96, 96, 3, 1, 1, groups=3)
        self.fc = nn.Linear(96, 10)

    def forward(self, x):
        return self.fc(self.g(self.stem(x)).mean((2, 3)))


class _Swish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(nn.functional.silu(self.conv(x)).mean((2, 3)))


def test_unmappable_graphs_name_the_first_node(tmp_path):
    export(_Grouped(), 32, tmp_path / "g.onnx")
    with pytest.raises(HwnasError, match=r"node '.*Conv.*' \(Conv, group 3 of 96 channels\): "
                                         "not a MobileNet block") as e:
        arch_of_onnx_file(tmp_path / "g.onnx")
    assert "\n" not in str(e.value)
    export(_Swish(), 32, tmp_path / "s.onnx")
    with pytest.raises(HwnasError, match="activation Sigmoid is not one of relu, relu6, hswish"):
        arch_of_onnx_file(tmp_path / "s.onnx")


def test_residual_mismatch_and_dynamic_input_refused(tmp_path, exported):
    m = onnx.load(str(exported["tv-mbv2-0.5"][1]))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(HwnasError, match="fixed C and R"):
        arch_from_graph(m, "dyn")
    m = onnx.load(str(exported["tv-mbv2-0.5"][1]))
    add = next(n for n in m.graph.node if n.op_type == "Add")
    add.op_type = "Sub"  # the residual is no longer an add
    with pytest.raises(HwnasError, match="residual add"):
        arch_from_graph(m, "sub")


def test_not_onnx_and_too_large_refused_before_reading(tmp_path, monkeypatch, main, home):  # noqa: F811
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\xff\x00 this is no protobuf \x12\x99" * 10)
    r = main("arch", "info", bad)
    assert_one_line_error(r, "not a readable ONNX file")
    empty = tmp_path / "e.onnx"
    empty.write_bytes(b"")
    assert_one_line_error(main("arch", "info", empty), "not an ONNX model")
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * 2048)
    monkeypatch.setattr(onnx_import, "MAX_ONNX_BYTES", 1024)

    def never(*a, **k):
        raise AssertionError("read")

    monkeypatch.setattr(onnx, "load", never)
    assert_one_line_error(main("arch", "info", big), "too large", "at most 1,024")
