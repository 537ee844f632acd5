import optuna
import pytest

from hwnas.errors import HwnasError
from hwnas.pieces import Piece, arch_pieces
from hwnas.space import SKIP, load_space

SPACES = ["mobilenetv2", "mobilenetv3", "mobilenetv2-cifar", "mobilenetv3-cifar"]


@pytest.mark.parametrize("name", SPACES)
def test_enumerated_pieces_cover_every_sample(name):
    sp = load_space(name)
    keys = {p.key for p in sp.pieces(128)}
    for a in sp.sample(seed=1, n=300, resolution=128):
        for p in arch_pieces(a):
            assert p.key in keys, p.key
    assert all(Piece.from_key(k).key == k for k in keys)


def test_block_key_with_trailing_newline_is_refused():
    key = next(iter(load_space("mobilenetv2").pieces(32))).key
    assert Piece.from_key(key).key == key
    for bad in (key + "\n", key + "\nx", "\n" + key):
        with pytest.raises(HwnasError, match="is not a block key"):
            Piece.from_key(bad)


@pytest.mark.parametrize("name", SPACES)
def test_every_trial_samples_the_same_parameters(name):
    sp = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names = set()
    depths = set()
    for _ in range(30):
        t = study.ask()
        a = sp.suggest(t)
        study.tell(t, 0.0)
        names.add(frozenset(t.params))
        depths.add(len(a.blocks))
    assert len(names) == 1  # the same parameter set, whatever the depth
    assert len(depths) > 1  # yet depth varies, through "skip"
    for _, choices in sp.params():
        assert all(isinstance(c, (int, str)) for c in choices)


def test_space_facts():
    sp = load_space("mobilenetv2")
    d = dict(sp.params())
    assert SKIP in d["s4_l3"] and SKIP not in d["s4_l1"]
    assert d["s3_l0"] == [f"k{k}e{e}" for k in (3, 5, 7) for e in (3, 4, 6)]
    assert sp.size() > 10**15
    a = sp.sample(seed=0)[0]
    assert sp.sample(seed=0)[0] == a  # seeded
    assert 0 < len(sp.pieces(224)) <= 800  # what the profiler must measure
    v3 = dict(load_space("mobilenetv3").params())
    assert v3["s3_se"] == ["0", "0.25"] and v3["s3_act"] == ["relu", "hswish"]


def test_bad_spaces(tmp_path):
    good = (tmp_path / "g.yaml")
    good.write_text("name: t\nresolutions: [64]\nstem: {out: 16}\nstages:\n"
                    "  - {out: 16, stride: 2, depth: [1, 2], kernel: [3], expand: [3]}\n")
    assert load_space(good).size() == 2
    cases = {
        "stages:\n  - {out: 16, stride: 2, kernel: [4], expand: [3]}\n": "kernel",
        "stages:\n  - {out: 16, stride: 3, kernel: [3], expand: [3]}\n": "stride",
        "stages:\n  - {out: 16, stride: 2, kernel: [3], expand: [3], act: [gelu]}\n": "act",
        "stages:\n  - {out: 16, stride: 2, kernel: [3], expand: [3], depth: [3, 1]}\n": "depth",
        "stages:\n  - {out: 16, stride: 2, kernel: [3], expand: [3], colour: 1}\n": "unknown key",
    }
    for stages, frag in cases.items():
        p = tmp_path / "b.yaml"
        p.write_text("name: t\nresolutions: [64]\nstem: {out: 16}\n" + stages)
        with pytest.raises(HwnasError, match=frag):
            load_space(p)
    p.write_text("name: t\nresolutions: [2]\nstem: {out: 16}\nstages:\n"
                 "  - {out: 16, stride: 2, kernel: [3], expand: [3]}\n")
    with pytest.raises(HwnasError, match="too small"):
        load_space(p)
    with pytest.raises(HwnasError, match="unknown space"):
        load_space("no-such-space")


def test_space_files_home_first_and_load_spaces_skips_broken(home):
    from conftest import tiny_space

    from hwnas.paths import PACKAGE_ROOT, space_files
    from hwnas.space import load_spaces

    assert space_files()["mobilenetv2"] == PACKAGE_ROOT / "search_spaces" / "mobilenetv2.yaml"
    d = home / "search_spaces"
    d.mkdir()
    (d / "mobilenetv2.yaml").write_text(tiny_space("mine"))  # hides the shipped one
    (d / "broken.yaml").write_text("name: [\n")
    files = space_files()
    assert files["mobilenetv2"] == d / "mobilenetv2.yaml"
    assert list(files) == sorted(files) and "broken" in files
    assert load_space("mobilenetv2").name == "mine"
    names = [sp.name for sp in load_spaces()]
    assert "mine" in names and "mobilenetv3" in names and len(names) == len(files) - 1
