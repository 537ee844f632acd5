"""One search run by several processes on one shared study (issue 14): per-worker sampler
seeds, seeds enqueued once, dead workers' trials failed and run again, simultaneous first
starts, relative SQLite paths, missing database drivers.

The processes emulate machines: each has its own HWNAS_HOME (its own runs/ folder) and they
meet only in the storage, a SQLite file or the private PostgreSQL server of tests/pg.py. They
search the tiny space of tests/test_search.py with its cheap stand-in estimators.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import assert_one_line_error, put_space, run_cli
from test_search import STUBS

RUNNER = """
import json, logging, os, sys, time
logging.basicConfig(level=logging.WARNING)
import optuna
optuna.logging.set_verbosity(optuna.logging.ERROR)
import search_stubs
from hwnas.search import SearchSettings, run_search

if __name__ == "__main__":
    kw = json.loads(sys.argv[1])
    barrier = os.environ.get("BARRIER")  # folder, count: start once every process is ready
    if barrier:
        folder, count = barrier.rsplit(",", 1)
        open(os.path.join(folder, str(os.getpid())), "w").close()
        t0 = time.time()
        while len(os.listdir(folder)) < int(count) and time.time() - t0 < 120:
            time.sleep(0.01)
    res = run_search(SearchSettings(**kw), latency_fn=search_stubs.latency,
                     accuracy_fn=search_stubs.accuracy, classes=10, progress=False,
                     worker=sys.argv[2] if len(sys.argv) > 2 else None)
    print(json.dumps({"complete": res.complete, "failed": res.failed}))
"""


def _machine(root: Path, i: int) -> Path:
    """An HWNAS_HOME with the tiny space and the stand-ins: one emulated machine."""
    home = root / f"m{i}"
    put_space(home, "tiny-search", "tiny")
    (home / "search_stubs.py").write_text(STUBS)
    (home / "runner.py").write_text(RUNNER)
    return home


def _kw(**kw) -> dict:
    base = dict(space="tiny", device="stub", name="r", trials=30, resolution=32, population=8)
    base.update(kw)
    return base


def _launch(homes: list[Path], kw: dict, *, marker: Path | None = None, sleep: float = 0.0,
            env: dict | None = None) -> list[subprocess.Popen]:
    """One runner per home; they start their search at the same instant, once all have
    imported hwnas."""
    barrier = homes[0].parent / f"barrier-{time.monotonic_ns()}"
    barrier.mkdir()
    procs = []
    for h in homes:
        e = dict(os.environ, HWNAS_HOME=str(h), BARRIER=f"{barrier},{len(homes)}",
                 STUB_SLEEP=str(sleep),
                 PYTHONPATH=os.pathsep.join([str(h), os.environ.get("PYTHONPATH", "")]),
                 **(env or {}))
        if marker is not None:
            e["STUB_MARKER"] = str(marker)
        procs.append(subprocess.Popen([sys.executable, str(h / "runner.py"), json.dumps(kw)],
                                      env=e, cwd=h, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> None:
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{err}"


def _trials(url: str, name: str = "r") -> list:
    import optuna

    study = optuna.load_study(study_name=name, storage=url)
    return study.get_trials(deepcopy=False)


def _check_run(trials: list, n: int) -> tuple[int, int]:
    """Exactly ``n`` COMPLETE, nothing left running or waiting, every seed evaluated once;
    returns (distinct archs among the COMPLETE trials, seed trials)."""
    from hwnas.search import seed_params
    from hwnas.space import load_space

    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] == n, states
    assert not states["RUNNING"] and not states["WAITING"], states
    seeds = [t.user_attrs["seed"] for t in trials if t.user_attrs.get("seed")]
    labels = sorted(label for label, _ in seed_params(load_space("tiny")))
    assert sorted(seeds) == labels, seeds  # enqueued once each, by one of the processes
    archs = [t.user_attrs["arch"] for t in trials if t.state.name == "COMPLETE"]
    return len(set(archs)), len(seeds)


@pytest.fixture
def machines(tmp_path, monkeypatch):
    """Factory of emulated machines; the test process reads the tiny space too."""
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path))
    put_space(tmp_path, "tiny-search", "tiny")
    return lambda n: [_machine(tmp_path, i) for i in range(n)]


# ---- pieces ----------------------------------------------------------------------------------

def test_worker_seeds_differ_by_worker_and_are_reproducible(monkeypatch):
    from hwnas.trials.storage import worker_seed
    from hwnas.trials.workers import WORKER_ENV, worker_id, worker_name

    seeds = {worker_seed(0, f"host{i}:{1000 + i}:7") for i in range(200)}
    assert len(seeds) == 200 and all(0 <= s < 2**32 for s in seeds)
    assert worker_seed(0, "a") == worker_seed(0, "a") != worker_seed(1, "a")
    monkeypatch.delenv(WORKER_ENV, raising=False)
    assert worker_name() == worker_id() and worker_name("x") == "x"
    monkeypatch.setenv(WORKER_ENV, "env-name")
    assert worker_name() == "env-name" and worker_name("x") == "x"


def test_heartbeat_settings_from_the_environment(monkeypatch):
    from hwnas.errors import HwnasError
    from hwnas.trials.storage import heartbeat_settings

    monkeypatch.delenv("HWNAS_HEARTBEAT_S", raising=False)
    monkeypatch.delenv("HWNAS_GRACE_S", raising=False)
    assert heartbeat_settings() == (60, 180)
    monkeypatch.setenv("HWNAS_HEARTBEAT_S", "2")
    assert heartbeat_settings() == (2, 6)
    monkeypatch.setenv("HWNAS_GRACE_S", "1")
    with pytest.raises(HwnasError, match="must exceed"):
        heartbeat_settings()


def test_relative_sqlite_is_in_the_run_folder_from_any_working_folder(machines, monkeypatch):
    home = machines(1)[0]
    monkeypatch.syspath_prepend(str(home))
    monkeypatch.setenv("HWNAS_HOME", str(home))
    sys.modules.pop("search_stubs", None)
    import search_stubs as stubs

    from hwnas.search import SearchSettings, load_run, run_search

    def search(trials: int):
        return run_search(SearchSettings(**_kw(trials=trials, storage="sqlite:///rel.db")),
                          latency_fn=stubs.latency, accuracy_fn=stubs.accuracy, classes=10,
                          progress=False)

    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(home)
    assert search(5).complete == 5
    monkeypatch.chdir(elsewhere)  # the same command from another folder continues the study
    res = search(8)
    assert (res.complete, res.new_trials) == (8, 3)
    run_dir = home / "runs" / "r"
    assert (run_dir / "rel.db").is_file()
    assert not (home / "rel.db").exists() and not (elsewhere / "rel.db").exists()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["storage_resolved"] == f"sqlite:///{run_dir.absolute()}/rel.db"
    assert len(load_run("r").study().trials) == len(_trials(cfg["storage_resolved"]))


def test_a_missing_database_driver_says_what_to_install(tmp_path):
    cli = ("search", "--space", "mobilenetv2", "--device", "stub", "--name", "r", "--storage")
    env = {"HWNAS_HOME": str(tmp_path)}
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        r = run_cli(*cli, "postgresql+psycopg2://u:secret@127.0.0.1:1/db", env=env, cwd=tmp_path)
        assert_one_line_error(r, "psycopg2", "pip install psycopg2-binary")
        assert "secret" not in r.stderr  # the password stays out of messages
    # SQLAlchemy 2.1 reads postgresql:// as psycopg 3: hide it behind a package that fails
    fake = tmp_path / "fake"
    (fake / "psycopg").mkdir(parents=True)
    (fake / "psycopg" / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg'\")\n")
    env["PYTHONPATH"] = os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])
    r = run_cli(*cli, "postgresql://u@127.0.0.1:1/db", env=env, cwd=tmp_path)
    assert_one_line_error(r, "psycopg", 'pip install "psycopg[binary]"')
    assert not (tmp_path / "runs" / "r").exists()


# ---- several processes on one study ------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_on_one_sqlite_file(machines, tmp_path):
    """Random sampling (NSGA-II's generation 0) with the same --seed: one seed for both
    processes would propose the same archs, about n/2 distinct; per-worker seeds: n."""
    n = 30
    url = f"sqlite:///{tmp_path}/shared.db"
    _finish(_launch(machines(2), _kw(trials=n, storage=url, sampler="random"), sleep=0.05))
    trials = _trials(url)
    distinct, _ = _check_run(trials, n)
    workers = {t.user_attrs["worker"] for t in trials if t.state.name == "COMPLETE"}
    assert len(workers) == 2  # both did work
    assert distinct >= n - 1, distinct  # same --seed, yet no arch proposed twice


@pytest.mark.slow
def test_three_first_starts_at_once_on_an_empty_postgresql_database(machines, pg_db):
    """No Optuna tables yet: three processes create the schema and the study at the same
    instant, share the work and enqueue the seeds once."""
    n = 30
    _finish(_launch(machines(3), _kw(trials=n, storage=pg_db, sampler="random"), sleep=0.05))
    trials = _trials(pg_db)
    distinct, _ = _check_run(trials, n)
    assert len({t.user_attrs["worker"] for t in trials}) == 3
    assert distinct >= n - 1, distinct
    import optuna

    attrs = optuna.load_study(study_name="r", storage=pg_db).user_attrs
    recorded = [v for k, v in attrs.items() if k.startswith("worker:")]
    assert len(recorded) == 3 and len({v["sampler_seed"] for v in recorded}) == 3


@pytest.mark.slow
def test_named_workers_record_their_seeds(machines, pg_url):
    from hwnas.trials.storage import worker_seed

    n = 12
    homes = machines(2)
    kw = _kw(trials=n, storage=pg_url, name="named", seed=5)
    _finish(_launch(homes[:1], kw))
    # a second machine, named: continues the study to 2n with its own recorded seed
    e = dict(os.environ, HWNAS_HOME=str(homes[1]),
             PYTHONPATH=os.pathsep.join([str(homes[1]), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(homes[1] / "runner.py"),
                        json.dumps({**kw, "trials": 2 * n}), "box-b"],
                       env=e, cwd=homes[1], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import optuna

    attrs = optuna.load_study(study_name="named", storage=pg_url).user_attrs
    rec = {v["name"]: v["sampler_seed"] for k, v in attrs.items() if k.startswith("worker:")}
    assert rec["box-b"] == worker_seed(5, "box-b") and len(rec) == 2


@pytest.mark.slow
@pytest.mark.parametrize("where", ["journal", "postgresql"])
def test_a_worker_killed_near_the_end_is_recovered_by_the_other(machines, request, where):
    """Two processes; the one evaluating when the last trials are in flight is killed -9.
    The other fails its trial (same machine: by pid; PostgreSQL: by heartbeat, as for another
    machine) and runs one more: exactly N COMPLETE."""
    n = 16
    root = machines(2)
    if where == "journal":
        storage = str(root[0].parent / "shared.journal")
        url = None
    else:
        url = storage = request.getfixturevalue("pg_url")
    kw = _kw(trials=n, storage=storage, name=f"kill-{where}", population=6)
    marker = root[0].parent / f"evals-{where}.txt"
    env = {"HWNAS_HEARTBEAT_S": "1", "HWNAS_GRACE_S": "3"}
    procs = _launch(root, kw, marker=marker, sleep=0.4, env=env)
    t0 = time.monotonic()
    while not (marker.is_file() and len(marker.read_text().split()) >= n - 2):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() - t0 < 180
        time.sleep(0.02)
    last = int(marker.read_text().split()[-1])  # evaluating right now (0.4 s per arch)
    victim = next(p for p in procs if p.pid == last)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    survivor = next(p for p in procs if p is not victim)
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        trials = _trials(JournalStorage(JournalFileBackend(storage)), kw["name"])
    else:
        trials = _trials(url, kw["name"])
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] == n and states["FAIL"] >= 1 and not states["RUNNING"], states
    dead = [t for t in trials if t.state.name == "FAIL"]
    assert all(t.user_attrs["worker"].split(":")[1] == str(victim.pid) for t in dead)
    assert json.loads(out)["complete"] == n
