"""timm's MobileNet names as ARCH specs, MobileNetV3's pre-logits layer (Head.fc)."""

from __future__ import annotations

import pytest

from hwnas.arch import Arch, Head, dump_arch, from_dict, load_yaml, parse_string
from hwnas.baselines import TIMM_NAMES, baseline, resolve_arch
from hwnas.costs import arch_costs
from hwnas.errors import HwnasError
from hwnas.pieces import Piece, arch_pieces

# timm's published parameter counts (M, 1000 classes; timm model cards / results tables)
PUBLISHED_M = {"mobilenetv2_035": 1.68, "mobilenetv2_050": 1.97, "mobilenetv2_075": 2.64,
               "mobilenetv2_100": 3.50, "mobilenetv2_140": 6.11,
               "mobilenetv3_small_075": 2.04, "mobilenetv3_small_100": 2.54,
               "mobilenetv3_large_100": 5.48}


@pytest.mark.parametrize("name", sorted(TIMM_NAMES))
def test_timm_name_resolves_with_published_params(name):
    a = resolve_arch(name)
    assert a == baseline(TIMM_NAMES[name])
    assert round(arch_costs(a).params / 1e6, 2) == PUBLISHED_M[name]
    assert resolve_arch(f"{name}@160").resolution == 160
    assert resolve_arch(f"{name}@160").blocks == a.blocks


def test_every_timm_name_is_listed_here():
    assert set(TIMM_NAMES) == set(PUBLISHED_M)


def test_mobilenet_v3_matches_the_paper_tables():
    s, lg = baseline("mbv3-small"), baseline("mbv3-large")
    # expanded widths, SE widths (make_divisible(hidden / 4, 8)), head conv, pre-logits
    hid = [p.hidden for p in arch_pieces(s) if p.kind == "mb"]
    assert hid == [16, 72, 88, 96, 240, 240, 120, 144, 288, 576, 576]
    assert [p.se for p in arch_pieces(s) if p.kind == "mb"][:4] == [8, 0, 0, 24]
    assert (s.head, lg.head) == (Head(576, "hswish", 1024), Head(960, "hswish", 1280))
    hid_l = [p.hidden for p in arch_pieces(lg) if p.kind == "mb"]
    assert hid_l == [16, 64, 72, 72, 120, 120, 240, 200, 184, 184, 480, 672, 672, 960, 960]
    assert [p.se for p in arch_pieces(lg) if p.kind == "mb"][3] == 24  # 72 / 4 = 18 -> 24
    assert [b.act for b in lg.blocks].index("hswish") == 6
    assert s.stem.act == lg.stem.act == "hswish"


def test_pre_logits_round_trips_and_counts_like_torch():
    from hwnas.model import arch_costs as torch_costs

    a = baseline("mbv3-small", 96, 10)
    assert a.to_string().endswith("_h576hsf1024_n10")
    assert parse_string(a.to_string()) == a
    assert from_dict(load_yaml(dump_arch(a)), "x") == a
    cls = arch_pieces(a)[-1]
    assert cls.key == "cls_h3_i576_o10_f1024_hs" and Piece.from_key(cls.key) == cls
    assert tuple(torch_costs(a))[:2] == tuple(arch_costs(a))[:2]
    # without the layer: no 'f' in the string, no fc key in the arch file
    b = Arch(a.resolution, a.stem, a.blocks, Head(576, "hswish"), 10)
    assert "f" not in b.to_string().split("_")[-2] and "fc" not in dump_arch(b)
    assert arch_costs(a).params - arch_costs(b).params == 576 * 1024 + 1024 + (1024 - 576) * 10


def test_bad_pre_logits_and_unknown_name():
    with pytest.raises(HwnasError, match="head.fc"):
        from_dict({"input": {"resolution": 32}, "stem": {"out": 8},
                   "blocks": [{"kernel": 3, "expand": 1, "out": 8}],
                   "head": {"out": 16, "fc": -1}}, "x")
    with pytest.raises(HwnasError, match="mobilenetv3_large_100"):
        resolve_arch("mobilenetv3_large_999")
