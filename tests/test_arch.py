import json

import pytest

from hwnas.arch import Arch, Block, dump_arch, from_dict, load_arch, parse_string, save_arch
from hwnas.baselines import BASELINES, baseline
from hwnas.errors import HwnasError
from hwnas.space import load_space

GOOD = {
    "input": {"resolution": 224, "channels": 3},
    "stem": {"out": 32, "kernel": 3, "stride": 2, "act": "relu6"},
    "blocks": [
        {"kernel": 3, "expand": 1, "out": 16, "stride": 1, "se": 0, "act": "relu6"},
        {"kernel": 3, "expand": 6, "out": 24, "stride": 2, "se": 0, "act": "relu6"},
        {"kernel": 5, "expand": 2.5, "out": 40, "stride": 2, "se": 0.25, "act": "hswish"},
    ],
    "head": {"out": 1280, "act": "relu6"},
    "classes": 1000,
}


def some_archs():
    out = [baseline(n) for n in BASELINES] + [from_dict(GOOD)]
    for space in ("mobilenetv2", "mobilenetv3"):
        out += load_space(space).sample(seed=7, n=25)
    return out


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_file_round_trip(tmp_path, fmt):
    for i, a in enumerate(some_archs()):
        p = save_arch(a, tmp_path / f"a{i}.{fmt}")
        assert load_arch(p) == a


def test_canonical_string_round_trip_and_is_file_safe():
    seen = set()
    for a in some_archs():
        s = a.to_string()
        assert parse_string(s) == a
        assert all(ch.isalnum() or ch in "_." for ch in s), s
        assert len(a.file_stem()) <= 200
        seen.add(s)
    assert len(seen) > 40  # distinct archs give distinct strings


def test_canonical_string_is_stable():
    # a fixed arch must keep its ID across runs, machines and versions
    assert baseline("mbv2-1.0").to_string() == (
        "r224c3_s32k3s2r6_k3e1c16s1_k3e6c24s2_k3e6c24s1_k3e6c32s2_k3e6c32s1x2_k3e6c64s2_"
        "k3e6c64s1x3_k3e6c96s1x3_k3e6c160s2_k3e6c160s1x2_k3e6c320s1_h1280r6_n1000")


def test_fractional_expansion_rounds_to_multiple_of_8():
    a = from_dict(GOOD)
    assert a.blocks[2].hidden(24) == 64  # 24 * 2.5 = 60 -> 64
    assert Block(3, 1, 16).hidden(32) == 32  # expand 1: no expansion conv
    assert dump_arch(a).count("expand: 2.5") == 1


def _bad(**patch):
    d = json.loads(json.dumps(GOOD))
    for path, v in patch.items():
        *keys, last = path.split("__")
        t = d
        for k in keys:
            t = t[int(k)] if k.isdigit() else t[k]
        t[last] = v
    return d


@pytest.mark.parametrize("patch, fragment", [
    ({"blocks__1__kernel": 4}, "blocks[1].kernel"),
    ({"blocks__1__stride": 3}, "blocks[1].stride"),
    ({"blocks__0__out": 0}, "blocks[0].out"),
    ({"blocks__2__act": "gelu"}, "blocks[2].act"),
    ({"blocks__2__kernel": "3"}, "blocks[2].kernel"),
    ({"stem__colour": 1}, "unknown key 'colour'"),
    ({"input__resolution": 4}, "too small"),
    ({"blocks__0__expand": 0.5}, "blocks[0].expand"),
])
def test_validation_names_the_field(patch, fragment):
    with pytest.raises(HwnasError, match=r"arch\.yaml") as e:
        from_dict(_bad(**patch), "arch.yaml")
    assert fragment in str(e.value)


def test_malformed_files(tmp_path):
    (tmp_path / "x.yaml").write_text("input: [unclosed\n")
    with pytest.raises(HwnasError, match="not valid YAML"):
        load_arch(tmp_path / "x.yaml")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(HwnasError, match="not valid JSON"):
        load_arch(tmp_path / "x.json")
    with pytest.raises(HwnasError, match="no such arch file"):
        load_arch(tmp_path / "missing.yaml")


def test_bad_canonical_strings():
    for s in ["nonsense", "r224c3_s32k3s2r6_k4e1c16s1_h0_n10", "r224c3_s32k3s2r6_zz_h0_n10"]:
        with pytest.raises(HwnasError):
            parse_string(s)


def test_with_resolution_keeps_blocks():
    a = baseline("mbv2-0.5").with_resolution(160)
    assert a.resolution == 160 and a.blocks == baseline("mbv2-0.5").blocks
    assert isinstance(a, Arch)
