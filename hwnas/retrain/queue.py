"""Retraining on one machine or many: training each (model, seed), and the shared work queue.

On one machine (:func:`train_local`) every (model, seed) not finished yet is trained in turn.
On many (``hwnas retrain RUN --storage URL``, by default the run's own RDB storage), each
(model, seed) is a **work item**: a trial of the Optuna study ``retrain-<recipe id>-<search
study>`` in that storage (:class:`RetrainQueue`), which any number of processes on any
number of machines claim:

* **enqueued once**: the process whose ``create_study`` succeeds (the study name is unique in
  the storage, so exactly one does) enqueues every item as a WAITING trial, then sets the
  study attribute ``enqueued``; the others wait for it and only add items it lacks (another
  ``--top``, or items whose every trial FAILed);
* **claimed** with ``study.ask()``, which pops a WAITING trial: PostgreSQL/MySQL lock the row
  (``SELECT ... FOR UPDATE``) and the journal storage replays one log in one order, so a
  trial goes to one process; SQLite has no row lock (two processes were seen popping the
  same trial), so with SQLite the claim holds a file lock next to the database. A claimed
  trial that is not its item's first live trial (a duplicate enqueued in a race) is PRUNED
  untrained: at most one training per item;
* **trained** into the run folder as on one machine (``retrain/<recipe id>/<name>/seed<S>.*``;
  a result already there is taken, not trained again), then told COMPLETE with the test
  accuracy as value;
* **recovered**: while training, the worker beats (Optuna's RDB heartbeat, or the trial
  attribute ``heartbeat`` on a journal storage); before each claim, every worker fails the
  RUNNING items of dead workers (same machine: the pid is gone; elsewhere: no beat for the
  grace period, via ``optuna.storages.fail_stale_trials`` on RDB) and enqueues again every
  item left with no live trial. A killed worker's item is trained again by the next
  claimer, resuming from its per-epoch checkpoint when the folder is shared.

:func:`collect_results` gathers the results for the single measurement and refuses, naming
them, while any is missing (not trained yet, or trained on a machine whose ``retrain/``
folder was not copied back).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_json, file_digest
from ..runs import WORKER_ATTR

log = logging.getLogger(__name__)

ITEM_ATTR = "item"  # "<name>/seed<S>", on every item trial
HEARTBEAT_ATTR = "heartbeat"  # unix time of the last beat (storages without Optuna's heartbeat)
ENQUEUED_ATTR = "enqueued"  # study attribute: the first process finished enqueuing
_ENQUEUE_WAIT_S = 60.0  # how long other processes wait for the first one's enqueuing
POLL_S = 5.0  # how often a waiting process looks at the queue again

__all__ = ["Item", "RetrainQueue", "collect_results", "open_queue", "queue_name", "queue_url",
           "train_local", "train_one", "train_queue"]


# ---- training one (model, seed) --------------------------------------------------------------

def read_done(model, seed: int, root: Path) -> dict | None:
    """The finished result of (model, seed) under ``root`` (retrain/<recipe id>/), or None."""
    from .result import read_result

    rp = root / model.folder / f"seed{seed}.json"
    return read_result(rp, model, seed) if rp.is_file() else None


def train_one(m, s: int, export: bool, data, data_spec: str, recipe, run_dir: Path, rid: str,
              progress: bool, torch_device: Any = "cpu") -> dict:
    """Train model ``m`` with seed ``s`` (continuing its checkpoint), write its result file
    (and, ``export``, its ONNX file); returns the result."""
    from ..train import train_arch
    from .result import RESULT_FORMAT, export_onnx

    root = run_dir / "retrain" / rid
    ck = root / m.folder / f"seed{s}.pt"
    ck.parent.mkdir(parents=True, exist_ok=True)
    res = train_arch(m.arch, data, recipe, seed=s, checkpoint=ck, progress=progress,
                     device=torch_device)
    r = {"format": RESULT_FORMAT, "name": m.name, "kind": m.kind,
         "arch": m.arch.to_string(), "seed": s, "data": data_spec,
         "resolution": m.arch.resolution, "recipe": recipe.to_dict(),
         "epochs": res.epochs, "test_acc": float(res.test_acc),
         "train_loss": float(res.train_loss), "seconds": round(res.seconds, 2),
         "torch_device": str(torch_device), "worker": _worker(),
         "resumed_from": res.resumed_from, "checkpoint": ck.name,
         "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if export:
        r["onnx"] = m.onnx_rel
        r["onnx_sha1"] = export_onnx(m, res.model, run_dir)
    atomic_write_json(root / m.folder / f"seed{s}.json", r)
    log.info("%s seed %d: test accuracy %.4f (%.0f s)", m.name, s, r["test_acc"], res.seconds)
    return r


def _worker() -> str:
    from ..trials.workers import worker_id

    return worker_id()


def _bar(total: int, initial: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="retrain", unit="model", file=sys.stderr,
                disable=None if progress and initial < total else True, dynamic_ncols=True,
                position=0)


def _label(m) -> str:
    return m.name if m.kind == "baseline" else f"winner {m.name[:40]}"


def train_local(models: list, data, data_spec: str, recipe, seeds: Sequence[int], run_dir: Path,
                rid: str, progress: bool, torch_device: Any = "cpu") -> int:
    """Train here every (model, seed) not finished yet; the number trained."""
    root = run_dir / "retrain" / rid
    todo = []
    for m in models:
        for s in seeds:
            r = read_done(m, s, root)
            if r is None:
                todo.append((m, s))
            else:
                log.info("%s seed %d: trained earlier (test accuracy %.4f)", m.name, s,
                         r["test_acc"])
    bar = _bar(len(models) * len(seeds), len(models) * len(seeds) - len(todo), progress)
    try:
        for m, s in todo:
            bar.set_postfix_str(f"{_label(m)} seed {s}")
            train_one(m, s, s == seeds[0], data, data_spec, recipe, run_dir, rid, progress,
                      torch_device)
            bar.update(1)
    finally:
        bar.close()
    return len(todo)


def collect_results(models: list, seeds: Sequence[int], run_dir: Path, rid: str,
                    queue: RetrainQueue | None = None, what: str = "--collect",
                    onnx: bool = True) -> dict[str, list[dict]]:
    """The results per model name, every first seed's ONNX file exported (``onnx``; the
    co-design loop's trainings have none); HwnasError (one line naming every missing (model,
    seed), with where the queue saw it) if any is missing."""
    from .result import ensure_onnx

    root = run_dir / "retrain" / rid
    done, missing = {}, []
    for m in models:
        for s in seeds:
            r = read_done(m, s, root)
            ck = root / m.folder / f"seed{s}.pt"
            if onnx and r is not None and s == seeds[0] and not ck.is_file() \
                    and not _onnx_ok(m, r, run_dir):
                r = None  # the ONNX file cannot be made here without the checkpoint
            if r is None:
                missing.append(Item.of(m, s, onnx and s == seeds[0]).key)
            else:
                done[(m.name, s)] = r
    if missing:
        seen = queue.where(missing) if queue is not None else {}
        names = ", ".join(f"{k} ({seen[k]})" if seen.get(k) else k for k in missing)
        raise HwnasError(
            f"{what}: {len(missing)} of {len(models) * len(seeds)} trainings missing in {root}: "
            f"{names}; train them (hwnas retrain {run_dir.name} ... --train-only) or copy the "
            f"retrain/ folder of the machine that trained them into {run_dir}")
    for m in models if onnx else ():
        s0 = seeds[0]
        ensure_onnx(m, done[(m.name, s0)], root / m.folder / f"seed{s0}.pt", run_dir,
                     root / m.folder / f"seed{s0}.json")
    return {m.name: [done[(m.name, s)] for s in seeds] for m in models}


def _onnx_ok(m, r: dict, run_dir: Path) -> bool:

    p = run_dir / m.onnx_rel
    return p.is_file() and r.get("onnx_sha1") == file_digest(p)


# ---- the queue -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One work item: train model ``name`` (``arch``, a winner or a baseline) with ``seed``;
    ``onnx``: export it (the first seed)."""

    name: str
    kind: str
    arch: str
    seed: int
    onnx: bool

    @classmethod
    def of(cls, model, seed: int, onnx: bool) -> Item:
        return cls(model.name, model.kind, model.arch.to_string(), int(seed), bool(onnx))

    @property
    def key(self) -> str:
        return f"{self.name}/seed{self.seed}"

    def attrs(self) -> dict[str, Any]:
        return {ITEM_ATTR: self.key, "name": self.name, "kind": self.kind, "arch": self.arch,
                "seed": self.seed, "onnx": self.onnx}

    @classmethod
    def from_attrs(cls, a: dict) -> Item | None:
        try:
            it = cls(str(a["name"]), str(a["kind"]), str(a["arch"]), int(a["seed"]),
                     bool(a["onnx"]))
        except (KeyError, TypeError, ValueError):
            return None
        return it if a.get(ITEM_ATTR) == it.key else None

    def model(self):
        from ..arch import parse_string
        from .result import Model

        return Model(self.name, self.kind, parse_string(self.arch))


def queue_name(rid: str, study: str) -> str:
    """The study of the work items of one recipe for one search study."""
    return f"retrain-{rid}-{study}"


def queue_url(storage: str | None, config: dict, run_dir: Path) -> str | None:
    """The queue's storage URL: ``storage`` ('none': no queue), else the run's own storage
    when it is a URL (RDB, redis); a relative ``sqlite:///`` path is taken in the run folder
    (:func:`hwnas.trials.storage.resolve_storage_url`, the search's rule)."""
    from ..trials.storage import resolve_storage_url

    url = storage if storage is not None else (config.get("storage_resolved")
                                               or config.get("storage"))
    if not url or url.strip().lower() == "none" or (storage is None and "://" not in url):
        return None
    return resolve_storage_url(url, run_dir)


class RetrainQueue:
    """The work items of one retraining in an Optuna study (see the module docstring)."""

    def __init__(self, storage, name: str, url: str, heartbeat_s: float | None = None,
                 grace_s: float | None = None, create: bool = True) -> None:
        """``heartbeat_s``, ``grace_s``: of the beats a journal storage gets from hwnas
        (default: :func:`hwnas.trials.storage.heartbeat_settings`, as an RDB storage)."""
        import optuna

        from ..trials.storage import heartbeat_settings

        self.storage, self.name, self.url = storage, name, url
        if heartbeat_s is None or grace_s is None:
            interval, grace = heartbeat_settings()
            heartbeat_s = interval if heartbeat_s is None else heartbeat_s
            grace_s = grace if grace_s is None else grace_s
        self.heartbeat_s, self.grace_s = float(heartbeat_s), float(grace_s)
        self.created = False
        try:
            if not create:
                raise optuna.exceptions.DuplicatedStudyError
            self.study = optuna.create_study(storage=storage, study_name=name,
                                             direction="maximize")
            self.created = True
        except optuna.exceptions.DuplicatedStudyError:
            try:
                self.study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                raise HwnasError(f"no retrain queue '{name}' in '{url}'") from None
        from ..trials.storage import sqlite_file

        db = sqlite_file(url)
        journal = None if "://" in url else Path(url)
        self._claim_lock = Path(f"{db}.hwnas-claim.lock") if db else None
        self._enqueue_lock = Path(f"{db or journal}.hwnas-queue.lock") if db or journal else None

    @classmethod
    def open(cls, url: str, name: str, run_dir: Path, create: bool = True) -> RetrainQueue:
        """Open (``create``: or create) the queue ``name`` in the storage at ``url``; first
        starts of many processes at once (schema or study creation racing) are retried."""
        from ..trials.storage import open_storage, retry_storage

        storage = open_storage(url, run_dir)  # a missing driver, a bad URL: one line
        try:
            return retry_storage(lambda: cls(storage, name, url, create=create),
                                 f"retrain queue {name}")
        except HwnasError:
            raise
        except Exception as e:  # noqa: BLE001 (after the retries: one line)
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise HwnasError(f"retrain queue in '{url}': {type(e).__name__}: {msg}") from None

    # -- reading

    def _trials(self, states=None) -> list:
        return [t for t in self.study.get_trials(deepcopy=False, states=states)
                if ITEM_ATTR in t.user_attrs]

    def where(self, keys: Sequence[str]) -> dict[str, str]:
        """Per item key, where the queue last saw it (running on, done on, waiting)."""
        from optuna.trial import TrialState

        out: dict[str, str] = {}
        rank = {TrialState.COMPLETE: 3, TrialState.RUNNING: 2, TrialState.WAITING: 1}
        best: dict[str, Any] = {}
        for t in self._trials():
            k = t.user_attrs[ITEM_ATTR]
            if k in keys and rank.get(t.state, 0) >= rank.get(getattr(best.get(k), "state",
                                                                        None), 0):
                best[k] = t
        for k, t in best.items():
            host = str(t.user_attrs.get(WORKER_ATTR, "?")).rsplit(":", 2)[0]
            out[k] = {TrialState.COMPLETE: f"trained on {host}",
                      TrialState.RUNNING: f"training on {host}",
                      TrialState.WAITING: "waiting"}.get(t.state, t.state.name.lower())
        return out

    def pending(self, items: Sequence[Item]) -> list[Item]:
        """The items with no COMPLETE trial."""
        from optuna.trial import TrialState

        done = {t.user_attrs[ITEM_ATTR] for t in self._trials((TrialState.COMPLETE,))}
        return [it for it in items if it.key not in done]

    # -- enqueuing

    def sync(self, items: Sequence[Item]) -> int:
        """Enqueue the items (the first process all of them, once; the others what it
        lacks); returns how many this call enqueued."""
        if self.created:
            with _flock(self._enqueue_lock):
                n = self._enqueue_missing(items)
            self.study.set_user_attr(ENQUEUED_ATTR, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            return n
        t0 = time.monotonic()
        while (ENQUEUED_ATTR not in self.study.user_attrs
               and time.monotonic() - t0 < _ENQUEUE_WAIT_S):
            time.sleep(0.2)
        with _flock(self._enqueue_lock):
            return self._enqueue_missing(items)

    def _enqueue_missing(self, items: Sequence[Item]) -> int:
        from optuna.trial import TrialState

        live = {t.user_attrs[ITEM_ATTR] for t in self._trials(
            (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))}
        todo = [it for it in items if it.key not in live]
        for it in todo:
            self.study.enqueue_trial({}, user_attrs=it.attrs())
        if todo and not self.created:
            log.info("queue %s: enqueued %d item(s): %s", self.name, len(todo),
                     ", ".join(it.key for it in todo))
        return len(todo)

    # -- recovering

    def recover(self, items: Sequence[Item]) -> list[str]:
        """Fail the RUNNING items of dead workers (this machine: pid gone; others: no beat for
        ``grace_s``) and enqueue again the items left without a live trial; the keys failed now."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        from ..trials.workers import reap_dead_trials, worker_alive

        before = {t._trial_id for t in self._trials((TrialState.FAIL,))}
        reap_dead_trials(self.study)  # by pid here, by Optuna's heartbeat on RDB storages
        if not self._rdb_heartbeat():
            now = time.time()
            for t in self._trials((TrialState.RUNNING,)):
                wid = t.user_attrs.get(WORKER_ATTR)
                beat = t.user_attrs.get(HEARTBEAT_ATTR)
                if wid is None or beat is None or worker_alive(wid) is not None:
                    continue  # this machine's workers: by pid (fail_dead_trials)
                if now - float(beat) > self.grace_s:
                    with contextlib.suppress(UpdateFinishedTrialError):
                        self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        failed = sorted({t.user_attrs[ITEM_ATTR] for t in self._trials((TrialState.FAIL,))
                         if t._trial_id not in before})
        with _flock(self._enqueue_lock):
            n = self._enqueue_missing(items)
        if n:
            log.info("queue %s: %d item(s) of dead workers enqueued again", self.name, n)
        return failed

    def _rdb_heartbeat(self) -> bool:
        from ..trials.workers import heartbeat_interval

        return heartbeat_interval(self.storage) is not None

    # -- claiming

    def claim(self) -> tuple[Any, Item] | None | bool:
        """(trial, item) claimed by this process; None when nothing is WAITING; False when
        the popped trial was not to be trained (a duplicate or no item: ask again)."""
        from optuna.trial import TrialState

        with _flock(self._claim_lock):
            if not self._trials((TrialState.WAITING,)):
                return None
            with warnings.catch_warnings():  # ask/tell with a heartbeat: we beat (beating)
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = self.study.ask()
        item = Item.from_attrs(trial.user_attrs)
        if item is None:  # the queue emptied between the look and the pop: a fresh trial
            trial.set_user_attr("empty", True)
            self.study.tell(trial, state=TrialState.PRUNED)
            return False
        # a beat before the owner: killed before it, the trial has no owner and
        # fail_dead_trials fails it after a minute; after, it has a beat that goes stale
        if self._rdb_heartbeat():
            self.storage.record_heartbeat(trial._trial_id)
        else:
            trial.set_user_attr(HEARTBEAT_ATTR, time.time())
        trial.set_user_attr(WORKER_ATTR, _worker())
        first = min((t for t in self._trials((TrialState.WAITING, TrialState.RUNNING,
                                               TrialState.COMPLETE))
                     if t.user_attrs[ITEM_ATTR] == item.key), key=lambda t: t._trial_id,
                    default=None)
        if first is not None and first._trial_id != trial._trial_id:
            trial.set_user_attr("duplicate_of", first.number)
            self.study.tell(trial, state=TrialState.PRUNED)
            log.info("queue %s: trial %d duplicates item %s (trial %d); not trained", self.name,
                     trial.number, item.key, first.number)
            return False
        return trial, item

    @contextlib.contextmanager
    def beating(self, trial) -> Iterator[None]:
        """Heartbeats for ``trial`` while the block runs."""
        stop = threading.Event()
        rdb = self._rdb_heartbeat()
        every = float(self.storage.get_heartbeat_interval()) if rdb else self.heartbeat_s

        def beat() -> None:
            while True:
                try:
                    if rdb:
                        self.storage.record_heartbeat(trial._trial_id)
                    else:
                        self.storage.set_trial_user_attr(trial._trial_id, HEARTBEAT_ATTR,
                                                         time.time())
                except Exception as e:  # noqa: BLE001 (a missed beat is not fatal)
                    log.warning("queue %s: heartbeat failed: %s", self.name, e)
                if stop.wait(every):
                    return

        th = threading.Thread(target=beat, name="hwnas-retrain-heartbeat", daemon=True)
        th.start()
        try:
            yield
        finally:
            stop.set()
            th.join()

    def finish(self, trial, result: dict) -> None:
        """Tell the item COMPLETE with its test accuracy."""
        from optuna.exceptions import UpdateFinishedTrialError

        trial.set_user_attr("test_acc", float(result["test_acc"]))
        try:
            self.study.tell(trial, float(result["test_acc"]))
        except (UpdateFinishedTrialError, ValueError) as e:  # failed as stale meanwhile
            log.warning("queue %s: trial %d: %s (its result is in the run folder)", self.name,
                        trial.number, e)

    def release(self, trial) -> None:
        """Tell the item FAIL (an error or Ctrl-C here): the next claimer enqueues it again."""
        from optuna.trial import TrialState

        with contextlib.suppress(Exception):
            self.study.tell(trial, state=TrialState.FAIL)


def open_queue(url: str | None, name: str, run_dir: Path,
               optional: bool = False) -> RetrainQueue | None:
    """The queue ``name`` at ``url`` (None: no queue); ``optional``: not created, and None
    with a warning when it cannot be opened."""
    if not url:
        return None
    try:
        return RetrainQueue.open(url, name, run_dir, create=not optional)
    except HwnasError as e:
        if not optional:
            raise
        log.warning("%s (collecting without the queue's view)", e)
        return None


@contextlib.contextmanager
def _flock(path: Path | None) -> Iterator[None]:
    """An exclusive lock on ``path`` (processes of this machine, or of a shared folder)."""
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def train_queue(queue: RetrainQueue, models: list, seeds: Sequence[int], data, data_spec: str,
                recipe, run_dir: Path, rid: str, progress: bool, torch_device: Any = "cpu",
                wait: bool = True, onnx: bool = True) -> int:
    """Claim and train items of ``queue`` until none is waiting (``wait``: until every item
    of ``models`` x ``seeds`` is COMPLETE somewhere); the number trained by this process.
    ``onnx``: the first seed's item exports its ONNX file (not for the co-design loop)."""
    items = [Item.of(m, s, onnx and s == seeds[0]) for m in models for s in seeds]
    queue.sync(items)
    root = run_dir / "retrain" / rid
    trained, said = 0, ""
    bar = _bar(len(items), len(items) - len(queue.pending(items)), progress)
    try:
        while True:
            queue.recover(items)
            got = queue.claim()
            if got is False:
                continue
            if got is None:
                left = queue.pending(items)
                if not wait or not left:
                    break
                where = queue.where([it.key for it in left])
                text = ", ".join(f"{it.key} ({where.get(it.key, '?')})" for it in left)
                if text != said:
                    log.info("waiting for %d item(s) of other workers: %s", len(left), text)
                    said = text
                time.sleep(POLL_S)
                continue
            trial, item = got
            m = item.model()
            try:
                r = read_done(m, item.seed, root)
                if r is not None:
                    log.info("%s seed %d: trained earlier (test accuracy %.4f)", m.name,
                             item.seed, r["test_acc"])
                else:
                    bar.set_postfix_str(f"{_label(m)} seed {item.seed}")
                    with queue.beating(trial):
                        r = train_one(m, item.seed, item.onnx, data, data_spec, recipe, run_dir,
                                      rid, progress, torch_device)
                    trained += 1
            except BaseException:
                queue.release(trial)
                raise
            queue.finish(trial, r)
            bar.n = len(items) - len(queue.pending(items))
            bar.refresh()
    finally:
        bar.close()
    return trained
