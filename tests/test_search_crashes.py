"""hwnas search when things go wrong: a seed trial that fails or whose worker dies, a torn or
foreign journal file, a disk that fills up. Each rerun loses nothing and repeats nothing."""

from __future__ import annotations

import os

import pytest
import test_search
from test_search import journal_states, read_csv, search, settings


@pytest.fixture
def env(home, monkeypatch):
    """test_search's env: the tiny space and its stand-in estimators in HWNAS_HOME."""
    yield from test_search.env.__wrapped__(home, monkeypatch)


def _seed_trials(run_dir):
    import optuna

    from hwnas.search import open_storage

    study = optuna.load_study(study_name="r", storage=open_storage(None, run_dir))
    return [(t.user_attrs["seed"], t.state.name) for t in study.trials if "seed" in t.user_attrs]


def test_a_failed_seed_trial_is_evaluated_again_once(env):
    """An error during a seed trial (as a kill -9 or Ctrl-C): the rerun evaluates that seed
    again, and every seed ends with exactly one COMPLETE trial."""
    import search_stubs

    from hwnas.search import run_search, seed_params
    from hwnas.space import load_space

    labels = [lab for lab, _ in seed_params(load_space("tiny"))]
    calls = []

    def flaky(archs):
        calls.append(1)
        if len(calls) == 2:  # the second seed's evaluation
            raise RuntimeError("killed")
        return search_stubs.accuracy(archs)

    with pytest.raises(RuntimeError, match="killed"):
        run_search(settings(trials=8), latency_fn=search_stubs.latency, accuracy_fn=flaky,
                   classes=10, progress=False)
    first = _seed_trials(env / "runs" / "r")
    assert (labels[1], "FAIL") in first
    res = search(trials=8)
    assert res.complete == 8
    seeds = _seed_trials(env / "runs" / "r")
    assert sorted(lab for lab, st in seeds if st == "COMPLETE") == sorted(labels)
    assert [st for lab, st in seeds if lab == labels[1]] == ["FAIL", "COMPLETE"]
    assert search(trials=8).complete == 8  # nothing left to seed: no extra trial
    assert _seed_trials(env / "runs" / "r") == seeds


def test_a_seed_left_running_by_a_dead_worker_is_evaluated_again(env):
    import socket

    import optuna

    from hwnas.search import open_storage, seed_params
    from hwnas.space import load_space

    labels = [lab for lab, _ in seed_params(load_space("tiny"))]
    assert search(trials=0).complete == 0  # the seeds are enqueued, none evaluated
    study = optuna.load_study(study_name="r", storage=open_storage(None, env / "runs" / "r"))
    t = study.ask()  # the first seed starts on a worker that then dies
    t.set_user_attr("worker", f"{socket.gethostname()}:999999999:1")
    assert (labels[0], "RUNNING") in _seed_trials(env / "runs" / "r")
    assert search(trials=6).complete == 6
    seeds = _seed_trials(env / "runs" / "r")
    assert sorted(lab for lab, st in seeds if st == "COMPLETE") == sorted(labels)
    assert [st for lab, st in seeds if lab == labels[0]] == ["FAIL", "COMPLETE"]


def test_a_torn_journal_tail_is_repaired_and_garbage_is_refused_untouched(env):
    from hwnas.errors import HwnasError
    from hwnas.search import check_journal

    assert search(trials=4).complete == 4
    journal = env / "runs" / "r" / "journal.log"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code":4,"worker_id":"x","stu')  # a writer killed mid-line
    assert search(trials=6).complete == 6
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    for garbage in (b"\x00\xff" * 500, b"not a journal\nat all", b"[1]\n[2]\n{\"op_c"):
        journal.write_bytes(garbage)
        with pytest.raises(HwnasError, match="not an Optuna journal"):
            search(trials=8)
        assert journal.read_bytes() == garbage
    with pytest.raises(HwnasError, match="not an Optuna journal"):
        check_journal(env / "search_stubs.py")


def test_the_journal_lock_warns_only_when_left_by_a_killed_writer(tmp_path, monkeypatch,
                                                                 caplog):
    import logging
    import threading
    import time

    import optuna
    from optuna.storages.journal import JournalFileSymlinkLock

    from hwnas.search import open_storage
    from hwnas.trials import storage as st

    optuna.create_study(storage=open_storage(None, tmp_path), study_name="s")
    journal = tmp_path / "journal.log"
    lock = f"{journal}.lock"
    caplog.set_level(logging.WARNING, logger="hwnas.trials.storage")
    held = JournalFileSymlinkLock(str(journal))  # another live worker, writing
    held.acquire()
    timer = threading.Timer(0.5, held.release)
    timer.start()
    t0 = time.monotonic()
    open_storage(None, tmp_path)
    waited = time.monotonic() - t0
    timer.join()
    assert waited >= 0.4 and "killed writer" not in caplog.text  # waited for it, silently
    monkeypatch.setattr(st, "_LOCK_GRACE_S", 3)
    os.symlink(journal, lock)  # left by a writer killed a minute ago
    old = time.time() - 60
    os.utime(lock, (old, old), follow_symlinks=False)
    open_storage(None, tmp_path)
    assert caplog.text.count("killed writer") == 1 and not os.path.lexists(lock)


def test_disk_full_is_one_error_and_the_rerun_loses_and_repeats_nothing(env, monkeypatch):
    import errno

    import search_stubs

    from hwnas.errors import HwnasError
    from hwnas.search import run_search, seed_params
    from hwnas.space import load_space

    real_fsync, full = os.fsync, [True]

    def fsync(fd):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(HwnasError, match=r"No space left on device"):
        search(trials=6)  # the first write (the study in the journal) fails: no trial ran
    calls = []

    def accuracy(archs):  # the disk fills up during the 3rd evaluation
        calls.append(1)
        full[0] = len(calls) >= 3
        return search_stubs.accuracy(archs)

    full[0] = False
    with pytest.raises(OSError, match=r"No space left on device"):
        run_search(settings(trials=6), latency_fn=search_stubs.latency, accuracy_fn=accuracy,
                   classes=10, progress=False)
    full[0] = False
    kept = [t for t in journal_states(env / "runs" / "r" / "journal.log") if t[1] == "COMPLETE"]
    assert len(kept) == 2  # the trials finished before the disk filled up
    res = search(trials=6)
    assert res.complete == 6 and res.new_trials == 4
    rows = read_csv(env / "runs" / "r" / "trials.csv")
    done = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(done) == 6 and {int(r["number"]) for r in done} >= {t[0] for t in kept}
    assert sorted(r["seed"] for r in done if r["seed"]) == sorted(
        lab for lab, _ in seed_params(load_space("tiny")))  # each seed complete once


def test_a_trial_told_first_by_another_worker_is_not_a_crash(env, monkeypatch):
    """SQLite has no row lock: two processes may pop the same enqueued (seed) trial and the
    slower one's tell raises "Cannot tell a COMPLETE trial." (seen in CI). The run goes on
    and still ends with exactly --trials COMPLETE."""
    import optuna

    real = optuna.study.Study.optimize
    raised = []

    def racy(self, func, *a, **kw):
        if not raised:  # one trial done, then the race as Optuna reports it
            raised.append(1)
            real(self, func, n_trials=1, callbacks=kw.get("callbacks"))
            raise ValueError("Cannot tell a COMPLETE trial.")
        return real(self, func, *a, **kw)

    monkeypatch.setattr(optuna.study.Study, "optimize", racy)
    res = search(trials=8)
    assert raised and res.complete == 8
    states = [t[1] for t in journal_states(env / "runs" / "r" / "journal.log")]
    assert states.count("COMPLETE") == 8


def test_other_value_errors_of_optuna_still_surface(env, monkeypatch):
    import optuna

    def broken(self, func, *a, **kw):
        raise ValueError("something else")

    monkeypatch.setattr(optuna.study.Study, "optimize", broken)
    with pytest.raises(ValueError, match="something else"):
        search(trials=4)
