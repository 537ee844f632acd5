"""Predictor per precision and hwnas search --precision fp32|int8|search, on a synthetic
table of a tiny space whose int8 entries are faster for relu6 blocks and slower for hswish."""

from __future__ import annotations

import csv
import json
import random

import pytest
from conftest import assert_one_line_error, put_space

from hwnas.profiling.lut import LatencyTable, Stats


@pytest.fixture
def syn(home):
    put_space(home, "tiny-int8", "tiny")
    from hwnas.pieces import arch_pieces
    from hwnas.predictor import piece_costs
    from hwnas.space import load_space

    def ms(p, prec):
        c = piece_costs(p)
        v = 0.004 + 2e-6 * c.macs + 0.002 * c.ops
        return v if prec == "fp32" else v * (1.6 if p.act == "hswish" or p.se else 0.5)

    sp = load_space("tiny")
    rng, archs = random.Random(0), {}
    while len(archs) < 30:
        a = sp.arch_from_params(sp.sample_params(rng), 32)
        archs[a.to_string()] = a

    def st(v):
        return Stats(v, v * 1.01, v * 1.02, v * 0.01, 20)

    prov = {"onnxruntime": "0.0.1", "threads": 1, "cpu_model": "synthetic", "machine": "x86_64"}
    t = LatencyTable("syn", "min", prov)
    for prec, sfx in (("fp32", ""), ("int8", "@int8")):
        t.add_blocks({p.key + sfx: st(ms(p, prec)) for p in sp.pieces(32)})
        t.add_networks({k + sfx: st(1.1 * sum(ms(p, prec) for p in arch_pieces(a)) + 0.3)
                        for k, a in archs.items()}, "profile")
    t.save()
    LatencyTable("plain", "min", prov, dict(t.blocks), dict(t.networks)).save()
    return "syn"


@pytest.fixture
def stub_accuracy(monkeypatch):
    import hwnas.accuracy
    from hwnas.search import arch_costs_fast

    class Params:
        name, classes = "params-stand-in", 10

        def score(self, archs):
            return [-float(arch_costs_fast(a)[0]) for a in archs]

    monkeypatch.setattr(hwnas.accuracy, "make_estimator", lambda *a, **k: Params())


def test_predictor_per_precision(syn):
    from hwnas.arch import Arch
    from hwnas.context import Device

    dev = Device.load(syn)
    t = dev.table
    f, q = dev.predictor(), dev.predictor(precision="int8")
    archs = [Arch.from_string(k) for k in list(t.networks)[:10]]
    pf, pq = f.predict(archs), q.predict(archs)
    mf = [t.network_ms(a.to_string()) for a in archs]
    mq = [t.view("int8").network_ms(a.to_string()) for a in archs]
    assert pf == pytest.approx(mf, rel=0.1) and pq == pytest.approx(mq, rel=0.1)
    assert q.provenance_["precision"] == "int8" and "precision" not in f.provenance_
    with pytest.raises(Exception, match="--precision fp32,int8"):
        Device.load("plain").predictor(precision="int8")


def test_search_int8_and_search_precision(syn, stub_accuracy):
    from hwnas.arch import Arch
    from hwnas.context import Device
    from hwnas.search import SearchSettings, run_search

    dev = Device.load(syn)
    pq, pf = dev.predictor(precision="int8"), dev.predictor()
    res = run_search(SearchSettings(space="tiny", device=syn, name="q", trials=6, precision="int8"),
                     progress=False)
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["precision"] == "int8" and cfg["settings"]["precision"] == "int8"
    assert cfg["latency_precision"] == "int8"
    rows = [r for r in csv.DictReader(open(res.run_dir / "trials.csv")) if r["state"] == "COMPLETE"]
    assert rows and all(r["precision"] == "int8" for r in rows)
    for r in rows:
        assert float(r["latency_ms"]) == pytest.approx(float(pq.predict([Arch.from_string(r["arch"])])[0]))
    # another precision under the same run name is refused (what its trials mean changed)
    with pytest.raises(Exception, match="precision"):
        run_search(SearchSettings(space="tiny", device=syn, name="q", trials=6), progress=False)

    res = run_search(SearchSettings(space="tiny", device=syn, name="s", trials=16,
                                    precision="search", sampler="random"), progress=False)
    rows = [r for r in csv.DictReader(open(res.run_dir / "trials.csv")) if r["state"] == "COMPLETE"]
    assert {r["precision"] for r in rows} == {"fp32", "int8"}
    for r in rows:
        assert r["p_precision"] == r["precision"]
        pred = pq if r["precision"] == "int8" else pf
        assert float(r["latency_ms"]) == pytest.approx(float(pred.predict([Arch.from_string(r["arch"])])[0]))
    pareto = list(csv.DictReader(open(res.run_dir / "pareto.csv")))
    assert pareto and all(r["precision"] in ("fp32", "int8") for r in pareto)


def test_cli_int8_without_int8_entries_and_eval_per_precision(cli, syn):
    r = cli("search", "--space", "tiny", "--device", "plain", "--name", "x", "--trials", "2",
            "--precision", "int8", "--quiet")
    assert_one_line_error(r, "no int8 entries", "--precision fp32,int8")
    r = cli("predictor", "eval", "--device", syn, "--precision", "fp32,int8", "--folds", "3",
            check=0)
    assert "int8 min latency" in r.stdout and "fp32 min latency" in r.stdout
    d = r.stdout
    assert "predictor_eval.csv" in d and "predictor_eval.int8.csv" in d
    arch = next(iter(LatencyTable.load(syn).networks))
    r = cli("predict", arch, "--device", syn, "--precision", "int8", check=0)
    assert "int8 min latency" in r.stdout
