"""Skip blocks and NAS-Bench-Macro: every one of the benchmark's 6,561 networks is an Arch whose
params and MACs equal the benchmark's, built by hwnas as the benchmark's own model, exported
to ONNX, named by ``macro:<code>``, and profiled through its space's pieces."""

import os
import random
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, assert_one_line_error
from torch import nn

from hwnas.arch import Block, dump_arch, from_dict, load_arch, parse_string
from hwnas.baselines import mobilenet_v2, mobilenet_v3_small, resolve_arch
from hwnas.costs import arch_costs, piece_costs
from hwnas.errors import HwnasError
from hwnas.macro import CHOICES, all_codes, benchmark_results, macro_arch, macro_code
from hwnas.pieces import Piece, arch_pieces
from hwnas.space import load_space

BENCH = benchmark_results()
SAMPLE = random.Random(21).sample(all_codes(), 20)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_code_costs_exactly_what_the_benchmark_says_and_round_trips():
    assert len(BENCH) == 6561 and sorted(BENCH) == all_codes()
    for code in all_codes():
        a = macro_arch(code)
        params, macs, _ = arch_costs(a)
        assert (params, macs) == (BENCH[code]["params"], BENCH[code]["flops"]), code
        assert macro_code(a) == code
        assert parse_string(a.to_string()) == a
    for code in SAMPLE:
        assert from_dict(macro_arch(code).to_dict()) == macro_arch(code)


def test_the_space_is_the_benchmark_and_its_pieces_cover_every_network():
    sp = load_space("nas-bench-macro")
    names = [n for n, _ in sp.params()]
    assert sp.size() == 6561 and all(c == list(CHOICES) for _, c in sp.params())
    keys = {p.key for p in sp.pieces(32)}
    assert all(Piece.from_key(k).key == k for k in keys)
    for code in all_codes():
        a = macro_arch(code)
        assert sp.arch_from_params(dict(zip(names, (CHOICES[int(d)] for d in code),
                                            strict=True))) == a
        assert {p.key for p in arch_pieces(a)} <= keys, code
    assert {macro_code(a) for a in sp.sample(seed=0, n=50)} <= set(BENCH)


def test_macro_specs_and_their_one_line_errors():
    a = resolve_arch("macro:02012100")
    assert a == macro_arch("02012100") and a.resolution == 32 and a.classes == 10
    assert a.to_string() == ("r32c3_s32k3s1re_idc64s2_k5e6c64s1_idc128s2_k3e3c128s1_k5e6c128s1_"
                             "k3e3c256s2_idc256s1x2_h1280re_n10")
    for spec, frag in (("macro:0201210", "got 7 characters"),
                       ("macro:020121000", "got 9 characters"),
                       ("macro:02012103", "'3' is not 0, 1 or 2"),
                       ("macro:0201210\u0660", "is not an ASCII digit"),
                       ("macro:0201210\uff11", "is not an ASCII digit"),
                       ("macro:", "got 0 characters")):
        with pytest.raises(HwnasError, match=frag) as e:
            resolve_arch(spec)
        assert "\n" not in str(e.value)
    assert macro_code(mobilenet_v2(0.5, 32, 10)) is None
    assert macro_code(a.with_resolution(64)) is None


# ---- torch: the benchmark's own network ---------------------------------------------------------

class _Identity(nn.Module):  # NAS-Bench-Macro train/model.py, re-written
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.down = None
        if stride != 1 or inp != oup:
            self.down = nn.Sequential(nn.Conv2d(inp, oup, 1, stride, bias=False),
                                      nn.BatchNorm2d(oup))

    def forward(self, x):
        return x if self.down is None else self.down(x)


class _IR(nn.Module):
    def __init__(self, inp, oup, stride, t, k):
        super().__init__()
        h = round(inp * t)
        self.conv = nn.Sequential(
            nn.Conv2d(inp, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
            nn.Conv2d(h, h, k, stride, k // 2, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
            nn.Conv2d(h, oup, 1, bias=False), nn.BatchNorm2d(oup))
        self.shortcut = inp == oup and stride == 1

    def forward(self, x):
        return self.conv(x) + x if self.shortcut else self.conv(x)


class _Network(nn.Module):
    def __init__(self, code, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(32), nn.ReLU())
        ops = [lambda i, o, s: _Identity(i, o, s), lambda i, o, s: _IR(i, o, s, 3, 3),
               lambda i, o, s: _IR(i, o, s, 6, 5)]
        layers, c, digits = [], 32, iter(code)
        for n in (2, 3, 3):
            for idx in range(n):
                layers.append(ops[int(next(digits))](c, c * 2 if idx == 0 else c,
                                                     2 if idx == 0 else 1))
                c = c * 2 if idx == 0 else c
        self.features = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(self.out(self.features(self.stem(x))).flatten(1))


def test_the_torch_builder_counts_what_the_benchmark_says():
    from hwnas.model import build, count_macs, count_params, input_tensor

    for code in SAMPLE:
        a = macro_arch(code)
        net = build(a)
        assert count_params(net) == BENCH[code]["params"], code
        assert count_macs(net, input_tensor(a)) == BENCH[code]["flops"], code
        assert count_macs(_Network(code), input_tensor(a)) == BENCH[code]["flops"], code


@pytest.mark.parametrize("code", ["00000000", "22222222", "02012100", "10201021"])
def test_hwnas_builds_the_benchmarks_network(code):
    from hwnas.model import build

    ours, ref = build(macro_arch(code)), _Network(code)
    gen = torch.Generator().manual_seed(0)
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert [v.shape for v in mine.values()] == [v.shape for v in theirs.values()]
    with torch.no_grad():  # the same tensors in the same order: give both the same values
        for (k, v), w in zip(mine.items(), theirs.values(), strict=True):
            if v.is_floating_point():
                x = torch.rand(v.shape, generator=gen) + (0.5 if k.endswith("running_var") else -0.5)
                v.copy_(x)
                w.copy_(x)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


def test_onnx_export_of_macro_archs_runs_in_onnxruntime_as_in_torch(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from hwnas.export import arch_of_onnx, export_arch
    from hwnas.model import build, input_tensor

    for code in ("00000000", "02012100", "21000012"):
        a = macro_arch(code)
        torch.manual_seed(0)
        net = build(a).eval()
        path = tmp_path / f"{code}.onnx"
        export_arch(a, path, module=net)
        x = input_tensor(a)
        with torch.no_grad():
            want = net(x).numpy()
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = s.run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert arch_of_onnx(path) == a


def test_arch_info_on_the_command_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    r = run("arch", "info", "macro:02012100", "--blocks")
    assert r.returncode == 0, r.stderr
    assert "NAS-Bench-Macro  02012100" in r.stdout and "(890,666)" in r.stdout
    assert "skip_h32_i32_o64_k1_s2" in r.stdout and "47.3 M" in r.stdout
    assert_one_line_error(run("arch", "info", "macro:0201210"), "8 digits", "got 7")


# ---- skip blocks in general -------------------------------------------------------------------

def _with_skips():
    """An arch with every kind of skip: projecting (stride, channels), identity, identity with
    an activation, projecting with hswish."""
    return from_dict({
        "input": {"resolution": 32, "channels": 3},
        "stem": {"out": 16, "kernel": 3, "stride": 2, "act": "relu6"},
        "blocks": [{"kind": "skip", "out": 16},
                   {"kind": "skip", "out": 24, "stride": 2},
                   {"kernel": 3, "expand": 4, "out": 24, "stride": 1, "se": 0.25, "act": "hswish"},
                   {"kind": "skip", "out": 24, "act": "relu"},
                   {"kind": "skip", "out": 32, "act": "hswish"},
                   {"kind": "mb", "kernel": 5, "expand": 3, "out": 32, "stride": 1, "se": 0.25,
                    "act": "hswish"}],
        "head": {"out": 64, "act": "hswish"}, "classes": 10})


def test_skip_blocks_round_trip_through_string_yaml_and_json(tmp_path):
    a = _with_skips()
    s = a.to_string()
    assert s == ("r32c3_s16k3s2r6_idc16s1_idc24s2_k3e4c24s1q0.25hs_idc24s1re_idc32s1hs_k5e3c32s1"
                 "_h64hs_n10")
    assert parse_string(s) == a
    for name in ("a.yaml", "a.json"):
        from hwnas.arch import save_arch

        save_arch(a, tmp_path / name)
        assert load_arch(tmp_path / name) == a
    assert "{kind: skip, out: 24, stride: 1, act: relu}" in dump_arch(a)
    assert Block.skip(8).act == "" and not Block.skip(8).residual(8)
    for bad, frag in (({"kind": "skip", "out": 8, "kernel": 3}, "unknown key 'kernel'"),
                      ({"kind": "pool", "out": 8}, "unknown block kind"),
                      ({"kind": "skip", "out": 8, "act": "gelu"}, "unknown activation"),
                      ({"kind": "skip", "out": 8, "stride": 3}, "must be 1 or 2")):
        with pytest.raises(HwnasError, match=frag):
            from_dict({"input": {"resolution": 32}, "stem": {"out": 8}, "blocks": [bad]})


def test_existing_archs_print_and_parse_as_before():
    for a in (mobilenet_v2(1.0), mobilenet_v2(0.35, 96), mobilenet_v3_small(),
              *load_space("mobilenetv3").sample(seed=3, n=20)):
        assert "id" not in a.to_string() and parse_string(a.to_string()) == a
        assert all("kind" not in b for b in a.to_dict()["blocks"])
    assert mobilenet_v2(1.0).to_string().startswith("r224c3_s32k3s2r6_k3e1c16s1_k3e6c24s2_k3e6c24s1")


def test_skip_costs_builder_and_pieces_agree():
    from hwnas.export import export_piece
    from hwnas.model import arch_costs as torch_costs
    from hwnas.predictor.features import PieceFeatures
    from hwnas.predictor.models import activated_elements

    a = _with_skips()
    ps = arch_pieces(a)
    kinds = [p.kind for p in ps]
    assert kinds == ["stem", "skip", "mb", "skip", "skip", "mb", "head", "cls"]  # no identity
    assert torch_costs(a) == arch_costs(a)
    proj = ps[1]
    assert proj.key == "skip_h16_i16_o24_k1_s2" and proj.h_out == 8
    c = piece_costs(proj)
    assert (c.params, c.macs, c.macs_pw) == (16 * 24 + 48, 16 * 24 * 64, 16 * 24 * 64)
    act_only = ps[3]
    assert act_only.key == "skip_h8_i24_o24_k1_s1_re" and piece_costs(act_only).macs == 0
    assert activated_elements(act_only) == 24 * 64
    for p in ps:
        assert Piece.from_key(p.key) == p
        export_piece(p)  # exports
    X = PieceFeatures("shape").fit([]).transform([p.key for p in ps])
    assert X.shape[0] == len(ps) and (X == X).all()
    PieceFeatures("cost").fit([]).transform(ps)


def test_the_supernet_refuses_skip_block_spaces_in_one_line(tmp_path):
    from hwnas.supernet import SuperNet, find_supernet

    sp = load_space("nas-bench-macro")
    for call in (lambda: SuperNet(sp, 10), lambda: find_supernet(sp, "digits", 32)):
        with pytest.raises(HwnasError, match="skip-block layers") as e:
            call()
        assert "\n" not in str(e.value)


def test_the_small_input_mobilenetv2_space_trains_a_supernet_step():
    from hwnas.model import Net
    from hwnas.supernet import SuperNet

    sp = load_space("mobilenetv2-cifar")
    assert sp.classes == 10 and min(sp.resolutions) == 32
    torch.manual_seed(0)
    net = SuperNet(sp, 10)
    small = net.smallest(32)
    assert small.final_size()[0] == 4  # 32 px keeps a 4x4 map to the last stage
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    net.train()
    for arch in (net.largest(32), small, net.sample(random.Random(0), 32)):
        net.set_active(arch)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    net.eval()
    net.set_active(small)
    sub = net.extract(small)
    assert isinstance(sub, Net)
    with torch.no_grad():
        torch.testing.assert_close(net(x), sub.eval()(x), rtol=1e-4, atol=1e-4)


def test_the_latency_predictor_and_bundles_take_macro_archs(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from hwnas.export import export_piece
    from hwnas.predictor import LatencyPredictor
    from hwnas.profiling.bundle import compose_network

    sp = load_space("nas-bench-macro")
    blocks = {p.key: 1e-8 * piece_costs(p).macs + 0.01 for p in sp.pieces(32)}  # a fake table
    archs = [macro_arch(c) for c in SAMPLE]
    nets = {a.to_string(): 1e-8 * arch_costs(a).macs + 0.05 for a in archs}
    m = LatencyPredictor().fit(blocks, nets)
    ms = m.predict([macro_arch("00000000"), macro_arch("22222222")])
    assert 0 < ms[0] < ms[1]
    a = macro_arch("20010012")
    rows = m.explain(a)
    assert [k for k, _, _ in rows] == [p.key for p in arch_pieces(a)]  # no identity piece

    def piece_file(p):
        f = tmp_path / f"{p.key}.onnx"
        if not f.is_file():
            export_piece(p, f)
        return f

    net = tmp_path / "net.onnx"
    net.write_bytes(compose_network(a, piece_file))
    s = ort.InferenceSession(str(net), providers=["CPUExecutionProvider"])
    out = s.run(None, {s.get_inputs()[0].name: np.zeros((1, 3, 32, 32), np.float32)})[0]
    assert out.shape == (1, 10)
