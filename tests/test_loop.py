"""The train-predict-search loop (hwnas.search.loop, ``hwnas search --accuracy predictor
--train-budget K``): its parts, that it beats random training on NAS-Bench-Macro, and the
command's run folder (resume, bad input)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, synthetic_table

from hwnas.errors import HwnasError
from hwnas.search.loop import LoopSettings, acquire, by_latency, pareto_mask, round_sizes, run_loop

MACRO = Path(__file__).resolve().parents[1] / "hwnas" / "resources" / "nas-bench-macro" / "cifar10.json"


def test_pareto_mask_and_latency_spread():
    acc = np.array([1.0, 2.0, 1.5, 3.0, 2.5])
    lat = np.array([1.0, 2.0, 3.0, 4.0, 4.0])
    assert pareto_mask(acc, lat).tolist() == [True, True, False, True, False]
    rng = np.random.default_rng(0)
    lat = np.arange(100, dtype=float)
    pick = by_latency(lat, 5, rng)
    assert sorted(p // 20 for p in pick) == [0, 1, 2, 3, 4]  # one from each fifth
    trained = np.zeros(100, bool)
    trained[pick] = True
    assert not set(by_latency(lat, 5, rng, trained)) & set(pick)


def test_acquire_takes_the_optimistic_front_then_the_next():
    mean = np.array([1.0, 2.0, 3.0, 0.5, 2.5])
    std = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    lat = np.array([1.0, 2.0, 3.0, 0.5, 3.0])
    trained = np.array([False, False, True, False, False])
    got = acquire(mean, std, lat, 3, trained, kappa=1.0)
    # optimistic front: 3 (0.5 ms), 0, 1, 4 (3.5 at 3 ms); the most uncertain first
    assert got[0] == 4 and len(got) == 3 and 2 not in got
    assert sum(round_sizes(LoopSettings(100, rounds=10, first=0.3))) == 100
    for bad in (LoopSettings(1), LoopSettings(10, rounds=-1), LoopSettings(10, first=0.0)):
        with pytest.raises(HwnasError):
            bad.validate()


@pytest.fixture(scope="module")
def macro():
    from hwnas.accuracy_sources.features import ArchEncoder
    from hwnas.macro import macro_arch

    d = json.loads(MACRO.read_text())
    codes = sorted(d)
    acc = np.array([d[c]["mean_acc"] for c in codes])
    lat = np.array([d[c]["flops"] for c in codes], float) / 1e6  # FLOPs stand in for latency
    X = ArchEncoder().fit_transform([macro_arch(c) for c in codes])
    return acc, lat, X


def _hv(idx, acc, lat):
    import moocore

    idx = np.asarray(sorted(set(idx)))
    ref = np.array([-acc.min(), 1.01 * lat.max()])
    return moocore.hypervolume(np.c_[-acc[idx], lat[idx]], ref=ref)


def test_the_loop_beats_random_training_on_nas_bench_macro(macro):
    """60 trainings: the loop's front holds more of the true hypervolume than 20 random sets
    of 60 networks do at their best (FLOPs as the latency)."""
    from hwnas.accuracy_sources.regressor import AccuracyRegressor

    acc, lat, X = macro

    def fit(idx, y):
        m = AccuracyRegressor(random_state=0).fit(X[idx], np.asarray(y))
        return lambda j: m.predict(X[j], return_std=True)

    calls = []

    def train(idx):
        calls.append(list(idx))
        return acc[idx]

    r = run_loop(lat, train, fit, LoopSettings(60, rounds=5, seed=0))
    assert len(r.trained) == len(set(r.trained)) == 60 == sum(map(len, calls))
    true = _hv(range(len(acc)), acc, lat)
    rng = np.random.default_rng(0)
    best_random = max(_hv(rng.choice(len(acc), 60, replace=False), acc, lat) for _ in range(20))
    assert _hv(r.trained, acc, lat) > best_random
    assert _hv(r.trained, acc, lat) / true > 0.95
    # resumed with what was trained: nothing is trained again
    calls.clear()
    r2 = run_loop(lat, train, fit, LoopSettings(60, rounds=5, seed=0),
                  done=list(zip(r.trained, r.accuracy, strict=True)))
    assert calls == [] and r2.trained == r.trained


@pytest.fixture
def macro_home(home):
    synthetic_table("nas-bench-macro", "m")  # a synthetic latency table of the macro space
    return home


@pytest.mark.slow
def test_search_loop_with_a_table_oracle_resumes_and_refuses_bad_input(cli, macro_home):
    home = macro_home
    args = ("search", "--space", "nas-bench-macro", "--device", "m", "--name", "L",
            "--accuracy", "predictor", "--oracle", f"table:{MACRO}", "--train-rounds", "3")
    r = cli(*args, "--train-budget", "20", check=0)
    assert "20 trained of 6561 candidates" in r.stdout and "next:" in r.stdout
    state = json.loads((home / "runs" / "L" / "loop.json").read_text())
    assert len(state["trained"]) == 20
    truth = json.loads(MACRO.read_text())
    from hwnas.arch import parse_string
    from hwnas.macro import macro_code

    for t in state["trained"]:
        assert t["table_acc"] == pytest.approx(truth[macro_code(parse_string(t["arch"]))]["mean_acc"])
    rows = (home / "runs" / "L" / "loop-trained.csv").read_text().splitlines()
    assert len(rows) == 21 and rows[0].startswith("arch,table_acc,latency_ms")
    # killed after 12: the same command trains only what is missing
    state["trained"] = state["trained"][:12]
    (home / "runs" / "L" / "loop.json").write_text(json.dumps(state))
    r = cli(*args, "--train-budget", "20", check=0)
    again = json.loads((home / "runs" / "L" / "loop.json").read_text())["trained"]
    assert len(again) == 20 and again[:12] == state["trained"]
    # a larger budget goes on from there
    cli(*args, "--train-budget", "26", check=0)
    assert len(json.loads((home / "runs" / "L" / "loop.json").read_text())["trained"]) == 26
    # bad input: one line, exit 2, the run untouched
    before = (home / "runs" / "L" / "loop.json").read_bytes()
    assert_one_line_error(cli(*args[:-2], "--train-rounds", "5", "--train-budget", "26"),
                          "other settings")
    assert_one_line_error(cli("search", "--space", "nas-bench-macro", "--device", "m", "--name",
                              "L2", "--train-budget", "5"), "--accuracy predictor")
    assert_one_line_error(cli(*[a if a != "L" else "L3" for a in args], "--train-budget", "5",
                              "--oracle", "bogus"), "bogus")
    small = home / "small.csv"
    small.write_text("arch,accuracy\nmacro:00000000,50\nmacro:22222222,90\n")
    assert_one_line_error(cli(*[a if a != "L" else "L4" for a in args[:-4]], "--train-rounds", "3",
                              "--oracle", f"table:{small}", "--train-budget", "10"),
                          "is not in table")
    assert (home / "runs" / "L" / "loop.json").read_bytes() == before
    assert sorted(p.name for p in (home / "runs").iterdir()) == ["L"]  # nothing written
    shutil.rmtree(home / "runs" / "L")
