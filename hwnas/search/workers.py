"""The processes that run trials: who a worker is, whether it still lives, Ctrl-C.

How trials are counted. The target ``trials`` is a number of COMPLETE trials. A worker
starts a trial only while ``COMPLETE + RUNNING < trials`` (:func:`count_trials`); a trial that
finds, once started, that ``trials`` earlier trials are complete or running (a race between
workers) is PRUNED with the user attribute ``surplus`` and does not count. A trial left
RUNNING by a killed worker of this machine (its user attribute ``worker``, :func:`worker_id`,
names host, pid and the pid's start time) is marked FAIL when the run is launched again
(:func:`fail_dead_trials`), and does not count either; so after a kill -9 the same command
finishes with exactly ``trials`` COMPLETE trials. With an RDB storage, Optuna's heartbeat also
fails trials of workers that died on other machines.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runs import WORKER_ATTR

if TYPE_CHECKING:
    from .objective import Objective

log = logging.getLogger(__name__)

_STALE_UNOWNED_S = 60.0  # a RUNNING trial without a worker attribute older than this is dead

__all__ = ["Interrupts", "count_trials", "fail_dead_trials", "run_trials", "worker_alive",
           "worker_id"]


def _proc_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def worker_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


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


def run_trials(study, objective: Objective, callbacks: list, watch_parent: bool = False) -> None:
    """Run trials on ``study`` until COMPLETE + RUNNING reaches the target (or, with
    ``watch_parent``, until the launching process is gone)."""
    target = objective.target
    parent = os.getppid() if watch_parent else None

    with Interrupts() as intr:
        objective.interrupts = intr

        def stop_when_done(st, _trial) -> None:
            done, running = count_trials(st)
            orphan = parent is not None and os.getppid() != parent
            if done + running >= target or orphan or intr.pending:
                st.stop()

        done, running = count_trials(study)
        if done + running >= target:
            return
        study.optimize(objective, callbacks=[stop_when_done, *callbacks], gc_after_trial=False)
        intr.check()
