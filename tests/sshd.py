"""A real OpenSSH server for the tests: 127.0.0.1, a free port, throwaway keys (pytest
plugin, registered in conftest.py, like pg.py).

``start_sshd(tmp)`` generates a host key and a user key, writes an ``sshd_config`` and an
``ssh_config`` (IdentityFile, UserKnownHostsFile with the host key, StrictHostKeyChecking
yes) and starts ``/usr/sbin/sshd -D -e``. The tests point hwnas at it with
``HWNAS_SSH_CONFIG=<ssh_config>``. The fixture ``ssh_server`` (session scope: one server
for every test that asks) is that server; it skips (with the reason) only where sshd or ssh
is not installed.

The server sets ``TMPDIR`` for its sessions (``SetEnv``) to a folder of its own, so tests
can see that hwnas removes its remote temporary folders.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    root: Path            # the fixture's folder
    ssh_config: Path      # IdentityFile + UserKnownHostsFile + StrictHostKeyChecking yes
    identity: Path        # the authorized private key
    known_hosts: Path     # holds the server's real host key
    host_pub: str         # the host public key line ("ssh-ed25519 AAAA...")
    remote_tmp: Path      # TMPDIR of the sessions
    log: Path             # sshd's log
    proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def env(self, ssh_config: Path | None = None) -> dict:
        return {"HWNAS_SSH_CONFIG": str(ssh_config or self.ssh_config)}

    def write_ssh_config(self, path: Path, *, identity: Path | None = None,
                         known_hosts: Path | None = None, alias: str = "hwnas-test") -> Path:
        """An ssh_config for this server; pass another identity / known_hosts for bad cases.

        ``alias`` is a Host entry with HostName, Port and User (a target like ssh://alias)."""
        common = (f"  IdentityFile {identity or self.identity}\n"
                  "  IdentitiesOnly yes\n"
                  f"  UserKnownHostsFile {known_hosts or self.known_hosts}\n"
                  "  GlobalKnownHostsFile /dev/null\n"
                  "  StrictHostKeyChecking yes\n"
                  "  PasswordAuthentication no\n"
                  "  KbdInteractiveAuthentication no\n"
                  "  LogLevel ERROR\n")
        path.write_text(f"Host {alias}\n  HostName {self.host}\n  Port {self.port}\n  User {self.user}\n"
                        f"Host *\n{common}")
        return path

    def known_hosts_line(self, pub: str) -> str:
        return f"[{self.host}]:{self.port} {pub}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, kind: str = "ed25519") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "hwnas-test", "-f", str(path)],
                   check=True, capture_output=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def new_key(path: Path) -> tuple[Path, str]:
    """A fresh ed25519 key pair (private path, public key line)."""
    return path, _keygen(path)


def find_sshd() -> str | None:
    for c in SSHD_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return None


def start_sshd(root: Path) -> SSHServer:
    sshd = find_sshd()
    if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("sshd not available: apt-get install openssh-server openssh-client")
    root.mkdir(parents=True, exist_ok=True)
    host_key = root / "host_ed25519"
    host_pub = _keygen(host_key)
    identity = root / "id_ed25519"
    user_pub = _keygen(identity)
    (root / "authorized_keys").write_text(user_pub + "\n")
    remote_tmp = root / "remote_tmp"
    remote_tmp.mkdir()
    if os.geteuid() == 0:  # privilege separation folder
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    user = getpass.getuser()
    log = root / "sshd.log"
    last_err = ""
    for _ in range(3):  # a free port can be taken between choosing and binding it
        port = free_port()
        cfg = root / "sshd_config"
        cfg.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nMaxStartups 50\nMaxSessions 50\n"
            f"SetEnv TMPDIR={remote_tmp}\nLogLevel VERBOSE\n")
        known_hosts = root / "known_hosts"
        srv = SSHServer(host="127.0.0.1", port=port, user=user, root=root,
                        ssh_config=root / "ssh_config", identity=identity,
                        known_hosts=known_hosts, host_pub=host_pub, remote_tmp=remote_tmp, log=log)
        known_hosts.write_text(srv.known_hosts_line(host_pub))
        srv.write_ssh_config(srv.ssh_config)
        with open(log, "ab") as lf:
            srv.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                        stdout=lf, stderr=lf)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and srv.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.settimeout(5)
                    if s.recv(64).startswith(b"SSH-"):
                        return srv
            except OSError:
                time.sleep(0.1)
        stop_sshd(srv)
        last_err = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"sshd did not start; its log:\n{last_err}")


def stop_sshd(srv: SSHServer) -> None:
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.terminate()
        try:
            srv.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory) -> Iterator[SSHServer]:
    """One sshd for the session (every test leaves its remote folder removed)."""
    srv = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield srv
    finally:
        stop_sshd(srv)
