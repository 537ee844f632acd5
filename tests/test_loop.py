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


def _queue_trials(run_dir: Path, study: str) -> list:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(run_dir / "loop-queue.log")))
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


SMALL_SPACE = """\
name: small
resolutions: [32]
stem: {out: 8, kernel: 3, stride: 2, act: relu6}
stages:
  - {out: 8, stride: 1, depth: [1, 2], kernel: [3, 5], expand: [1, 3]}
  - {out: 16, stride: 2, depth: [1, 2], kernel: [3, 5], expand: [3, 6], se: [0, 0.25]}
head: {out: 32, act: hswish}
classes: 10
"""


@pytest.fixture
def small_loop(home):
    """HWNAS_HOME with a small space (:data:`SMALL_SPACE`), its synthetic table on device 't',
    and the LoopRun of a train-oracle loop of 4 trainings in 2 rounds (1 epoch, 64 images)."""
    from hwnas.search.loop_run import LoopRun

    (home / "search_spaces").mkdir()
    (home / "search_spaces" / "small.yaml").write_text(SMALL_SPACE)
    synthetic_table("small", "t")  # (the tiny space has fewer than its 30 networks)
    return LoopRun(run="Q", space="small", device="t", resolution=32, oracle="train",
                   data="digits", epochs=1, budget=4, rounds=1, subset=64)


def test_train_oracle_trains_through_the_retrain_queue(small_loop):
    """--oracle train: each (arch, seed) is a work item of the retrain queue in the run folder,
    each result a retrain result file; loop.json says what the number is (recipe, data, the
    validation split) and each round's predictor CV."""
    from hwnas.paths import runs_dir
    from hwnas.search.loop_run import run_loop_search

    out = run_loop_search(small_loop, progress=False)
    assert out["trained"] == 4 and out["score_column"] == "val_acc"
    run_dir = runs_dir() / "Q"
    state = json.loads((run_dir / "loop.json").read_text())
    o = state["oracle"]
    assert o["kind"] == "train" and o["column"] == "val_acc"
    assert o["data_spec"] == "digits[val0.2,seed0]"
    assert "validation" in o["split"] and "test split is not used" in o["split"]
    assert o["recipe"]["epochs"] == 1 and o["recipe"]["subset"] == 64
    assert o["queue"]["storage"] == str(run_dir / "loop-queue.log")
    assert [t["round"] for t in state["trained"]] == [0, 0, 1, 1]
    assert [(r["round"], r["trained"]) for r in state["rounds"]] == [(0, 2), (1, 2)]
    assert "cv_kendall_tau" in state["rounds"][1] and "cv_kendall_tau" in state["predictor"]
    trials = _queue_trials(run_dir, o["queue"]["study"])
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4
    assert all(t.user_attrs["item"].endswith("/seed0") and t.user_attrs["onnx"] is False
               for t in trials)
    results = {json.loads(p.read_text())["arch"]: json.loads(p.read_text())
               for p in (run_dir / "retrain" / o["recipe_id"]).glob("*/seed0.json")}
    assert len(results) == 4
    for t in state["trained"]:
        assert t["val_acc"] == pytest.approx(results[t["arch"]]["test_acc"])
        assert results[t["arch"]]["data"] == "digits[val0.2,seed0]"
    assert not (run_dir / "models").exists()  # no ONNX export
    head = (run_dir / "loop-trained.csv").read_text().splitlines()[0]
    assert head.startswith("arch,val_acc,latency_ms")
    # hwnas view: the rounds, the CV tau, the front of the trained archs
    from hwnas.cli import main

    assert main(["view", "Q"]) == 0
    page = (run_dir / "report.html").read_text()
    assert "train-predict-search loop" in page and "Rounds" in page and "val_acc" in page
    assert "optimistic front" in page and "validation" in page
    front = (run_dir / "loop-front.csv").read_text().splitlines()[1].split(",")[0]
    assert front[:60] in page and "no figures" in page
    tau = state["rounds"][1]["cv_kendall_tau"]
    assert tau is None or f"{tau:.3f}" in page


def test_a_second_process_trains_part_of_a_loop_round(cli, small_loop, monkeypatch):
    """Killed in round 0 after one training (Ctrl-C: its item goes back to the queue), a second
    process (hwnas retrain RUN --train-only) trains the item left; the resumed loop takes both
    results without training them again, then trains round 1 itself."""
    import os

    import hwnas.retrain.queue as rq
    from hwnas.paths import runs_dir
    from hwnas.search.loop_run import run_loop_search

    real, calls = rq.train_one, []

    def counted(*a, **k):
        calls.append(a[0].arch.to_string())
        if len(calls) == 2 and dying:
            raise KeyboardInterrupt
        return real(*a, **k)

    dying = True
    monkeypatch.setattr(rq, "train_one", counted)
    with pytest.raises(KeyboardInterrupt):
        run_loop_search(small_loop, progress=False)
    run_dir = runs_dir() / "Q"
    state = json.loads((run_dir / "loop.json").read_text())
    o = state["oracle"]
    assert state["trained"] == []
    trials = _queue_trials(run_dir, o["queue"]["study"])
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "FAIL"]  # round 0: 2 items
    r = cli("retrain", "Q", "--train-only", "-q", check=0)
    assert "1 trainings in this call; 0 item(s)" in r.stdout
    dying, before = False, list(calls)
    out = run_loop_search(small_loop, progress=False)
    assert out["trained"] == 4
    assert len(calls) == len(before) + 2 and not set(calls[len(before):]) & set(before)
    results = list((run_dir / "retrain" / o["recipe_id"]).glob("*/seed0.json"))
    workers = {json.loads(p.read_text())["worker"].split(":")[1] for p in results}
    assert len(results) == 4 and str(os.getpid()) in workers and len(workers) == 2
    done = [t for t in _queue_trials(run_dir, o["queue"]["study"]) if t.state.name == "COMPLETE"]
    assert len(done) == 4
