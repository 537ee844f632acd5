"""Where a study lives and how it samples: the run's Optuna storage (a journal file in the run
folder, or any Optuna storage URL for several machines), retries, heartbeats, the samplers,
per-worker seeds, the seed lock. Knows nothing of the search (opening the search's study:
:mod:`hwnas.search.study`), so that the retrain queue and :mod:`hwnas.runs` use it too."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import HwnasError
from ..paths import JOURNAL

log = logging.getLogger(__name__)

__all__ = ["SAMPLERS", "check_journal", "check_storage_url", "heartbeat_settings", "make_sampler",
           "open_storage", "resolve_storage_url", "retry_storage", "seed_lock",
           "sqlite_file", "worker_seed"]

T = TypeVar("T")

#: the samplers :func:`make_sampler` makes
SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random")

#: pip requirement of each SQLAlchemy driver (``dialect+driver://``) hwnas users meet
_DRIVER_PIP = {"psycopg": '"psycopg[binary]"', "psycopg2": "psycopg2-binary", "pg8000": "pg8000",
               "asyncpg": "asyncpg", "mysqldb": "mysqlclient", "pymysql": "pymysql",
               "mysqlconnector": "mysql-connector-python", "mariadbconnector": "mariadb",
               "oracledb": "oracledb", "pyodbc": "pyodbc", "pymssql": "pymssql"}


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds of an RDB storage: a RUNNING trial whose
    worker sent no heartbeat for the grace period is failed by the next worker that looks.
    Default 60 s and three intervals; the environment variables ``HWNAS_HEARTBEAT_S`` and
    ``HWNAS_GRACE_S`` change them (every worker of a study should use the same)."""
    def read(name: str, default: int) -> int:
        raw = os.environ.get(name)
        try:
            v = int(raw) if raw else default
        except ValueError:
            raise HwnasError(f"{name}={raw!r}: not a whole number of seconds") from None
        if v <= 0:
            raise HwnasError(f"{name}={raw!r}: must be positive")
        return v

    interval = read("HWNAS_HEARTBEAT_S", 60)
    grace = read("HWNAS_GRACE_S", 3 * interval)
    if grace <= interval:
        raise HwnasError(f"HWNAS_GRACE_S ({grace}) must exceed HWNAS_HEARTBEAT_S ({interval})")
    return interval, grace


def _is_url(url: str | None) -> bool:
    return url is not None and "://" in url and not url.startswith("redis://")


def _safe(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def resolve_storage_url(url: str | None, run_dir: Path) -> str | None:
    """``url`` with a relative SQLite path (``sqlite:///rel.db``) made absolute against the run
    folder ``run_dir``, so that the run finds its study from any working folder; any other
    storage is returned unchanged (None: the run's journal file)."""
    db = sqlite_file(url)
    if db is None or Path(db).is_absolute():
        return url
    from sqlalchemy.engine import make_url

    return make_url(str(url)).set(database=str((Path(run_dir) / db).absolute())).render_as_string(
        hide_password=False)


def sqlite_file(url: str | None) -> str | None:
    """The database file of the SQLite URL ``url`` (as written: resolve it first with
    :func:`resolve_storage_url`); None for any other storage and for in-memory SQLite."""
    if not url or not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        db = make_url(url).database
    except ArgumentError:
        return None
    return db if db and db != ":memory:" and not db.startswith("file:") else None


def check_storage_url(url: str | None) -> None:
    """HwnasError (one line) if the RDB URL ``url`` cannot be parsed, names an unknown database
    or its driver is not installed (then: what to ``pip install``). Opens no connection."""
    if not _is_url(url):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(str(url))
        dialect = u.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage '{_safe(str(url))}' cannot be opened: {msg}") from None
    try:
        dialect.import_dbapi()
    except ImportError:
        driver = dialect.driver
        pkg = _DRIVER_PIP.get(driver, driver)
        named = "+" in u.drivername
        hint = (f"; or name an installed driver in the URL, e.g. {u.get_backend_name()}+psycopg2://"
                if not named and u.get_backend_name() == "postgresql" else "")
        raise HwnasError(f"storage '{_safe(str(url))}' cannot be opened: its database driver "
                         f"'{driver}' is not installed: pip install {pkg}{hint}") from None


def _transient(e: BaseException) -> bool:
    """An error of simultaneous first starts or of a busy database, worth another try."""
    seen = 0
    while e is not None and seen < 5:
        text = f"{type(e).__name__} {e}".lower()
        if any(k in text for k in ("already exists", "duplicate key", "uniqueviolation",
                                   "unique constraint", "integrityerror", "database is locked",
                                   "deadlock", "could not serialize", "duplicatetable")):
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
        seen += 1
    return False


def retry_storage(fn: Callable[[], T], what: str, attempts: int = 8) -> T:
    """``fn()``, tried again (up to ``attempts`` times, with a random back-off) when it fails
    the way simultaneous first starts on one database do: two processes creating the schema
    (PostgreSQL ``UniqueViolation pg_type_typname_nsp_index``, SQLite ``table studies
    already exists``), the study or its version row at once, or SQLite ``database is locked``."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:
            if i == attempts - 1 or not _transient(e):
                raise
            log.debug("%s: %s: %s; trying again", what, type(e).__name__, e)
            time.sleep(random.uniform(0.05, 0.25) * 2 ** min(i, 4))
    raise AssertionError("unreachable")


def open_storage(url: str | None, run_dir: Path):
    """The run's Optuna storage: a journal file in the run folder, or any Optuna storage URL
    (``sqlite:///x.db``, relative paths against ``run_dir``; ``postgresql://...``,
    ``mysql://...``, ``redis://...``, or a path to a journal file). RDB storages send
    heartbeats (:func:`heartbeat_settings`) so that trials of workers that died on any machine
    are failed; simultaneous first starts are retried (:func:`retry_storage`)."""
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
            check_storage_url(url)
            url = resolve_storage_url(url, run_dir) or url
            if url.startswith("sqlite") and str(Path(run_dir).absolute()) in url:
                Path(run_dir).mkdir(parents=True, exist_ok=True)
            interval, grace = heartbeat_settings()

            def make():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return optuna.storages.RDBStorage(url, heartbeat_interval=interval,
                                                      grace_period=grace)

            return retry_storage(make, f"storage {_safe(url)}")
        p = Path(url)
        if not p.parent.is_dir():
            raise FileNotFoundError(f"no folder {p.parent}")
        _repair_journal_tail(p)
        return JournalStorage(JournalFileBackend(str(p)))
    except HwnasError:
        raise
    except Exception as e:  # driver missing, bad URL, unreachable server, unwritable file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage '{_safe(url) if url else run_dir / JOURNAL}' cannot be "
                         f"opened: {type(e).__name__}: {msg}") from None


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


_LOCK_GRACE_S = 30  # JournalFileSymlinkLock's default grace period, which JournalFileBackend uses


def _lock_age(path: Path) -> float | None:
    """Seconds since the journal lock of ``path`` (Optuna's symlink ``path.lock``, which
    records no pid) was taken; None when nobody holds it."""
    try:
        return time.time() - os.lstat(f"{path}.lock").st_mtime
    except OSError:
        return None


def _repair_journal_tail(path: Path) -> None:
    """Drop an incomplete last line (a writer killed mid-append), under the journal's lock,
    once the file is known to be a journal (:func:`check_journal`)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    check_journal(path)
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path), grace_period=_LOCK_GRACE_S)
    age = _lock_age(path)
    if age is not None and age > _LOCK_GRACE_S:
        log.warning("%s.lock: left %.0f s ago by a killed writer (a live one holds it for "
                    "milliseconds); Optuna breaks it after %d s", path, age, _LOCK_GRACE_S)
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


def worker_seed(seed: int, worker: str) -> int:
    """The sampler seed of the worker named ``worker`` in a search run with ``--seed seed``: a
    32-bit hash of both, so that workers of one study propose different archs and an explicit
    worker name (``--worker-id``) reproduces a worker's proposals."""
    h = hashlib.sha256(f"{int(seed)}/{worker}".encode()).digest()
    return int.from_bytes(h[:4], "little")


@contextlib.contextmanager
def seed_lock(storage: Any, url: str | None, run_dir: Path, study_name: str) -> Iterator[None]:
    """Hold, across processes and machines, the lock under which a study's seed trials are
    looked at and enqueued (:func:`hwnas.search.seeds.seed_study`): a PostgreSQL advisory
    lock or a MySQL named lock on the storage's own database, a symlink lock (Optuna's
    ``JournalFileSymlinkLock``, safe on shared folders) beside a journal or SQLite file. A
    Redis journal gets no lock (seeds may then be enqueued twice when two processes start at
    the same instant). The lock dies with its holder."""
    url = resolve_storage_url(url, run_dir)
    key = int.from_bytes(hashlib.sha256(f"hwnas-seeds/{study_name}".encode()).digest()[:8],
                         "little", signed=True)
    engine = getattr(storage, "engine", None)
    dialect = getattr(getattr(engine, "dialect", None), "name", "")
    if engine is not None and dialect in ("postgresql", "mysql", "mariadb"):
        from sqlalchemy import text

        lock, unlock = (("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)")
                        if dialect == "postgresql" else
                        ("SELECT GET_LOCK(:n, 600)", "SELECT RELEASE_LOCK(:n)"))
        args = {"k": key, "n": f"hwnas-seeds-{key:x}"[:64]}
        with engine.connect() as conn:
            conn.execute(text(lock), args)
            try:
                yield
            finally:
                conn.execute(text(unlock), args)
                conn.commit()
        return
    path: str | None = None
    if url is None:
        path = str(run_dir / JOURNAL)
    elif url.startswith("sqlite"):
        path = sqlite_file(url)
    elif "://" not in url:
        path = url
    if path is None:
        yield
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    flock = JournalFileSymlinkLock(f"{path}.seeds")
    flock.acquire()
    try:
        yield
    finally:
        flock.release()
