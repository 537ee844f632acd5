"""A private PostgreSQL server for the tests (pytest plugin, registered in conftest.py).

``pg_url`` (session scope): initdb of a fresh cluster in a temporary folder, ``postgres`` on
127.0.0.1 at a free port with its socket in that folder, trust authentication for the user
``hwnas``; yields the SQLAlchemy URL ``postgresql+psycopg://hwnas@127.0.0.1:PORT/hwnas``
(psycopg 3) and stops the server at the end. The server never runs as root: under root (CI)
the cluster belongs to ``nobody`` and initdb/pg_ctl run through ``setpriv``/``runuser``.
Skipped, with the reason, where it cannot start: no initdb (``apt-get install postgresql``;
Debian keeps it in /usr/lib/postgresql/VERSION/bin), no psycopg (``pip install
"psycopg[binary]"``), no unprivileged user.

``pg_db`` (function scope): a new empty database on that server, as a URL (for tests of
first starts on a database without Optuna's tables).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["new_database", "pg_db", "pg_url"]

USER = "hwnas"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return cands[-1] if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that drops root, and the user it drops to (None: not root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("PostgreSQL refuses to run as root and there is no user 'nobody'")
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                "--"], user
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "nobody", "--"], user
    pytest.skip("running as root without setpriv or runuser to start PostgreSQL as 'nobody'")


def new_database(url: str, name: str | None = None) -> str:
    """Create an empty database on the server of ``url``; returns its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return u.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('no psycopg (PostgreSQL driver): pip install "psycopg[binary]"')
    prefix, user = _as_user()
    # not under pytest's tmp folder: that one is private to root (0700)
    root = Path(tempfile.mkdtemp(prefix="hwnas-pg-"))
    data, sock, logf = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if user is not None:
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)

    def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, env=env,
                              cwd=root, timeout=timeout)

    r = run(initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions")
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {(r.stderr or r.stdout).strip()[-300:]}")
    started = None
    for _ in range(3):  # a free port may be taken between the probe and the bind
        port = _free_port()
        opts = f"-h 127.0.0.1 -p {port} -k {sock} -F -c max_connections=200"
        r = run(pg_ctl, "-D", str(data), "-l", str(logf), "-o", opts, "-w", "-t", "60", "start")
        if r.returncode == 0:
            started = port
            break
    if started is None:
        tail = logf.read_text()[-300:] if logf.is_file() else r.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {tail.strip()}")
    base = f"postgresql+psycopg://{USER}@127.0.0.1:{started}/postgres"
    try:
        t0 = time.monotonic()
        while True:
            try:
                url = new_database(base, "hwnas")
                break
            except Exception:
                if time.monotonic() - t0 > 30:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_db(pg_url: str) -> str:
    return new_database(pg_url)
