"""The latency predictor: analytical costs, block model, network model, persistence, CLI.

Most tests use a synthetic table whose ground truth is known: a block's latency is a
linear function of its analytical costs, and a whole network takes
``1.1 x (sum of its blocks) + 0.3 ms`` plus 0.5 % noise (per-inference overhead and
effects between blocks that a plain sum misses). One test profiles a tiny space for real
with ``hwnas profile`` (onnxruntime on this machine) and runs the commands on it.
"""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest
from conftest import assert_one_line_error

from hwnas.arch import Arch, Block, parse_string
from hwnas.errors import HwnasError
from hwnas.pieces import Piece, arch_pieces
from hwnas.predictor import (
    PREDICTORS,
    ArchFeatures,
    BlockModel,
    LatencyPredictor,
    PieceFeatures,
    evaluate,
    latency_metrics,
    network_groups,
    piece_costs,
)
from hwnas.space import load_space

SPACE = """\
name: ptiny
resolutions: [32, 64]
stem: {out: 8, kernel: 3, stride: 2, act: relu6}
stages:
  - {out: 8, stride: 1, depth: 1, kernel: [3], expand: [1]}
  - {out: 16, stride: 2, depth: [1, 2], kernel: [3, 5], expand: [3, 6], width: [0.5, 1.0]}
  - {out: 24, stride: 2, depth: [1, 3], kernel: [3, 5], expand: [3, 6], width: [0.75, 1.0]}
head: {out: 64, act: relu6}
classes: 10
"""

SLOPE, OVERHEAD = 1.1, 0.3  # the synthetic network truth: SLOPE * block sum + OVERHEAD


def truth_ms(p: Piece) -> float:
    """Synthetic block latency: linear in the analytical costs (so learnable off the table)."""
    c = piece_costs(p)
    return 0.004 + 2e-6 * c.macs + 1e-8 * c.bytes + 0.002 * c.ops


def net_truth(a: Arch) -> float:
    return SLOPE * sum(truth_ms(p) for p in arch_pieces(a)) + OVERHEAD


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    p = tmp_path_factory.mktemp("space") / "ptiny.yaml"
    p.write_text(SPACE)
    return load_space(p)


@pytest.fixture(scope="module")
def synth(space):
    """(blocks, networks, held-out archs): every block of the space at 32 and 64, 80 sampled
    networks (40 per resolution) with 0.5 % noise, and 30 more networks held out."""
    rng = np.random.default_rng(0)
    blocks = {p.key: truth_ms(p) for r in (32, 64) for p in space.pieces(r)}
    archs = _distinct(space, 110, seed=1)
    nets = {a.to_string(): net_truth(a) * (1 + 0.005 * rng.standard_normal()) for a in archs[:80]}
    return blocks, nets, archs[80:]


def _distinct(space, n, seed):
    out: dict[str, Arch] = {}
    rng = random.Random(seed)
    while len(out) < n:
        r = rng.choice([32, 64])
        a = space.arch_from_params(space.sample_params(rng), r)
        out.setdefault(a.to_string(), a)
    return list(out.values())


@pytest.fixture(scope="module")
def fitted(synth):
    blocks, nets, _ = synth
    return LatencyPredictor().fit(blocks, nets)


def mape(t, p):
    t, p = np.asarray(t), np.asarray(p)
    return float(np.mean(np.abs(p / t - 1)))


# ---- analytical costs ---------------------------------------------------------------------------

def test_piece_costs_match_torch_counts(space):
    """params, MACs and peak activation bytes computed from the key equal hwnas.model's
    counts on the built torch modules (stem, blocks with/without expansion, SE, hswish,
    residual, head, classifier)."""
    from hwnas.baselines import baseline
    from hwnas.model import build_piece, count_macs, count_params, piece_input, piece_peak_bytes

    pieces = {p.key: p for a in (baseline("mbv3-small", 64), baseline("mbv2-0.5", 64))
              for p in arch_pieces(a)}
    pieces.update({p.key: p for p in space.pieces(32)[:12]})
    assert any(p.se for p in pieces.values()) and any(p.act == "hswish" for p in pieces.values())
    for p in pieces.values():
        m = build_piece(p)
        c = piece_costs(p)
        assert (c.params, c.macs, c.peak_bytes) == (
            count_params(m), count_macs(m, piece_input(p)), piece_peak_bytes(p)), p.key


def test_piece_features_transformer(space):
    ps = space.pieces(32)
    for kind in ("shape", "cost"):
        t = PieceFeatures(kind).fit(ps)
        X = t.transform([p.key for p in ps])  # keys or Pieces
        assert X.shape == (len(ps), len(t.get_feature_names_out()))
        assert np.array_equal(X, t.transform(ps))
        assert np.isfinite(X).all()
    with pytest.raises(ValueError):
        PieceFeatures("nope").fit(ps)


# ---- block model --------------------------------------------------------------------------------

def test_block_model_predicts_keys_absent_from_the_table(synth, space):
    """Fitted on the blocks at 32 only, it answers for the blocks at 64 (a resolution the
    table lacks) close to the truth, and says which keys lie far outside the measurements."""
    blocks, _, _ = synth
    at32 = {p.key: truth_ms(p) for p in space.pieces(32)}
    bm = BlockModel().fit(list(at32), list(at32.values()))
    unseen = [p for p in space.pieces(64) if p.key not in at32]
    pred = bm.predict(unseen)
    assert mape([truth_ms(p) for p in unseen], pred) < 0.10
    # inside the measured ranges: no note; far outside (huge width, unseen kernel): a note
    assert bm.extrapolation(space.pieces(32)[3]) is None
    wide = Piece("mb", 16, 16, 640, 3, 1, 96, 0, "relu6", False)
    assert "cout=640" in bm.extrapolation(wide)
    k9 = Piece("mb", 8, 16, 16, 9, 1, 96, 0, "relu6", True)
    assert "kernel 9" in bm.extrapolation(k9)


def test_block_model_is_deterministic_and_checks_fitted(synth):
    from sklearn.exceptions import NotFittedError

    blocks, _, _ = synth
    keys, y = list(blocks), list(blocks.values())
    with pytest.raises(NotFittedError):
        BlockModel().predict(keys)
    a = BlockModel().fit(keys, y).predict(keys)
    b = BlockModel().fit(keys, y).predict(keys)
    assert np.array_equal(a, b)
    assert BlockModel().fit(keys, y) is not None  # fit returns self
    bm = BlockModel()
    assert bm.fit(keys, y) is bm


# ---- network model and the full predictor -------------------------------------------------------

def test_network_model_recovers_known_overhead(fitted, synth):
    """The sum of blocks misses the 1.1x + 0.3 ms of the truth; the full predictor recovers
    it on networks it was not fitted on."""
    blocks, _, held = synth
    true = [net_truth(a) for a in held]
    lut = [fitted.lut_sum(a) for a in held]
    assert all(s < t for s, t in zip(lut, true, strict=True))  # the LUT sum underestimates
    pred = fitted.predict(held)
    assert mape(true, pred) < 0.02
    assert mape(true, pred) < mape(true, lut) / 5


def test_missing_keys_predicted_by_block_model_and_flagged(synth, space):
    """Drop a third of the MBConv blocks at 64 from the table: explain() marks exactly those as not
    in the table, the block model's values for them are close to the truth, and the
    networks using them are still predicted well."""
    blocks, nets, held = synth
    drop = {p.key for p in space.pieces(64) if p.kind == "mb"}
    drop = set(sorted(drop)[::3])
    pred = LatencyPredictor().fit({k: v for k, v in blocks.items() if k not in drop}, nets)
    users = [a for a in held if any(p.key in drop for p in arch_pieces(a))]
    assert users
    for a in users:
        rows = pred.explain(a)
        assert [r[0] for r in rows] == [p.key for p in arch_pieces(a)]
        for key, ms, in_table in rows:
            assert in_table == (key not in drop)
            if in_table:
                assert ms == blocks[key]
            else:
                assert ms == pytest.approx(truth_ms(Piece.from_key(key)), rel=0.1)
        assert pred.lut_sum(a) is None
    assert mape([net_truth(a) for a in users], pred.predict(users)) < 0.03


def test_predict_batch_equals_one_by_one_in_any_order(fitted, synth):
    _, _, held = synth
    batch = fitted.predict(held)
    single = np.array([fitted.predict([a])[0] for a in reversed(held)])[::-1]
    np.testing.assert_allclose(batch, single, rtol=1e-12)
    assert fitted.predict([]).shape == (0,)


def test_arch_features_are_sums_over_pieces(fitted, synth):
    """block_sum / pieces / macs / params columns equal the per-piece values added up."""
    _, _, held = synth
    f = ArchFeatures(fitted.block_model_, fitted.blocks_).fit()
    X = f.transform(held[:5])
    names = list(f.get_feature_names_out())
    for a, row in zip(held[:5], X, strict=True):
        ps = arch_pieces(a)
        assert row[names.index("pieces")] == len(ps)
        assert row[names.index("macs")] == sum(piece_costs(p).macs for p in ps)
        assert row[names.index("params")] == sum(piece_costs(p).params for p in ps)
        assert row[names.index("block_sum")] == pytest.approx(sum(fitted.blocks_[p.key] for p in ps))
        stages = [row[names.index(f"stage{i}_sum")] for i in range(6)]
        assert sum(stages) == pytest.approx(row[names.index("block_sum")])


def test_too_few_networks_says_how_many_are_needed(synth):
    blocks, nets, _ = synth
    few = dict(list(nets.items())[:7])
    with pytest.raises(HwnasError, match=r"7, need at least 20"):
        LatencyPredictor().fit(blocks, few)


def test_operator_never_measured_is_refused(fitted, synth):
    _, _, held = synth
    a = held[0]
    hs = Arch(a.resolution, a.stem, (*a.blocks[:-1], Block(3, 6, 24, 1, 0.25, "hswish")), a.head,
              a.classes)
    with pytest.raises(HwnasError, match="never measured"):
        fitted.predict([hs])


def test_resolution_outside_the_measured_ones_is_refused(fitted, synth):
    _, _, held = synth
    a = held[0]
    assert fitted.predict([a.with_resolution(48)])[0] > 0  # between 32 and 64: interpolated
    with pytest.raises(HwnasError, match="no latency table at resolution 128"):
        fitted.predict([a.with_resolution(128)])


# ---- persistence ---------------------------------------------------------------------------------

def test_saved_as_data_and_refitted_identically(fitted, synth, tmp_path):
    _, _, held = synth
    p = fitted.save(tmp_path / "pred.json")
    d = json.loads(p.read_text())  # plain JSON: settings + training measurements
    assert d["kind"] == "hwnas-predictor"
    assert set(d["training"]) == {"blocks", "networks"}
    assert len(d["training"]["networks"]) == len(fitted.networks_)
    loaded = LatencyPredictor.load(p)
    assert np.array_equal(loaded.predict(held), fitted.predict(held))
    # settings travel: a saved non-default setting is used on load
    custom = LatencyPredictor.from_settings({"network_model": {"features": ["block_sum"]}})
    custom.fit(fitted.blocks_, fitted.networks_).save(tmp_path / "c.json")
    assert LatencyPredictor.load(tmp_path / "c.json").network_model_.features == ("block_sum",)


@pytest.mark.parametrize("text, fragment", [
    ("not json", "not a readable predictor file"),
    ('{"kind": "other"}', "not an hwnas predictor file"),
    ('{"kind": "hwnas-predictor", "schema": 1, "training": {"blocks": {}}}', "training must hold"),
])
def test_bad_predictor_files(tmp_path, text, fragment):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(HwnasError, match=fragment):
        LatencyPredictor.load(p)


# ---- metrics and evaluation ----------------------------------------------------------------------

def test_latency_metrics():
    m = latency_metrics([1.0, 2.0, 4.0, 10.0], [1.04, 2.3, 3.9, np.nan])
    assert m["n"] == 3  # the missing prediction is left out
    assert m["within5_pct"] == pytest.approx(200 / 3)
    assert m["within10_pct"] == pytest.approx(200 / 3)
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert m["rmse_ms"] == pytest.approx(np.sqrt((0.04 ** 2 + 0.3 ** 2 + 0.1 ** 2) / 3))
    assert latency_metrics([1.0], [np.nan])["n"] == 0


def test_evaluate_ablation_on_known_truth(synth, space):
    """k-fold: the full predictor beats the LUT sum (which misses the overhead), baselines
    (held out, blocks partly outside the table) are predicted with the block model."""
    from hwnas.baselines import baseline

    blocks, nets, _ = synth
    base = baseline("mbv2-0.35", 64, 10)
    nets = dict(nets, **{base.to_string(): net_truth(base)})
    groups = network_groups(nets, [space])
    assert groups[base.to_string()] == "baselines"
    assert {g for g in groups.values()} == {"ptiny@32", "ptiny@64", "baselines"}
    ev = evaluate(blocks, nets, groups, folds=4)
    rows = {(r["group"], r["predictor"]): r for r in ev.rows}
    assert {p for _, p in rows} == set(PREDICTORS)
    for g in ("ptiny@32", "ptiny@64", "all space networks"):
        assert rows[(g, "full")]["mape_pct"] < rows[(g, "lut_sum")]["mape_pct"]
        assert rows[(g, "full")]["within5_pct"] > rows[(g, "lut_sum")]["within5_pct"]
    assert rows[("ptiny@32", "full")]["n"] == sum(g == "ptiny@32" for g in groups.values())
    assert rows[("baselines", "lut_sum")]["n"] == 0  # its blocks are not all in the table
    assert rows[("baselines", "full")]["n"] == 1
    # every network was predicted by a model that did not see it
    for r in ev.predictions.values():
        assert np.isfinite(r["full"]) and np.isfinite(r["macs_linear"])
    assert ev.to_csv().splitlines()[0].startswith("group,predictor,n,rmse_ms")
    assert len(ev.predictions_csv().splitlines()) == len(nets) + 1


# ---- commands ------------------------------------------------------------------------------------

class Run:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


@pytest.fixture
def main(home, capsys):
    """``hwnas ARGS`` in this process (the subprocess start-up costs seconds on a busy
    machine); the same parser, handlers and one-line error path as the command."""
    from hwnas.cli import main as cli_main

    def run(*args, check=None):
        capsys.readouterr()
        rc = cli_main([str(a) for a in args])
        out, err = capsys.readouterr()
        r = Run(rc, out, err)
        if check is not None:
            assert rc == check, f"exit {rc}\n{out}\n{err}"
        return r

    return run


def _write_table(home, synth, device="syn", networks=None, provenance=None):
    from hwnas.profiling.lut import LatencyTable, Stats

    blocks, nets, _ = synth
    nets = nets if networks is None else networks

    def st(v):
        return Stats(v, v * 1.01, v * 1.02, v * 0.01, 20)

    prov = {"onnxruntime": "0.0.1", "threads": 1, "cpu_model": "synthetic", "machine": "x86_64"}
    t = LatencyTable(device, "min", provenance or prov, {k: st(v) for k, v in blocks.items()},
                     {k: st(v) for k, v in nets.items()})
    t.save()
    d = home / "search_spaces"
    d.mkdir(exist_ok=True)
    (d / "ptiny.yaml").write_text(SPACE)
    return device


def test_cli_predict_breakdown_and_eval_csv(cli, home, synth):
    dev = _write_table(home, synth)
    _, _, held = synth
    a = held[0]
    r = cli("predict", a.to_string(), "--device", dev, check=0)
    out = r.stdout
    assert "predicted" in out and "every block in the table" in out
    for p in arch_pieces(a):
        assert p.key in out
    val = float(out.split("predicted")[1].split("ms")[0])
    assert val == pytest.approx(net_truth(a), rel=0.03)
    r = cli("predictor", "eval", "--device", dev, "--space", "ptiny", "-r", "64",
            "--folds", "4", "--predictions", home / "p.csv", check=0)
    assert "ptiny@64" in r.stdout and "ptiny@32" not in r.stdout
    for name in ("MACs-linear", "LUT sum", "block-model sum", "full predictor"):
        assert name in r.stdout
    rows = (home / "latency_tables" / dev / "predictor_eval.csv").read_text().splitlines()
    assert rows[0] == "group,predictor,n,rmse_ms,mape_pct,within5_pct,within10_pct,kendall_tau"
    assert [x.split(",")[1] for x in rows[1:]] == list(PREDICTORS)
    assert (home / "p.csv").is_file()


def test_cli_fit_saves_and_predict_uses_saved(main, home, synth):
    dev = _write_table(home, synth)
    _, _, held = synth
    r = main("predictor", "fit", "--device", dev, "-o", home / "pred.json", check=0)
    assert "saved" in r.stdout
    a = held[1].to_string()
    one = main("predict", a, "--device", dev, check=0).stdout
    two = main("predict", a, "--device", dev, "--predictor", home / "pred.json", check=0).stdout
    assert one.split("predicted")[1].split("\n")[0] == two.split("predicted")[1].split("\n")[0]


def test_cli_block_not_in_table_is_marked(main, home, synth):
    dev = _write_table(home, synth)
    r = main("predict", "mbv2-0.35@64", "--device", dev, check=0)
    assert "predicted by the block model" in r.stdout
    assert "block model" in r.stdout.split("block key")[1]


def test_warns_on_other_onnxruntime_or_threads(home, synth, caplog):
    """Fitted on measurements made with onnxruntime 0.0.1 and 1 thread; the device is now
    local (this machine's onnxruntime) with 2 threads: both are named in a warning."""
    from hwnas.profiling.hosts import DeviceConfig, save_device

    dev = _write_table(home, synth)
    save_device(DeviceConfig(dev, "local", threads=2))
    with caplog.at_level(logging.WARNING, logger="hwnas.predictor"):
        pred = LatencyPredictor.for_device(dev)
    text = caplog.text
    assert "onnxruntime 0.0.1" in text and "threads 1" in text
    caplog.clear()
    pred.save(home / "p.json")
    with caplog.at_level(logging.WARNING, logger="hwnas.predictor"):
        LatencyPredictor.load(home / "p.json")
    assert "threads 1" in caplog.text


def test_no_warning_when_device_matches(home, synth, caplog):
    from importlib.metadata import version

    from hwnas.profiling.hosts import DeviceConfig, save_device

    prov = {"onnxruntime": version("onnxruntime"), "threads": 1}
    dev = _write_table(home, synth, provenance=prov)
    save_device(DeviceConfig(dev, "local", threads=1))
    with caplog.at_level(logging.WARNING, logger="hwnas.predictor"):
        LatencyPredictor.for_device(dev)
    assert "fitted on measurements" not in caplog.text


def test_cli_bad_input_one_line(main, home, synth):
    blocks, nets, held = synth
    a = held[0]
    r = main("predict", a.to_string(), "--device", "nosuch")
    assert_one_line_error(r, "no latency table")
    few = _write_table(home, synth, device="few", networks=dict(list(nets.items())[:5]))
    r = main("predict", a.to_string(), "--device", few)
    assert_one_line_error(r, "too few whole-network measurements", "need at least 20")
    dev = _write_table(home, synth)
    r = main("predict", a.with_resolution(224).to_string(), "--device", dev)
    assert_one_line_error(r, "no latency table at resolution 224")
    r = main("predict", "mbv3-small@64", "--device", dev)  # hswish and SE never measured
    assert_one_line_error(r, "never measured")
    r = main("predictor", "eval", "--device", dev, "--space", "mobilenetv2")
    assert_one_line_error(r, "no whole-network measurements of mobilenetv2")
    stored = home / "latency_tables" / dev / "predictor.json"
    stored.write_text("{broken")
    r = main("predict", a.to_string(), "--device", dev)
    assert_one_line_error(r, "predictor.json", "not a readable predictor file")
    assert stored.read_text() == "{broken"


# ---- real measurements -----------------------------------------------------------------------------

@pytest.mark.slow
def test_real_profile_then_predict_and_eval(cli, home):
    """Profile a tiny space for real (onnxruntime on this machine, quick protocol), then the
    commands run on it: predictions are positive, explain matches the table, eval writes
    all four predictors. No accuracy is asserted (timings here are noisy)."""
    d = home / "search_spaces"
    d.mkdir()
    (d / "ptiny.yaml").write_text(SPACE)
    cli("device", "add", "loc", "--target", "local", check=0)
    cli("profile", "--device", "loc", "--space", "ptiny", "-r", "32", "--networks", "30",
        "--quick", check=0)
    from hwnas.profiling.lut import LatencyTable

    t = LatencyTable.load("loc")
    pred = LatencyPredictor.for_device("loc")
    archs = [parse_string(s) for s in t.networks]
    y = pred.predict(archs)
    assert (y > 0).all() and np.isfinite(y).all()
    rows = pred.explain(archs[0])
    assert all(in_table for _, _, in_table in rows)
    assert [ms for _, ms, _ in rows] == [t.block_ms(p.key) for p in arch_pieces(archs[0])]
    r = cli("predictor", "eval", "--device", "loc", "--folds", "3", check=0)
    assert "ptiny@32" in r.stdout and "full predictor" in r.stdout


# ---- the device as an object: read once, passed along --------------------------------------------

def test_device_reads_its_table_once_and_keeps_its_predictor(home, synth, monkeypatch):
    from hwnas.context import Device
    from hwnas.profiling.lut import LatencyTable

    dev = _write_table(home, synth)
    reads = []
    real = LatencyTable.load.__func__
    monkeypatch.setattr(LatencyTable, "load",
                        classmethod(lambda cls, name: reads.append(name) or real(cls, name)))
    d = Device.load(dev)
    pred = d.predictor()
    assert d.predictor() is pred and d.table is d.table
    assert reads == [dev]  # fitting, the device check and .table share one read
    _, _, held = synth
    fresh = LatencyPredictor.for_device(dev)
    assert np.allclose(pred.predict(held[:5]), fresh.predict(held[:5]))
    median = d.predictor("median")
    assert median is not pred and median.statistic == "median"
    with pytest.raises(HwnasError, match="unknown device"):
        d.config  # noqa: B018 -- no device.json
    assert d.config_or_default.target == "local"
    with pytest.raises(HwnasError, match="no latency table"):
        Device.load("nosuch").table  # noqa: B018
    with pytest.raises(HwnasError, match="bad device name"):
        Device.load("../up")


def test_lut_sum_has_one_contract(synth):
    """The function: None when a piece is missing; the table's method: an error naming it."""
    from hwnas.profiling.lut import LatencyTable, Stats, lut_sum

    blocks, _, held = synth
    a = held[0]
    want = sum(blocks[p.key] for p in arch_pieces(a))
    assert lut_sum(blocks, a) == pytest.approx(want)
    first = arch_pieces(a)[0].key
    assert lut_sum({k: v for k, v in blocks.items() if k != first}, a) is None
    t = LatencyTable("t", "median", {}, {k: Stats(v / 2, v / 2, v, 0.0, 3) for k, v in blocks.items()})
    assert t.lut_sum(a) == pytest.approx(want)
    assert t.latencies("min")[0] == {k: v / 2 for k, v in blocks.items()}
    del t.blocks[first]
    with pytest.raises(HwnasError, match=first):
        t.lut_sum(a)


def test_eval_json_is_one_document_and_warns_when_macs_linear_wins(main, home, synth):
    """issue 24.5: predictor eval --json prints one JSON document and nothing else on stdout;
    a full predictor worse than MACs-linear on held-out networks is said, with what to do."""
    from hwnas.predictor.evaluate import Evaluation

    dev = _write_table(home, synth)
    r = main("predictor", "eval", "--device", dev, "--space", "ptiny", "-r", "64", "--folds",
             "4", "--json", check=0)
    doc = json.loads(r.stdout)  # the whole of stdout is one document
    (ev,) = doc["evaluations"]
    assert doc["device"] == dev and ev["precision"] == "fp32" and ev["statistic"]
    assert {x["predictor"] for x in ev["rows"]} == set(PREDICTORS)
    assert ev["written"] and ev["written"][0].endswith("predictor_eval.csv")

    def rows(full, lin):
        return [{"group": "baselines", "predictor": p, "n": 5, "mape_pct": m}
                for p, m in (("macs_linear", lin), ("lut_sum", 9.0), ("block_sum", 8.0),
                             ("full", full))]

    bad = Evaluation(rows(12.5, 4.0), {}, 4, {})
    w = bad.warning("pi")
    assert w.startswith("the full predictor is worse than MACs-linear on held-out networks")
    assert "12.5 % vs 4.0 % MAPE" in w and "--networks" in w and "--refine" in w
    assert "\n" not in w
    assert Evaluation(rows(3.0, 4.0), {}, 4, {}).warning("pi") is None
