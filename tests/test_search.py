"""hwnas search: objectives, constraints, seeding NSGA-II, resume after kill -9, workers, files.

Most tests inject cheap deterministic stand-ins for the latency predictor and the accuracy
estimator (``STUBS`` below, written to a module file so that spawned workers and killed
subprocesses import the same functions) and search a tiny space at 32 px.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, default_sigint, put_space, run_cli, synthetic_table

STUBS = '''
import math, os, time
from hwnas.search import arch_costs_fast


def latency(archs):
    """MACs-proportional, plus a per-block overhead (ms)."""
    return [arch_costs_fast(a)[1] / 1e6 + 0.2 * len(a.blocks) for a in archs]


def accuracy(archs):
    """Saturating in MACs, small penalty for big kernels; optionally slow and traced."""
    marker = os.environ.get("STUB_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
    out = []
    for a in archs:
        macs = arch_costs_fast(a)[1]
        out.append(1 - 0.9 * math.exp(-macs / 4e6) - 0.002 * sum(b.kernel for b in a.blocks))
    return out
'''

RUNNER = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING)
import optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)
import search_stubs
from hwnas.search import SearchSettings, run_search

if __name__ == "__main__":
    kw = json.loads(sys.argv[1])
    try:
        res = run_search(SearchSettings(**kw), latency_fn=search_stubs.latency,
                         accuracy_fn=search_stubs.accuracy, classes=10, progress=False)
    except KeyboardInterrupt:
        sys.exit(130)
    print(json.dumps({"complete": res.complete, "failed": res.failed}))
"""


@pytest.fixture
def env(home, monkeypatch):
    """HWNAS_HOME with the tiny space and the stand-in module importable (here and in
    subprocesses)."""
    put_space(home, "tiny-search", "tiny")
    (home / "search_stubs.py").write_text(STUBS)
    (home / "runner.py").write_text(RUNNER)
    monkeypatch.syspath_prepend(str(home))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(home), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("search_stubs", None)
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    yield home
    optuna.logging.set_verbosity(verbosity)


def settings(**kw):
    from hwnas.search import SearchSettings

    base = dict(space="tiny", device="stub", name="r", trials=30, resolution=32, population=8)
    base.update(kw)
    return SearchSettings(**base)


def search(**kw):
    import search_stubs

    from hwnas.search import run_search

    return run_search(settings(**kw), latency_fn=search_stubs.latency,
                      accuracy_fn=search_stubs.accuracy, classes=10, progress=False)


def read_csv(p: Path) -> list[dict]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def journal_states(path: Path) -> dict:
    """Trial states from a fresh process reading the journal with plain Optuna."""
    code = textwrap.dedent(f"""
        import json, optuna
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        st = JournalStorage(JournalFileBackend({str(path)!r}))
        s = optuna.load_study(study_name="r", storage=st)
        print(json.dumps([[t.number, t.state.name, t.user_attrs.get("arch"),
                           t.user_attrs.get("seed"), t.user_attrs.get("worker"),
                           t.user_attrs.get("surplus", False)] for t in s.trials]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# ---- small pieces --------------------------------------------------------------------------

def test_parsers_and_bad_settings():
    from hwnas.errors import HwnasError
    from hwnas.search import parse_count, parse_ms, parse_objectives

    assert parse_ms("20ms") == 20 and parse_ms("0.02s") == 20 and parse_ms("15") == 15
    assert parse_count("2M") == 2_000_000 and parse_count("500k") == 500_000
    assert parse_objectives("accuracy,latency,memory") == ("accuracy", "latency", "memory")
    for bad, frag in [(lambda: parse_objectives("accuracy,speed"), "speed"),
                      (lambda: parse_objectives("accuracy"), "at least two"),
                      (lambda: parse_ms("fast"), "fast"),
                      (lambda: parse_count("lots"), "lots"),
                      (lambda: settings(sampler="cmaes").validate(), "cmaes"),
                      (lambda: settings(name="../x").validate(), "run name")]:
        with pytest.raises(HwnasError, match=frag):
            bad()


def test_costs_match_the_torch_model():
    from hwnas.model import arch_costs
    from hwnas.search import arch_costs_fast
    from hwnas.space import load_space

    for space, res in (("mobilenetv2", 64), ("mobilenetv3", 64)):
        for a in load_space(space).sample(3, 1, res):
            a = replace(a, classes=10)
            c = arch_costs(a)
            assert arch_costs_fast(a) == (c.params, c.macs, c.peak_act_bytes)


def test_hypervolume_and_pareto_helpers():
    from hwnas.search import hypervolume, pareto_mask

    dirs = ["maximize", "minimize"]
    ref = [0.0, 20.0]
    a, b = (0.8, 10.0), (0.5, 4.0)
    # two rectangles down to the reference point, minus their overlap
    expected = 0.8 * 10 + 0.5 * 16 - 0.5 * 10
    assert hypervolume(np.array([a, b]), dirs, ref) == pytest.approx(expected)
    # a dominated point and a point beyond the reference change nothing
    pts = np.array([a, b, (0.4, 12.0), (0.9, 25.0)])
    assert hypervolume(pts, dirs, ref) == pytest.approx(expected)
    assert pareto_mask(pts, dirs).tolist() == [True, True, False, True]
    rng = np.random.default_rng(0)
    r = rng.random((200, 3))
    m = pareto_mask(r, ["maximize", "minimize", "minimize"])
    loss = r * [-1, 1, 1]
    for i in range(len(r)):
        dominated = np.any(np.all(loss <= loss[i], 1) & np.any(loss < loss[i], 1))
        assert m[i] == (not dominated)


def test_seed_configurations_are_in_the_space(env):
    from hwnas.search import cheapest_archs, seed_params
    from hwnas.space import load_space

    for name in ("mobilenetv2", "mobilenetv3", "tiny"):
        sp = load_space(name)
        params = dict(sp.params())
        seeds = seed_params(sp)
        assert seeds[-1][0] == "cheapest"
        for _, p in seeds:
            assert set(p) == set(params) - {"resolution"}
            assert all(v in params[k] for k, v in p.items())
        cheap = cheapest_archs(sp, 96, 10)[0]
        assert len(cheap.blocks) == sum(st.depth[0] for st in sp.stages)
        assert all(a.classes == 10 for a in cheapest_archs(sp, 96, 10))
    mbv2 = load_space("mobilenetv2")
    full = mbv2.arch_from_params(seed_params(mbv2)[-2][1], 224)
    from hwnas.baselines import mobilenet_v2

    assert full.blocks == mobilenet_v2(1.0).blocks  # the space holds MobileNetV2-1.0 itself


# ---- Optuna behaviour the search relies on -------------------------------------------------------

def test_enqueued_seeds_join_nsga2_generation_zero(env):
    import optuna

    from hwnas.search import open_storage, seed_params
    from hwnas.space import load_space

    # plain Optuna: a trial fixed entirely by enqueue_trial never meets the sampler, so
    # NSGA-II gives it no generation and it can never be a parent
    sp = load_space("tiny")
    label, p = seed_params(sp)[0]
    plain = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(population_size=4, seed=0))
    plain.enqueue_trial(p)
    plain.optimize(lambda t: (0.5, float(len(sp.suggest(t, 32).blocks))), n_trials=1)
    key = optuna.samplers.NSGAIISampler._get_generation_key()
    assert key not in plain.trials[0].system_attrs

    res = search(trials=12, population=4)
    study = optuna.load_study(study_name="r", storage=open_storage(None, res.run_dir),
                              sampler=optuna.samplers.NSGAIISampler(population_size=4))
    seeds = [t for t in study.trials if "seed" in t.user_attrs]
    assert len(seeds) == len(seed_params(sp))
    gen0 = {t.number for t in study.sampler.get_population(study, 0)}
    assert {t.number for t in seeds} <= gen0
    # and later generations exist: the search went on from them
    assert any(t.system_attrs.get(key, 0) > 0 for t in study.trials)


# ---- constraints, outputs, files -------------------------------------------------------------------

def test_constraints_pareto_and_files_readable_by_a_fresh_process(env):
    import search_stubs

    from hwnas.search import arch_costs_fast, cheapest_archs, load_run
    from hwnas.space import load_space

    sp = load_space("tiny")
    # a budget between the cheapest and a typical Arch, so that it binds
    cheap = search_stubs.latency(cheapest_archs(sp, 32, 10))[0]
    typical = np.median(search_stubs.latency([replace(a, classes=10) for a in sp.sample(1, 40, 32)]))
    budget = (cheap + typical) / 2
    max_params = int(np.median([arch_costs_fast(replace(a, classes=10))[0]
                                for a in sp.sample(2, 40, 32)]))
    res = search(trials=40, latency_budget_ms=budget, max_params=max_params,
                 objectives=("accuracy", "latency", "memory"))
    assert res.complete == 40

    # a fresh process reads every file written
    code = textwrap.dedent("""
        import csv, json, sys
        from pathlib import Path
        from hwnas.arch import load_arch
        from hwnas.search import load_run
        run = load_run(sys.argv[1])
        files = sorted(str(p) for p in (Path(sys.argv[1]) / "winners").glob("*.yaml"))
        archs = [load_arch(p).to_string() for p in files]
        st = run.study()
        print(json.dumps({"config": dict(run.config), "trials": run.trials, "pareto": run.pareto,
                          "winners": archs, "n_study": len(st.trials),
                          "dirs": [d.name for d in st.directions]}))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(res.run_dir)], capture_output=True,
                         text=True, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["config"]["objectives"] == ["accuracy", "latency", "memory"]
    assert got["config"]["latency_budget_ms"] == budget
    assert got["config"]["versions"]["optuna"].startswith("5")
    assert got["dirs"] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert got["n_study"] == len(got["trials"])

    trials, pareto = got["trials"], got["pareto"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    feasible = [t for t in complete if t["latency_ms"] <= budget and t["params"] <= max_params]
    assert [t["feasible"] for t in complete] == [t in feasible for t in complete]
    assert 0 < len(feasible) < len(complete), "the budgets should bind"
    assert pareto and sorted(got["winners"]) == sorted(r["arch"] for r in pareto)
    for r in pareto:
        assert r["latency_ms"] <= budget and r["params"] <= max_params
    # pareto.csv = the non-dominated feasible trials (one row per arch)
    def vec(t):
        return np.array([-t["score"], t["latency_ms"], t["memory_bytes"]])
    front = {t["arch"] for t in feasible
             if not any(np.all(vec(o) <= vec(t)) and np.any(vec(o) < vec(t)) for o in feasible)}
    assert {r["arch"] for r in pareto} == front
    run = load_run("r")  # by name, in this process too
    assert len(run.winners()) == len(pareto)
    from hwnas.search import feasible_front

    study = run.study()  # our front (no deep copy of every trial) is Optuna's best_trials
    assert [t.number for t in feasible_front(study)] == sorted(t.number for t in study.best_trials)


def test_budget_below_the_cheapest_arch_is_refused(env):
    import search_stubs

    from hwnas.errors import HwnasError
    from hwnas.search import cheapest_archs
    from hwnas.space import load_space

    cheap = search_stubs.latency(cheapest_archs(load_space("tiny"), 32, 10))[0]
    with pytest.raises(HwnasError, match=r"below the cheapest arch.*predicted") as e:
        search(latency_budget_ms=cheap * 0.9)
    assert f"{cheap:.2f} ms" in str(e.value)
    with pytest.raises(HwnasError, match="max-params"):
        search(max_params=1000)
    assert not (env / "runs" / "r").exists()


def test_rerun_continues_and_a_mismatch_leaves_the_run_untouched(env):
    from hwnas.errors import HwnasError

    assert search(trials=10).complete == 10
    run = env / "runs" / "r"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for kw, frag in [({"resolution": 64}, "resolution"),
                     ({"objectives": ("accuracy", "params")}, "objectives"),
                     ({"device": "other"}, "device"),
                     ({"storage": f"sqlite:///{env}/x.db"}, "storage")]:
        with pytest.raises(HwnasError, match=frag):
            search(trials=10, **kw)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    res = search(trials=16, sampler="tpe")  # more trials, another sampler: continues
    assert res.complete == 16 and res.new_trials == 6
    assert len([r for r in read_csv(run / "trials.csv") if r["state"] == "COMPLETE"]) == 16


def test_sqlite_storage_url(env):
    from hwnas.search import load_run

    url = f"sqlite:///{env}/shared.db"
    assert search(trials=6, storage=url).complete == 6
    assert not (env / "runs" / "r" / "journal.log").exists()
    assert search(trials=9).complete == 9  # the run remembers its storage
    run = load_run("r")
    assert run.config["storage"] == url and len(run.study().trials) == len(run.trials)


# ---- kill -9, workers -----------------------------------------------------------------------------

def _start(env, marker: Path, kw: dict, sleep: float) -> subprocess.Popen:
    e = dict(os.environ, STUB_MARKER=str(marker), STUB_SLEEP=str(sleep))
    return subprocess.Popen([sys.executable, str(env / "runner.py"), json.dumps(kw)], env=e,
                            cwd=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not (path.is_file() and len(path.read_text().splitlines()) >= n):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.slow
def test_resume_after_kill_9(env):
    from hwnas.search import seed_params
    from hwnas.space import load_space

    n = 25
    kw = dict(space="tiny", device="stub", name="r", trials=n, resolution=32, population=6)
    marker = env / "evals.txt"
    p = _start(env, marker, kw, sleep=0.4)
    _wait_lines(marker, 9, p)  # the 9th evaluation has started: a trial is in flight
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first = journal_states(env / "runs" / "r" / "journal.log")
    assert [s for _, s, *_ in first].count("RUNNING") == 1

    p = _start(env, marker, kw, sleep=0.0)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    trials = journal_states(env / "runs" / "r" / "journal.log")
    states = [s for _, s, *_ in trials]
    assert states.count("COMPLETE") == n
    assert states.count("FAIL") == 1 and "RUNNING" not in states and "WAITING" not in states
    assert [num for num, *_ in trials] == list(range(len(trials)))
    # the seeds were enqueued once, each evaluated once
    seeds = [s for *_, s, _, _ in trials if s]
    assert sorted(seeds) == sorted(label for label, _ in seed_params(load_space("tiny")))
    rows = read_csv(env / "runs" / "r" / "trials.csv")
    assert [r["state"] for r in rows].count("COMPLETE") == n
    assert json.loads(out)["complete"] == n


@pytest.mark.slow
def test_two_workers_share_one_journal_and_stop_cleanly_on_ctrl_c(env):
    n = 60  # enough work left when the SIGINT lands, even if the second worker starts late
    kw = dict(space="tiny", device="stub", name="r", trials=n, resolution=32, population=6,
              workers=2)
    marker = env / "evals.txt"
    journal = env / "runs" / "r" / "journal.log"
    p = _start(env, marker, kw, sleep=0.3)
    _wait_lines(marker, 8, p)
    t0 = time.monotonic()  # both workers evaluate (one may start seconds later on a busy machine)
    while len(set(marker.read_text().split())) < 2:
        assert p.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.05)
    first = p.pid
    p.send_signal(signal.SIGINT)  # as Ctrl-C: the launcher passes it on to its workers
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert not Path(str(journal) + ".lock").exists()  # no journal lock left behind
    states = [t[1] for t in journal_states(journal)]
    assert "RUNNING" not in states and states.count("FAIL") <= 2 and "COMPLETE" in states
    assert (env / "runs" / "r" / "trials.csv").is_file()

    p = _start(env, marker, kw, sleep=0.02)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    trials = journal_states(journal)
    complete = [t for t in trials if t[1] == "COMPLETE"]
    assert len(complete) == n
    assert all(t[1] in ("COMPLETE", "FAIL") or t[5] for t in trials)  # else a surplus race
    workers = {t[4].rsplit(":", 2)[1] for t in complete}
    assert len(workers) >= 2 and not {str(first), str(p.pid)} & workers  # child processes did it


# ---- CLI --------------------------------------------------------------------------------------------

def test_cli_bad_input_one_line(env):
    def cli(*a):
        return run_cli("search", "--space", "tiny", "--device", "stub", "--name", "r", *a,
                       env={"HWNAS_HOME": str(env)}, cwd=env)

    assert_one_line_error(cli("--objectives", "accuracy,speed"), "unknown objective 'speed'")
    assert_one_line_error(cli("--sampler", "cmaes"), "unknown sampler 'cmaes'")
    assert_one_line_error(cli("--latency-budget", "soon"), "soon")
    assert_one_line_error(cli("--storage", "sqlite:////nonexistent/dir/x.db"), "cannot be opened")
    assert_one_line_error(cli("--storage", "nosuchdb://x"), "cannot be opened")
    # an existing run with another space / device
    search(trials=4)
    before = (env / "runs" / "r" / "journal.log").read_bytes()
    r = run_cli("search", "--space", "mobilenetv2", "--device", "stub", "--name", "r",
                env={"HWNAS_HOME": str(env)}, cwd=env)
    assert_one_line_error(r, "another space")
    r = run_cli("search", "--space", "tiny", "--device", "pi5", "--name", "r", "--resolution", "32",
                env={"HWNAS_HOME": str(env)}, cwd=env)
    assert_one_line_error(r, "another device")
    assert (env / "runs" / "r" / "journal.log").read_bytes() == before
    h = run_cli("search", "--help")
    assert h.returncode == 0 and "--latency-budget" in h.stdout and "journal" in h.stdout


# ---- with the real predictor and zero-cost proxy ------------------------------------------------------

@pytest.fixture
def syn_device(env):
    """Device 'syn': a synthetic latency table of the tiny space at 32 px (every block, 30
    whole networks), enough for LatencyPredictor.for_device."""
    return synthetic_table("tiny", "syn")


def test_a_search_reads_the_device_once(env, syn_device, monkeypatch):
    """The resolution, the predictor and the provenance in config.json come from one read of
    the device's table (and of its device.json); the accuracy estimator is a cheap stand-in."""
    import hwnas.accuracy
    import hwnas.context
    from hwnas.profiling.hosts import DeviceConfig, save_device
    from hwnas.profiling.lut import LatencyTable
    from hwnas.search import SearchSettings, arch_costs_fast, run_search

    save_device(DeviceConfig(syn_device, "local", 1))
    reads, configs = [], []
    real_load, real_config = LatencyTable.load.__func__, hwnas.context.load_device
    monkeypatch.setattr(LatencyTable, "load",
                        classmethod(lambda cls, name: reads.append(name) or real_load(cls, name)))
    monkeypatch.setattr(hwnas.context, "load_device",
                        lambda name: configs.append(name) or real_config(name))

    class Params:  # "accuracy": fewer params score higher
        name, classes = "params-stand-in", 10

        def score(self, archs):
            return [-float(arch_costs_fast(a)[0]) for a in archs]

    monkeypatch.setattr(hwnas.accuracy, "make_estimator", lambda *a, **k: Params())
    res = run_search(SearchSettings(space="tiny", device=syn_device, name="once", trials=4),
                     progress=False)
    assert res.complete == 4 and res.resolution == 32  # the resolution the table covers
    assert res.config["device_provenance"]["cpu_model"] == "synthetic"
    assert res.config["device_config"]["threads"] == 1
    assert reads == [syn_device] and configs == [syn_device]


def test_search_json_is_one_document_and_the_text_ends_with_next(env, syn_device, monkeypatch,
                                                                  capsys):
    """issue 24.4/24.5: --json prints one JSON document and nothing else on stdout; the text
    summary ends with the natural next command."""
    import hwnas.accuracy
    from hwnas.cli import main
    from hwnas.search import arch_costs_fast

    class Params:
        name, classes = "params-stand-in", 10

        def score(self, archs):
            return [-float(arch_costs_fast(a)[0]) for a in archs]

    monkeypatch.setattr(hwnas.accuracy, "make_estimator", lambda *a, **k: Params())
    args = ["search", "--space", "tiny", "--device", syn_device, "--trials", "3", "--name", "j"]
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"] == "j" and doc["complete"] == 3 and doc["score_column"] == "naswot_score"
    assert doc["pareto"] and all("naswot_score" in r for r in doc["pareto"])
    assert doc["next"].startswith("hwnas retrain j")
    assert main([*args, "--quiet"]) == 0  # resumed: nothing new, the summary and next
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("next: hwnas retrain j (") and out[-1].endswith("hwnas view j")


@pytest.mark.parametrize(("kind", "metric", "column"), [
    ("train", "accuracy", "val_acc"), ("supernet", "loglik", "supernet_loglik")])
def test_the_score_column_names_the_metric_and_old_runs_still_read(env, syn_device, monkeypatch,
                                                                   kind, metric, column):
    """issue 24.2: a search's score is stored and shown under what it is, never "accuracy"
    (trials.csv, pareto.csv, Optuna's metric names, the summary); a run written before, with
    its score in a column "accuracy", reads back under its estimator's name."""
    import hwnas.accuracy
    from hwnas.runs import load_run, score_column
    from hwnas.search import SearchSettings, arch_costs_fast, format_summary, run_search

    class Params:
        name, classes = "params-stand-in", 10

        def score(self, archs):
            return [-float(arch_costs_fast(a)[0]) for a in archs]

    monkeypatch.setattr(hwnas.accuracy, "make_estimator", lambda *a, **k: Params())
    res = run_search(SearchSettings(space="tiny", device=syn_device, name=f"n-{kind}", trials=4,
                                    accuracy=kind, supernet_metric=metric), progress=False)
    d = res.run_dir
    for f in ("trials.csv", "pareto.csv"):
        head = (d / f).read_text().splitlines()[0].split(",")
        assert column in head and "accuracy" not in head, (f, head)
    assert load_run(d).study().metric_names == [column, "latency_ms"]
    summary = format_summary(res)
    assert column in summary and "accuracy" not in summary
    run = load_run(d)
    assert run.score == column and all(t[column] is not None for t in run.pareto)
    # an old run: the score in a column "accuracy", no score_column in config.json
    cfg = json.loads((d / "config.json").read_text())
    del cfg["score_column"]
    (d / "config.json").write_text(json.dumps(cfg))
    for f in ("trials.csv", "pareto.csv"):
        text = (d / f).read_text()
        (d / f).write_text(text.replace(column, "accuracy", 1))
    old = load_run(d)
    assert old.score == column
    assert [t[column] for t in old.pareto] == [t[column] for t in run.pareto]
    assert all("accuracy" not in t for t in old.trials)
    assert score_column("zero-cost") == "naswot_score"
    assert score_column("table:x.csv") == "table_acc"
    assert score_column("predictor:p.json") == "predicted_acc"
    assert score_column("supernet") == "supernet_val_acc"
    assert score_column("zero-cost", injected=True) == "score"


@pytest.mark.slow
def test_cli_search_with_the_predictor_and_zero_cost_proxy(env, syn_device, capsys):
    from hwnas.arch import parse_string
    from hwnas.cli import main
    from hwnas.predictor import LatencyPredictor
    from hwnas.search import load_run

    def cli(*a):
        capsys.readouterr()
        rc = main(["search", "--space", "tiny", "--device", syn_device, *map(str, a)])
        out, err = capsys.readouterr()
        return rc, out, err

    rc, out, err = cli("--name", "z", "--trials", 8, "--quiet")
    assert rc == 0, err
    assert "Pareto front" in out and "8 complete trials" in out
    run = load_run("z")
    assert run.config["resolution"] == 32 and run.config["classes"] == 10
    assert run.config["device_provenance"]["cpu_model"] == "synthetic"
    assert run.config["accuracy_estimator"] == "naswot"
    done = [t for t in run.trials if t["state"] == "COMPLETE"]
    assert len(done) == 8
    pred = LatencyPredictor.for_device(syn_device)
    archs = [parse_string(t["arch"]) for t in done]
    assert all(a.classes == 10 and a.resolution == 32 for a in archs)
    assert [t["latency_ms"] for t in done] == pytest.approx(list(pred.predict(archs)))
    assert len({t["naswot_score"] for t in done}) > 1  # the proxy tells Archs apart

    cheapest = float(pred.predict(archs).min())
    rc, out, err = cli("--name", "y", "--latency-budget", f"{cheapest / 100:.4f}ms")
    assert rc == 2 and "below the cheapest arch" in err and len(err.strip().splitlines()) == 1
    rc, out, err = cli("--name", "y", "--data", f"cifar10:{env / 'nowhere'}")
    assert rc == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert not (env / "runs" / "y").exists()
