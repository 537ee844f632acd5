"""Where a study lives and how it samples: the run's Optuna storage (a journal file in the run
folder, or any Optuna storage URL for several machines), the samplers, opening the study."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from ..errors import HwnasError
from ..runs import JOURNAL
from .settings import OBJECTIVES, SAMPLERS, SearchSettings

log = logging.getLogger(__name__)

__all__ = ["check_journal", "make_sampler", "open_storage", "open_study"]


def open_storage(url: str | None, run_dir: Path):
    """The run's Optuna storage: a journal file in the run folder, or any Optuna storage URL
    (``sqlite:///x.db``, ``postgresql://...``, ``mysql://...``, ``redis://...``, or a path to a
    journal file)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

    try:
        if url is None:
            path = run_dir / JOURNAL
            _repair_journal_tail(path)
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("redis://"):
            return JournalStorage(JournalRedisBackend(url))
        if "://" in url:
            # heartbeats let Optuna fail the trials of workers that died on other machines
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        p = Path(url)
        if not p.parent.is_dir():
            raise FileNotFoundError(f"no folder {p.parent}")
        _repair_journal_tail(p)
        return JournalStorage(JournalFileBackend(str(p)))
    except HwnasError:
        raise
    except Exception as e:  # driver missing, bad URL, unreachable server, unwritable file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage '{url or run_dir / JOURNAL}' cannot be opened: "
                         f"{type(e).__name__}: {msg}") from None


_RECORD_START = b'{"op_code":'
_PEEK = 1 << 20  # bytes read at each end of a journal to recognise it


def _is_record(line: bytes) -> bool:
    try:
        rec = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False
    return isinstance(rec, dict) and isinstance(rec.get("op_code"), int)


def check_journal(path: str | Path) -> None:
    """HwnasError (one line) unless ``path`` is absent, empty or an Optuna journal file: its
    first and its last complete line are journal records (JSON objects with an ``op_code``),
    or, before the first record was complete, it begins like one. Only reads."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size == 0:
            return
        with open(p, "rb") as f:
            head = f.read(_PEEK)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _PEEK))
            tail = f.read()
    except OSError as e:
        raise HwnasError(f"{p}: unreadable ({e.strerror or e})") from None
    first_end = head.find(b"\n")
    if first_end < 0:
        ok = size <= _PEEK and head.startswith(_RECORD_START)
    else:
        lines = tail[: tail.rfind(b"\n") + 1].splitlines()
        ok = _is_record(head[:first_end]) and bool(lines) and _is_record(lines[-1])
    if not ok:
        raise HwnasError(f"{p}: not an Optuna journal file (left unchanged); move it away or "
                         "use another --name")


def _repair_journal_tail(path: Path) -> None:
    """Drop an incomplete last line (a writer killed mid-append), under the journal's lock,
    once the file is known to be a journal (:func:`check_journal`)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    check_journal(path)
    from optuna.storages.journal import JournalFileSymlinkLock

    if Path(str(path) + ".lock").is_symlink():
        log.warning("%s.lock: a lock left by a killed writer? (Optuna breaks it after 30 s if "
                    "no live worker holds it)", path)
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = path.read_bytes()
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping an incomplete last record (%d bytes) left by a killed "
                        "writer", path, len(data) - keep)
            f.truncate(keep)
    finally:
        lock.release()


def make_sampler(name: str, seed: int, population: int = 50):
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "nsga3":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.NSGAIIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(10, population // 2))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(10, population // 2))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise HwnasError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")


def open_study(settings: SearchSettings, run_dir: Path, create: bool = False):
    """The study of the run in ``run_dir`` with the settings' sampler (``create``: made when it
    does not exist); HwnasError if it cannot be opened or has other objectives."""
    import optuna

    storage = open_storage(settings.storage, run_dir)
    sampler = make_sampler(settings.sampler, settings.seed, settings.population_size())
    directions = [OBJECTIVES[o][0] for o in settings.objectives]
    try:
        if create:
            study = optuna.create_study(storage=storage, sampler=sampler, study_name=settings.name,
                                        directions=directions, load_if_exists=True)
        else:
            study = optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler)
    except Exception as e:
        if isinstance(e, KeyError) and not create:
            raise HwnasError(f"no study '{settings.name}' in the storage of run "
                             f"'{run_dir.name}'") from None
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage of run '{run_dir.name}': {type(e).__name__}: {msg}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise HwnasError(f"study '{settings.name}' in that storage has other objectives "
                         f"({', '.join(d.name.lower() for d in study.directions)})")
    return study
