"""The processes that run trials: who a worker is, whether it still lives, Ctrl-C.

How trials are counted. The target ``trials`` is a number of COMPLETE trials. A worker
starts a trial only while ``COMPLETE + RUNNING < trials`` (:func:`count_trials`); a trial that
finds, once started, that ``trials`` earlier trials are complete or running (a race between
workers) is PRUNED with the user attribute ``surplus`` and does not count. A trial left
RUNNING by a killed worker of this machine (its user attribute ``worker``, :func:`worker_id`,
names host, pid and the pid's start time) is marked FAIL when the run is launched again
(:func:`fail_dead_trials`), and does not count either; so after a kill -9 the same command
finishes with exactly ``trials`` COMPLETE trials. With an RDB storage, Optuna's heartbeat
fails trials of workers that died on any machine (:func:`reap_dead_trials` does both, before
every count). A worker whose remaining trials are all being evaluated by other workers waits
for them (:func:`run_trials`): if one of those dies, its trial is failed and run again here,
so the run still ends with exactly ``trials`` COMPLETE.

Each worker's sampler has its own seed (:func:`hwnas.trials.storage.worker_seed` of ``--seed``
and :func:`worker_name`), recorded in the study's user attribute ``worker:<worker_id>``;
otherwise every worker would propose the same archs.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runs import WORKER_ATTR

if TYPE_CHECKING:
    from ..search.objective import Objective

log = logging.getLogger(__name__)

_STALE_UNOWNED_S = 60.0  # a RUNNING trial without a worker attribute older than this is dead
WORKER_ENV = "HWNAS_WORKER_ID"  # an explicit worker name (``--worker-id``) when not given

__all__ = ["WORKER_ENV", "Interrupts", "count_trials", "fail_dead_trials", "heartbeat_interval",
           "reap_dead_trials", "record_worker", "run_trials", "worker_alive", "worker_id",
           "worker_name"]


def _proc_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def worker_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


def worker_name(explicit: str | None = None) -> str:
    """The name a worker's sampler seed is derived from: ``explicit`` (``--worker-id``), else
    the environment variable ``HWNAS_WORKER_ID``, else :func:`worker_id` (host, pid, start)."""
    return explicit or os.environ.get(WORKER_ENV) or worker_id()


def record_worker(study, name: str, sampler_seed: int) -> None:
    """Record in ``study`` (user attribute ``worker:<worker_id>``, the id the trials carry in
    their ``worker`` attribute) which name and sampler seed this process works with."""
    from .storage import retry_storage

    retry_storage(lambda: study.set_user_attr(f"{WORKER_ATTR}:{worker_id()}",
                                              {"name": name, "sampler_seed": sampler_seed}),
                  "recording the worker")
    log.debug("worker %s (%s): sampler seed %d", worker_id(), name, sampler_seed)


def worker_alive(wid: str) -> bool | None:
    """True/False for a worker of this machine, None for another machine's."""
    try:
        host, pid_s, start = wid.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start == "?" or _proc_start(pid) == start


def fail_dead_trials(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker died on this machine (or that never got a
    worker attribute and are older than a minute); returns their numbers."""
    from datetime import datetime, timezone

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed = []
    now = datetime.now(timezone.utc)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        wid = t.user_attrs.get(WORKER_ATTR)
        if wid is not None:
            dead = worker_alive(wid) is False
        else:
            start = t.datetime_start
            if start is not None and start.tzinfo is None:
                start = start.astimezone(timezone.utc)
            dead = start is None or (now - start).total_seconds() > _STALE_UNOWNED_S
        if dead:
            try:
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                failed.append(t.number)
            except UpdateFinishedTrialError:
                pass
    if failed:
        log.info("marked %d trial(s) left running by a killed worker as FAIL: %s", len(failed),
                 ", ".join(map(str, failed)))
    return failed


def heartbeat_interval(storage) -> int | None:
    """The heartbeat interval of an Optuna storage (None: it has none, e.g. a journal)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


def _heartbeat(study) -> int | None:
    return heartbeat_interval(study._storage)


def reap_dead_trials(study) -> list[int]:
    """Fail the RUNNING trials of dead workers: this machine's by pid
    (:func:`fail_dead_trials`), any machine's by Optuna's heartbeat where the storage has one
    (``optuna.storages.fail_stale_trials``); returns the numbers failed by pid."""
    import optuna

    failed = fail_dead_trials(study)
    if _heartbeat(study):
        from .storage import retry_storage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry_storage(lambda: optuna.storages.fail_stale_trials(study), "failing stale trials")
    return failed


def _others_running(study) -> tuple[int, int]:
    """(RUNNING trials a live or possibly live worker is evaluating and that can be waited
    for, RUNNING trials of other machines no heartbeat watches)."""
    from optuna.trial import TrialState

    beat = bool(_heartbeat(study))
    wait = blind = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        wid = t.user_attrs.get(WORKER_ATTR)
        alive = True if wid is None else worker_alive(str(wid))  # None: failed after a minute
        if alive is True or beat:
            wait += 1
        elif alive is None:
            blind += 1
    return wait, blind


def count_trials(study) -> tuple[int, int]:
    """(COMPLETE, RUNNING) trials of ``study``."""
    from optuna.trial import TrialState

    ts = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    done = sum(t.state == TrialState.COMPLETE for t in ts)
    return done, len(ts) - done


class Interrupts:
    """Ctrl-C (SIGINT) becomes KeyboardInterrupt only while an estimator runs; elsewhere it is
    remembered and raised at the next safe point (a second Ctrl-C raises at once).

    Optuna's journal file lock (``JournalFileSymlinkLock``) is a symlink: a KeyboardInterrupt
    inside a storage write, or while waiting for the lock, can leave it behind or remove
    another process's lock, and every worker then waits out the 30 s grace period. Only the
    main thread can install the handler; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.safe = False
        self.pending = False
        self._old: Any = None

    def __enter__(self) -> Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            import signal

            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.safe or self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` where a Ctrl-C may interrupt it."""
        self.check()
        self.safe = True
        try:
            return fn()
        finally:
            self.safe = False


def _told_elsewhere(e: ValueError) -> bool:
    """Optuna's ``Cannot tell a COMPLETE trial.``: the trial was finished by another worker."""
    return str(e).startswith("Cannot tell a ")


def run_trials(study, objective: Objective, callbacks: list,
               watch_parent: bool | int = False) -> None:
    """Run trials on ``study`` until ``objective.target`` trials are COMPLETE (or, with
    ``watch_parent``, until the launching process is gone: True = the parent this process has
    now, an int = that PID, which must be the parent). Dead workers' trials are failed
    before each count (:func:`reap_dead_trials`); while the remaining trials are all running
    elsewhere this worker waits for them, and runs again those that fail. It stops without
    waiting only for trials of other machines that no heartbeat watches (a journal file on a
    shared folder): then it says so, and the same command run later completes the run."""
    target = objective.target
    parent = (watch_parent if not isinstance(watch_parent, bool) else os.getppid()) \
        if watch_parent else None
    beat = _heartbeat(study)
    poll = min(5.0, max(0.5, beat / 2)) if beat else 1.0

    with Interrupts() as intr:
        objective.interrupts = intr

        def stop_when_done(st, _trial) -> None:
            done, running = count_trials(st)
            orphan = parent is not None and os.getppid() != parent
            if done + running >= target or orphan or intr.pending:
                st.stop()

        while True:
            intr.check()
            reap_dead_trials(study)
            done, running = count_trials(study)
            if done >= target or (parent is not None and os.getppid() != parent):
                return
            if done + running < target:
                try:
                    study.optimize(objective, callbacks=[stop_when_done, *callbacks],
                                   gc_after_trial=False)
                except ValueError as e:
                    if not _told_elsewhere(e):
                        raise
                    # SQLite has no row lock: another process popped the same WAITING (seed)
                    # trial and told it first; our evaluation of it is a duplicate, the study
                    # is consistent, so count again and go on
                    log.debug("a trial this worker ran was completed by another one: %s", e)
                continue
            wait, blind = _others_running(study)
            if not wait:
                if blind:
                    log.warning("%d of %d trials complete; %d still running on other machines "
                                "(no heartbeat watches them): run the same command again once "
                                "they end to complete the run", done, target, blind)
                    return
                continue  # they ended meanwhile
            intr.run(lambda: time.sleep(poll))
