"""Retraining across machines: (model, seed) work items in an Optuna study, claimed by many
processes (hwnas.retrain.queue).

The process tests use the tiny space and search run of tests/test_retrain.py (digits, 1
epoch on a small subset); a training is counted from each process's log lines and checked
against the result files (which name the worker) and the queue (one COMPLETE per item).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import assert_one_line_error, run_cli

from hwnas.errors import HwnasError
from hwnas.retrain.queue import ITEM_ATTR, Item, RetrainQueue, queue_name, queue_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 2 winners + 1 baseline x 2 seeds = 6 items, each a tiny training
TRAIN = ("--top", "2", "--baselines", "mbv2-0.35", "--epochs", "1", "--seeds", "0,1",
         "--subset", "128", "--batch-size", "32", "--threads", "1")
TRAINED = re.compile(r"(\S+) seed (\d+): test accuracy")


@pytest.fixture(scope="module")
def env(retrain_env):
    """tests/test_retrain.py's home (shared with it): the tiny space, device 'ref', search
    run 'tr'."""
    return retrain_env


def _copy_run(env, name):
    """A copy of run 'tr' whose study name (which names its retrain queue) is its own, also
    across test sessions on one database server."""
    home, _ = env
    src, dst = home / "runs" / "tr", home / "runs" / name
    dst.mkdir()
    for f in ("pareto.csv", "trials.csv"):
        shutil.copy(src / f, dst / f)
    cfg = json.loads((src / "config.json").read_text())
    cfg["study_name"] = f"{name}-{uuid.uuid4().hex[:8]}"
    (dst / "config.json").write_text(json.dumps(cfg))
    shutil.copytree(src / "winners", dst / "winners")
    return dst


def _start(env, *args):
    home, e = env
    return subprocess.Popen([sys.executable, "-m", "hwnas", "retrain", *map(str, args)],
                            env={**os.environ, **e}, cwd=home, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _trained(stderr: str) -> list[str]:
    return [f"{m.group(1)}/seed{m.group(2)}" for m in TRAINED.finditer(stderr)]


def _queue_trials(storage, run: Path):
    """The item trials of the run's retrain queue (retrain-<recipe id>-<study name>)."""
    study = json.loads((run / "config.json").read_text())["study_name"]
    (s,) = [s for s in optuna.get_all_study_summaries(storage)
            if s.study_name.startswith("retrain-") and s.study_name.endswith(f"-{study}")]
    st = optuna.load_study(study_name=s.study_name, storage=storage)
    return [t for t in st.get_trials(deepcopy=False) if ITEM_ATTR in t.user_attrs]


def _complete_once(trials) -> dict[str, int]:
    done: dict[str, int] = {}
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            done[t.user_attrs[ITEM_ATTR]] = done.get(t.user_attrs[ITEM_ATTR], 0) + 1
    return done


def _results(run: Path) -> dict[str, dict]:
    return {f"{p.parent.name}/{p.stem}": json.loads(p.read_text())
            for p in (run / "retrain").glob("*/*/seed*.json")}


# ---- two processes share the work ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_share_the_work_nothing_trained_twice(env, tmp_path, request, kind):
    if kind == "postgresql":
        try:
            url = request.getfixturevalue("pg_url")
        except pytest.FixtureLookupError:
            pytest.skip("no pg_url fixture (tests/pg.py) in this tree")
    else:
        url = f"sqlite:///{tmp_path / 'queue.db'}"  # a fresh database: both create its schema
    run = _copy_run(env, f"two-{kind}")
    # an extra machine (--train-only) and the measuring one (trains too, waits, measures)
    procs = [_start(env, run.name, "--storage", url, *extra, *TRAIN)
             for extra in (("--train-only",), ("--quick",))]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "trainings in this call" in out
    per_proc = [_trained(err) for _, err in outs]
    every = [k for ks in per_proc for k in ks]
    items = {f"{n}/seed{s}" for n in {k.split("/")[0] for k in every} for s in (0, 1)}
    assert len(items) == 3 * 2 and sorted(every) == sorted(items)  # each item trained once
    assert all(per_proc), per_proc  # and both processes trained some
    # the result files say which process trained each item
    res = _results(run)
    assert set(res) == items
    for p, ks in zip(procs, per_proc, strict=True):
        for k in ks:
            assert res[k]["worker"].split(":")[1] == str(p.pid)
    # the queue: every item enqueued once (two processes started at once), COMPLETE once
    trials = _queue_trials(url, run)
    assert sorted(t.user_attrs[ITEM_ATTR] for t in trials) == sorted(items)
    assert _complete_once(trials) == dict.fromkeys(items, 1)
    # the measuring process tabulated every model, with every seed's accuracy
    from hwnas.runs import load_retrain

    rows = load_retrain(run)
    assert len(rows) == 3 and all(x["measured_median_ms"] > 0 for x in rows)
    for x in rows:
        want = (res[f"{x['name']}/seed0"]["test_acc"] + res[f"{x['name']}/seed1"]["test_acc"]) / 2
        assert x["acc_mean"] == pytest.approx(want, abs=1e-6)
    assert "speedup at matched accuracy" in outs[1][0]


# ---- a killed worker's item is trained by another -------------------------------------------------

@pytest.mark.slow
def test_killed_workers_item_is_trained_by_another(env, tmp_path):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    run = _copy_run(env, "killed")
    journal = tmp_path / "queue.log"  # a journal file (a shared folder across machines)
    a = _start(env, run.name, "--storage", journal, "--train-only", *TRAIN)
    running, t0 = None, time.monotonic()
    while running is None and time.monotonic() - t0 < 300 and a.poll() is None:
        time.sleep(0.2)
        if journal.is_file():
            st = JournalStorage(JournalFileBackend(str(journal)))
            trials = _queue_trials(st, run) if optuna.get_all_study_summaries(st) else []
            run_ = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                    and "worker" in t.user_attrs]
            running = run_[0].user_attrs[ITEM_ATTR] if run_ else None
    assert running is not None, a.communicate()[1][-3000:]
    time.sleep(0.5)  # well into that training
    os.killpg(a.pid, signal.SIGKILL)
    _, a_err = a.communicate()
    done_by_a = _trained(a_err)
    assert running not in done_by_a
    b = run_cli("retrain", run.name, "--storage", journal, "--train-only", *TRAIN,
                env=env[1], cwd=env[0], check=0)
    done_by_b = _trained(b.stderr)
    assert running in done_by_b  # the killed worker's item went back to the queue
    assert not set(done_by_a) & set(done_by_b)  # what A finished is not trained again
    assert len(done_by_a) + len(done_by_b) == 6
    trials = _queue_trials(JournalStorage(JournalFileBackend(str(journal))), run)
    assert _complete_once(trials) == dict.fromkeys(set(done_by_a) | set(done_by_b), 1)
    killed = [t for t in trials if t.user_attrs[ITEM_ATTR] == running
              and t.state == optuna.trial.TrialState.FAIL]
    assert len(killed) == 1 and killed[0].user_attrs["worker"].split(":")[1] == str(a.pid)


# ---- --collect ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_collect_refuses_missing_items_then_measures(env, tmp_path):
    home, e = env
    run = _copy_run(env, "collect")
    url = f"sqlite:///{tmp_path / 'q.db'}"
    args = ("--top", "1", "--baselines", "none", "--epochs", "1", "--seeds", "0,1",
            "--subset", "96", "--batch-size", "32", "--threads", "1")
    run_cli("retrain", run.name, "--storage", url, "--train-only", *args, env=e, cwd=home,
            check=0)
    res = _results(run)
    assert len(res) == 2
    name = next(iter(res)).split("/")[0]
    # a machine without the shared folder: its seed1 result was not copied back
    src = next((run / "retrain").glob(f"*/{name}/seed1.json"))
    moved = tmp_path / "seed1.json"
    shutil.move(src, moved)
    r = run_cli("retrain", run.name, "--storage", url, "--collect", *args, "--quick", "-q",
                env=e, cwd=home)
    assert_one_line_error(r, "--collect: 1 of 2 trainings missing", f"{name}/seed1 (trained on")
    assert "seed0" not in r.stderr.split("missing")[1]
    assert not (run / "retrain.csv").exists()
    r = run_cli("retrain", run.name, "--storage", "nosuchdb://h/x", *args, "-q", env=e, cwd=home)
    assert_one_line_error(r, "nosuchdb://h/x")
    shutil.move(moved, src)
    r = run_cli("retrain", run.name, "--collect", *args, "--quick", env=e, cwd=home, check=0)
    assert "(0 trainings in this call)" in r.stdout
    assert json.loads((run / "retrain.json").read_text())["seeds"] == [0, 1]
    from hwnas.runs import load_retrain

    (row,) = load_retrain(run)
    want = sum(x["test_acc"] for x in res.values()) / 2
    assert row["acc_mean"] == pytest.approx(want, abs=1e-6) and row["measured_median_ms"] > 0


# ---- the queue itself (no training) ----------------------------------------------------------------

def _items(n=2):
    from hwnas.arch import parse_string
    from hwnas.baselines import baseline
    from hwnas.retrain.run import Model

    a = baseline("mbv2-0.35", 32)
    m = Model("m", "baseline", parse_string(a.to_string()))
    return [Item.of(m, s, s == 0) for s in range(n)]


def test_enqueued_once_duplicates_not_trained_and_empty_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    from hwnas.trials.storage import open_storage

    items = _items(2)
    q1 = RetrainQueue(open_storage(url, tmp_path), "retrain-x", url)
    q2 = RetrainQueue(open_storage(url, tmp_path), "retrain-x", url)
    assert q1.created and not q2.created
    assert q1.sync(items) == 2 and q2.sync(items) == 0
    q2.study.enqueue_trial({}, user_attrs=items[0].attrs())  # a duplicate (a race)
    got = [q1.claim(), q2.claim()]
    assert [g[1] for g in got] == items  # popped in order, each by one process
    assert q1.claim() is False  # the duplicate: pruned, not trained
    assert q2.claim() is None  # nothing waiting
    for q, (trial, _) in zip((q1, q2), got, strict=True):
        q.finish(trial, {"test_acc": 0.5})
    assert q1.pending(items) == []
    states = [t.state.name for t in q1.study.get_trials()]
    assert states.count("COMPLETE") == 2 and states.count("PRUNED") == 1


def test_dead_workers_are_recovered_rdb_heartbeat_and_journal(tmp_path):
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    items = _items(1)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    cases = [(RDBStorage(url, heartbeat_interval=1, grace_period=1), url),
             (JournalStorage(JournalFileBackend(str(tmp_path / "j.log"))),
              str(tmp_path / "j.log"))]
    for storage, u in cases:
        q = RetrainQueue(storage, "retrain-h", u, heartbeat_s=1, grace_s=1)
        q.sync(items)
        trial, item = q.claim()
        with q.beating(trial):  # beats, then stops: a worker on another machine that died
            time.sleep(0.2)
        trial.set_user_attr("worker", "elsewhere:1:1")
        assert q.recover(items) == []  # within the grace period
        time.sleep(2.5)
        assert q.recover(items) == [item.key]
        (again, item2) = q.claim()  # enqueued again, claimed again
        assert item2 == item and again._trial_id != trial._trial_id
        q.finish(again, {"test_acc": 0.25})
        assert q.pending(items) == [] and q.recover(items) == []
        assert q.claim() is None  # a FAILed item with a COMPLETE one is not enqueued again


def test_queue_url_and_name(tmp_path):
    run = tmp_path / "runs" / "r"
    assert queue_url(None, {"storage": None}, run) is None  # the journal: trained here
    assert queue_url(None, {"storage": "postgresql://h/db"}, run) == "postgresql://h/db"
    assert queue_url("none", {"storage": "postgresql://h/db"}, run) is None
    assert queue_url(None, {"storage": "sqlite:///a.db",
                            "storage_resolved": "sqlite:////x/a.db"}, run) == "sqlite:////x/a.db"
    assert queue_url("sqlite:///q.db", {}, run) == f"sqlite:///{(run / 'q.db').resolve()}"
    assert queue_name("e1-abc", "tr") == "retrain-e1-abc-tr"
    with pytest.raises(HwnasError, match="exclude each other"):
        from hwnas.retrain.run import RetrainSettings

        RetrainSettings(run="r", train_only=True, collect=True).validate()


def test_queue_takes_the_searchs_storage_rule_and_heartbeat_settings(tmp_path, monkeypatch):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    run = tmp_path / "runs" / "r"
    assert queue_url("sqlite:///q.db?timeout=9", {}, run) == f"sqlite:///{run / 'q.db'}?timeout=9"
    monkeypatch.setenv("HWNAS_HEARTBEAT_S", "2")
    monkeypatch.setenv("HWNAS_GRACE_S", "7")
    j = str(tmp_path / "j.log")
    q = RetrainQueue(JournalStorage(JournalFileBackend(j)), "retrain-e", j)
    assert (q.heartbeat_s, q.grace_s) == (2.0, 7.0)  # journal beats as the RDB storage's
    monkeypatch.setitem(sys.modules, "psycopg", None)  # the driver is not installed
    with pytest.raises(HwnasError, match=r'pip install "psycopg\[binary\]"') as e:
        RetrainQueue.open("postgresql+psycopg://u:secret@127.0.0.1:1/db", "retrain-e", run)
    assert "secret" not in str(e.value) and "\n" not in str(e.value)


def test_measuring_process_waits_for_items_running_elsewhere(tmp_path, monkeypatch, caplog):
    import logging
    import threading

    import hwnas.retrain.queue as rq

    monkeypatch.setattr(rq, "POLL_S", 0.05)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    from hwnas.trials.storage import open_storage

    items = _items(1)
    other = RetrainQueue(open_storage(url, tmp_path), "retrain-w", url)
    other.sync(items)
    trial, _ = other.claim()  # "another machine" trains the only item
    me = RetrainQueue(open_storage(url, tmp_path), "retrain-w", url)
    out = {}
    models = [items[0].model()]

    def work():  # nothing to claim: waits until the other worker's item is COMPLETE
        out["n"] = rq.train_queue(me, models, (0,), None, "digits", None, tmp_path, "e1-x",
                                  progress=False, wait=True)

    with caplog.at_level(logging.INFO, logger="hwnas"):
        th = threading.Thread(target=work)
        th.start()
        time.sleep(1.0)
        assert th.is_alive()  # still waiting
        other.finish(trial, {"test_acc": 0.5})
        th.join(10)
    assert not th.is_alive() and out["n"] == 0  # returned, trained nothing itself
    assert "waiting for 1 item(s) of other workers: m/seed0 (training on" in caplog.text
