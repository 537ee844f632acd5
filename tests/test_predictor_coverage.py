"""Predictor coverage (issue 17): activations transfer across piece kinds, refusals that name
the command measuring what is missing, baselines in the evaluation, adaptive refinement.

A synthetic table with known truth, as in test_predictor.py, but where each activation has
its own cost per element: ReLU6 is three times as dear as ReLU, hswish ten times. Two tiny
spaces share it: ``ptiny`` (ReLU6 everywhere) and ``ptre`` (ReLU6 stem and head, ReLU blocks),
so a ReLU stem or head was never measured, while ReLU itself was (on blocks).
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from hwnas.arch import Arch, Head, Stem
from hwnas.errors import HwnasError
from hwnas.pieces import Piece, arch_pieces
from hwnas.predictor import BlockModel, LatencyPredictor, piece_costs
from hwnas.predictor.models import activated_elements
from hwnas.space import load_space

SPACE = """\
name: {name}
resolutions: [32, 64]
stem: {{out: 8, kernel: 3, stride: 2, act: relu6}}
stages:
  - {{out: 8, stride: 1, depth: 1, kernel: [3], expand: [1], act: {act}}}
  - {{out: 16, stride: 2, depth: [1, 2], kernel: [3, 5], expand: [3, 6], width: [0.5, 1.0], act: {act}}}
  - {{out: 24, stride: 2, depth: [1, 3], kernel: [3, 5], expand: [3, 6], act: {act}}}
head: {{out: 64, act: relu6}}
classes: 10
"""
ACT_COST = {"": 0.0, "relu": 1e-5, "relu6": 3e-5, "hswish": 1e-4}  # ms per activation element


def truth_ms(p: Piece) -> float:
    c = piece_costs(p)
    return (0.004 + 2e-6 * c.macs + 1e-8 * c.bytes + 0.002 * c.ops
            + ACT_COST[p.act] * activated_elements(p))


def net_truth(a: Arch) -> float:
    return 1.1 * sum(truth_ms(p) for p in arch_pieces(a)) + 0.3


def _write_spaces(d):
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, act in (("ptiny", "relu6"), ("ptre", "relu")):
        (d / f"{name}.yaml").write_text(SPACE.format(name=name, act=act))
        out.append(load_space(d / f"{name}.yaml"))
    return out


def _sample(space, n, seed):
    rng, out = random.Random(seed), {}
    while len(out) < n:
        a = space.arch_from_params(space.sample_params(rng), rng.choice([32, 64]))
        out.setdefault(a.to_string(), a)
    return list(out.values())


@pytest.fixture(scope="module")
def spaces(tmp_path_factory):
    return _write_spaces(tmp_path_factory.mktemp("spaces"))


@pytest.fixture(scope="module")
def table(spaces):
    """(blocks, networks): every block of both spaces at 32 and 64; 30 + 15 networks."""
    rng = np.random.default_rng(0)
    blocks = {p.key: truth_ms(p) for sp in spaces for r in (32, 64) for p in sp.pieces(r)}
    archs = _sample(spaces[0], 30, 1) + _sample(spaces[1], 15, 2)
    nets = {a.to_string(): net_truth(a) * (1 + 0.003 * rng.standard_normal()) for a in archs}
    return blocks, nets


def relu_net(spaces, seed=3) -> Arch:
    """A ptre network with a ReLU stem and a ReLU head: operators the table never measured."""
    a = _sample(spaces[1], 1, seed)[0]
    return replace(a, stem=Stem(a.stem.out, a.stem.kernel, a.stem.stride, "relu"),
                   head=Head(a.head.out, "relu"))


# ---- 1. activations transfer across piece kinds ---------------------------------------------------

def test_relu_stem_is_predicted_from_relu6_stems_and_relu_blocks(table):
    blocks, _ = table
    bm = BlockModel().fit(list(blocks), list(blocks.values()))
    assert "stem/relu" not in bm.operators_ and "mb/relu" in bm.operators_
    for r in (32, 64):
        twin = Piece("stem", r, 3, 8, 3, 2, act="relu6")
        p = replace(twin, act="relu")
        assert bm.uncovered(p) is None
        assert bm.transfer(p) == twin
        got = float(bm.predict([p])[0])
        # the ReLU stem is cheaper than its ReLU6 twin by the activation cost learned on blocks
        gap = truth_ms(twin) - truth_ms(p)
        assert gap > 0.1 * truth_ms(p)
        assert abs(got - truth_ms(p)) < 0.25 * gap
        assert "never measured on a stem" in bm.extrapolation(p)
    # a measured operator is not transferred, and predicts as before
    q = Piece("stem", 64, 3, 8, 3, 2, act="relu6")
    assert bm.transfer(q) is None and bm.extrapolation(q) is None


def test_activation_measured_on_no_piece_kind_is_still_refused(table):
    blocks, _ = table
    bm = BlockModel().fit(list(blocks), list(blocks.values()))
    hs = Piece("stem", 64, 3, 8, 3, 2, act="hswish")
    assert bm.transfer(hs) is None
    assert "stem hswish operator, which was never measured" in bm.uncovered(hs)
    se = Piece("mb", 16, 16, 16, 3, 1, 48, 4, "relu", True)  # SE measured on no piece
    assert bm.uncovered(se) is not None


def test_network_with_relu_stem_and_head_is_predicted(table, spaces):
    blocks, nets = table
    pred = LatencyPredictor().fit(blocks, nets)
    a = relu_net(spaces)
    got = float(pred.predict([a])[0])
    assert got == pytest.approx(net_truth(a), rel=0.03)
    flagged = dict(pred.extrapolations(a))
    assert set(flagged) == {arch_pieces(a)[0].key, arch_pieces(a)[-2].key}


# ---- 2. what cannot be predicted names the command that measures it ------------------------------

def hswish_net(spaces, seed=4) -> Arch:
    """A network whose first blocks use hswish, measured on no piece kind: not predictable."""
    a = _sample(spaces[0], 1, seed)[0]
    return replace(a, blocks=(*(replace(b, act="hswish") for b in a.blocks[:2]), *a.blocks[2:]))


def test_refusal_names_the_command_that_measures_only_what_is_missing(table, spaces):
    blocks, nets = table
    pred = LatencyPredictor().fit(blocks, nets, device="dev1")
    a = hswish_net(spaces)
    with pytest.raises(HwnasError) as e:
        pred.predict([_sample(spaces[0], 1, 9)[0], a])
    msg = str(e.value)
    assert "never measured" in msg and "\n" not in msg
    assert f"hwnas profile --device dev1 --archs {a.to_string()}" in msg
    lacking = {p.key for p in arch_pieces(a)} - set(blocks)
    assert len(lacking) >= 2 and f"only the {len(lacking)} piece(s) and the network" in msg
    with pytest.raises(HwnasError, match="--archs"):
        pred.explain(a)
    far = _sample(spaces[0], 1, 9)[0].with_resolution(128)  # outside the measured 32..64
    with pytest.raises(HwnasError) as e:
        pred.predict([far])
    assert f"for this network alone hwnas profile --device dev1 --archs {far.to_string()}" \
        in str(e.value)


def test_predict_each_leaves_out_only_what_cannot_be_predicted(table, spaces):
    """retrain predicts winners and baselines together: one uncovered model is None, the
    others keep their predictions (they used to fall back to the block sum all together)."""
    blocks, nets = table
    pred = LatencyPredictor().fit(blocks, nets, device="dev1")
    ok, bad = _sample(spaces[0], 1, 9)[0], hswish_net(spaces)
    vals, why = pred.predict_each([ok, bad, ok])
    assert vals[1] is None and "never measured" in why
    assert vals[0] == vals[2] == pytest.approx(float(pred.predict([ok])[0]))
    assert pred.predict_each([ok]) == ([vals[0]], None)


def test_archs_alone_plan_only_the_missing_pieces_and_networks(table, spaces):
    from hwnas.profiling.lut import LatencyTable, Stats
    from hwnas.profiling.profile import plan
    from hwnas.profiling.refine import ArchSet

    blocks, nets = table
    st = Stats(1.0, 1.0, 1.0, 0.0, 3)
    t = LatencyTable("d", "min", {}, {k: st for k in blocks}, {k: st for k in nets})
    known = parse_first(nets)
    archs = [hswish_net(spaces), known, relu_net(spaces)]
    pl = plan(ArchSet(archs), 32, 0, archs, table=t)
    want = {p.key for a in archs for p in arch_pieces(a)} - set(blocks)
    assert {e.id for e in pl.entries if e.kind == "block"} == want
    assert {e.id for e in pl.entries if e.kind == "network"} == {archs[0].to_string(),
                                                                 archs[2].to_string()}
    assert pl.have == len({p.key for a in archs for p in arch_pieces(a)}) - len(want) + 1


def parse_first(nets) -> Arch:
    from hwnas.arch import parse_string

    return parse_string(next(iter(nets)))


@pytest.mark.slow
def test_profile_archs_measures_what_the_table_lacks(cli, home):
    """For real (quick protocol): a ReLU6-only table refuses an hswish network and names the
    command; that command measures only its missing pieces and the network, then it predicts."""
    _write_spaces(home / "search_spaces")
    cli("device", "add", "loc", "--target", "local", check=0)
    cli("profile", "--device", "loc", "--space", "ptiny", "-r", "32", "--networks", "20",
        "--quick", check=0)
    sp = load_space(home / "search_spaces" / "ptiny.yaml")
    a = hswish_net([sp]).with_resolution(32)
    r = cli("predict", a.to_string(), "--device", "loc")
    assert r.returncode == 2
    cmd = r.stderr.split("to measure it run: ")[1].split("  (")[0].split()
    n = int(r.stderr.split("only the ")[1].split(" piece")[0])
    r = cli(*cmd[1:], "--quick", check=0)
    assert f"lacked {n} piece(s) and 1 network(s): measured {n} piece(s) and 1 network(s)" \
        in r.stdout
    r = cli(*cmd[1:], "--quick", check=0)  # again: nothing left to measure
    assert "nothing measured" in r.stdout
    r = cli("predict", a.to_string(), "--device", "loc", check=0)
    assert "every block in the table" in r.stdout


# ---- 3. baselines and other out-of-space networks in the evaluation ------------------------------

def test_evaluation_reports_out_of_space_networks_apart(table, spaces):
    from hwnas.baselines import baseline
    from hwnas.predictor import evaluate, network_groups

    blocks, nets = table
    base = [baseline("mbv2-0.35", 64, 10), baseline("mbv2-0.5", 32, 10)]
    other = [relu_net(spaces, 5), relu_net(spaces, 6)]
    bad = hswish_net(spaces)
    nets = dict(nets, **{a.to_string(): net_truth(a) for a in [*base, *other, bad]})
    groups = network_groups(nets, spaces)
    ev = evaluate(blocks, nets, groups, folds=3)
    rows = {(r["group"], r["predictor"]): r for r in ev.rows}
    assert rows[("baselines", "full")]["n"] == 2 and rows[("other", "full")]["n"] == 2
    assert rows[("all out-of-space", "full")]["n"] == 4
    assert rows[("all space networks", "full")]["n"] == 45
    assert rows[("other", "full")]["mape_pct"] < 5  # the ReLU stems and heads: transferred
    assert set(ev.unpredictable) == {bad.to_string()}
    line = ev.table().splitlines()[-1]
    assert "out-of-space networks" in line and ": 5, of them 4 predictable (2 baselines)" in line
    # no baselines in the table: the line says how to measure them
    ev2 = evaluate(blocks, dict(table[1], **{other[0].to_string(): 1.0}), groups, folds=3)
    assert "--archs baselines" in ev2.coverage()


def test_archs_baselines_expand_to_the_tables_resolutions(home, table):
    from hwnas.baselines import BASELINES
    from hwnas.context import Device
    from hwnas.profiling.lut import LatencyTable, Stats
    from hwnas.profiling.refine import resolve_archs

    blocks, nets = table
    st = Stats(1.0, 1.0, 1.0, 0.0, 3)
    LatencyTable("d", "min", {}, {k: st for k in blocks}, {k: st for k in nets}).save()
    got = resolve_archs(["baselines"], Device("d"))
    assert sorted({a.resolution for a in got}) == [32, 64] and len(got) == 2 * len(BASELINES)
    assert {a.resolution for a in resolve_archs(["baselines@96"], Device("d"))} == {96}
    with pytest.raises(HwnasError, match="must be an integer"):
        resolve_archs(["baselines@x"], Device("d"))


# ---- 4. adaptive sampling ------------------------------------------------------------------------

def _relu_share(a: Arch) -> float:
    ps = arch_pieces(a)
    return sum(truth_ms(p) for p in ps if p.act == "relu") / sum(truth_ms(p) for p in ps)


def test_refine_measures_where_the_heldout_error_is_largest(home, table, spaces, monkeypatch):
    """Networks with ReLU blocks run 25 % slower than their blocks say (an effect a sum
    misses), and the table holds few of them: refine picks networks rich in ReLU blocks,
    'measures' them (a fake device: the truth), and reports the error per group before and
    after."""
    import hwnas.profiling.refine as refine_mod
    from hwnas.arch import parse_string
    from hwnas.profiling.lut import LatencyTable, Stats

    def device_ms(a: Arch) -> float:
        return net_truth(a) * (1.25 if _relu_share(a) > 0.3 else 1.0)

    blocks, nets = table
    nets = {s: device_ms(parse_string(s)) for s in nets}

    def st(v):
        return Stats(v, v, v, 0.0, 5)

    LatencyTable("d", "min", {}, {k: st(v) for k, v in blocks.items()},
                 {k: st(v) for k, v in nets.items()}).save()
    measured: list[Arch] = []

    def fake_profile_archs(dev, archs, **kw):
        t = LatencyTable.load(dev.name)
        new = {p.key: st(truth_ms(p)) for a in archs for p in arch_pieces(a)
               if p.key not in t.blocks}
        t.add_blocks(new)
        t.add_networks({a.to_string(): st(device_ms(a)) for a in archs}, "measure")
        t.save()
        measured.extend(archs)
        return refine_mod.ArchsReport(dev.name, len(archs), 0, 0, 0, len(new), len(archs))

    monkeypatch.setattr(refine_mod, "profile_archs", fake_profile_archs)
    rep = refine_mod.refine("d", 6, folds=3)
    assert rep.networks == len(measured) == 6 and rep.pieces >= 0
    assert len(LatencyTable.load("d").networks) == len(nets) + 6
    table_share = np.mean([_relu_share(parse_string(s)) for s in nets])
    picked_share = np.mean([_relu_share(a) for a in measured])
    assert picked_share > table_share + 0.15
    worst = max(rep.before, key=lambda g: rep.before[g][1])
    assert "/relu" in worst and rep.after[worst][0] > rep.before[worst][0]
    out = rep.summary()
    assert "measured 6 network(s)" in out and worst in out and "before" in out
    with pytest.raises(HwnasError, match="--refine must be >= 0"):
        refine_mod.refine("d", -1)


# ---- the network model stays within the corrections it measured ---------------------------------

def test_network_model_correction_is_clipped_to_the_measured_range():
    from hwnas.predictor import ARCH_FEATURES, NetworkModel

    rng = np.random.default_rng(0)
    X = np.zeros((40, len(ARCH_FEATURES)))
    X[:, 0] = rng.uniform(1.0, 2.0, 40)  # block_sum
    X[:, 1] = rng.integers(16, 21, 40)  # pieces
    y = X[:, 0] + 0.2 * (X[:, 1] - 18)
    small = np.zeros((1, len(ARCH_FEATURES)))
    small[0, :2] = (0.5, 8)  # a much smaller network, with far fewer pieces
    free = NetworkModel(features=("block_sum", "pieces"), clip=False).fit(X, y)
    clipped = NetworkModel(features=("block_sum", "pieces")).fit(X, y)
    lo, hi = clipped.ratio_range_
    assert lo == pytest.approx(float(np.min(y / X[:, 0])))
    assert free.predict(small)[0] < lo * 0.5  # the linear terms extrapolate below any ratio
    assert clipped.predict(small)[0] == pytest.approx(lo * 0.5)
    np.testing.assert_allclose(clipped.predict(X), free.predict(X), rtol=1e-6)  # in range


def test_cli_profile_without_space_needs_archs_or_refine(home, capsys):
    from hwnas.cli import main

    assert main(["device", "add", "loc", "--target", "local"]) == 0
    for args, fragment in ((["--device", "loc"], "or --archs FILE... alone"),
                           (["--device", "loc", "--space", "mobilenetv2"], "--resolution R"),
                           (["--device", "loc", "--refine", "-1"], "--refine must be >= 0"),
                           (["--device", "loc", "--archs", "baselines"], "has no table yet")):
        capsys.readouterr()
        assert main(["profile", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1, err
