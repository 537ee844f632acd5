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


@pytest.mark.parametrize("patch, fragment", [
    ({"stem": {"out": 100_000_000}}, "stem.out: 100000000 is above the limit"),
    ({"input": {"resolution": 10_000}}, "input.resolution: 10000 is above the limit"),
    ({"input": {"resolution": 224, "channels": 10**12}}, "input.channels"),
    ({"classes": 10**9}, "classes: 1000000000 is above the limit"),
    ({"blocks": [{"kernel": 3, "expand": 1e300, "out": 16}]}, "expand"),
    ({"blocks": [{"kernel": 3, "expand": float("nan"), "out": 16}]}, "finite"),
    ({"blocks": [{"kernel": 3, "expand": 30, "out": 8000}] * 2}, "channels is above the limit"),
    ({"blocks": [{"kernel": 3, "expand": 1, "out": 16}] * 1000}, "1000 blocks"),
    ({"input": {"resolution": 3000}, "stem": {"out": 256}}, "needs about"),
])
def test_limits_are_checked_before_anything_is_built(patch, fragment):
    d = {**GOOD, **patch}
    with pytest.raises(HwnasError, match=fragment):
        from_dict(d, "a.yaml")


def test_the_memory_limit_can_be_raised(monkeypatch):
    from hwnas.arch import MAX_MEMORY_ENV, model_memory_bytes

    big = {**GOOD, "input": {"resolution": 3000}, "stem": {"out": 256}}
    with pytest.raises(HwnasError, match=MAX_MEMORY_ENV):
        from_dict(big)
    monkeypatch.setenv(MAX_MEMORY_ENV, "64")
    a = from_dict(big)  # only counted, nothing allocated
    assert 4 * 2**30 < model_memory_bytes(a) < 64 * 2**30
    monkeypatch.setenv(MAX_MEMORY_ENV, "lots")
    with pytest.raises(HwnasError, match="positive number of GB"):
        from_dict(GOOD)


def test_a_repeat_count_is_bounded_before_the_list_is_made():
    with pytest.raises(HwnasError, match="more than 256 blocks"):
        parse_string("r64c3_s16k3s2r6_k3e1c16s1x100000000_h0_n10")


def test_a_space_beyond_the_limits_is_refused_on_loading(tmp_path):
    from hwnas.space import space_from_dict

    base = {"name": "t", "resolutions": [64], "stem": {"out": 16},
            "stages": [{"out": 16, "stride": 2, "kernel": [3], "expand": [6]}]}
    space_from_dict(base, "t.yaml")
    for patch, fragment in [({"resolutions": [64, 100_000]}, "resolutions: 100000 is above"),
                            ({"classes": 10**7}, "classes"),
                            ({"stages": [{**base["stages"][0], "out": 10**8}]}, "out"),
                            ({"stages": [{**base["stages"][0], "width": [float("inf")]}]}, "width"),
                            ({"stages": [{**base["stages"][0], "depth": [1, 300]}]}, "300 blocks"),
                            ({"resolutions": [4000], "stem": {"out": 512}}, "needs about")]:
        with pytest.raises(HwnasError, match=fragment):
            space_from_dict({**base, **patch}, "t.yaml")
