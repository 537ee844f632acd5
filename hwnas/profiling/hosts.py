"""Host side of a device: where it is, how to reach it, how to run a bundle there.

A device is a named target stored as ``latency_tables/<name>/device.json``:

- ``local``: the bundle runs here, ``<python> -u run.py ARGS`` inside the bundle folder;
- ``ssh://[user@]host[:port]``: the OpenSSH client (``ssh``) copies the bundle to a fresh
  remote temporary folder (``mktemp -d``), runs it there with every argument
  shell-quoted, streams its output back line by line, and removes the folder afterwards
  (also on errors and Ctrl-C).

SSH uses the user's own ``~/.ssh/config``, keys and ``known_hosts`` with host-key
checking on, and ``BatchMode=yes`` (it never asks for a password or to accept a key).
Two environment variables adjust it: ``HWNAS_SSH_CONFIG`` (an ssh config file used
instead of ``~/.ssh/config``: ``ssh -F FILE``) and ``HWNAS_SSH_OPTS`` (extra ssh
options, shell-split, e.g. ``-o ConnectTimeout=30 -i ~/.ssh/pi_key``).

Connection failures (unknown host, refused connection, authentication failure, changed
or unknown host key, no space left) become one-line :class:`~hwnas.errors.HwnasError`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .. import paths
from ..errors import HwnasError
from ..io import atomic_write_json, loads_json
from ..onboard.runner import ENV_EXIT_WITH_STDIN, ENV_REMOVE_IF_ORPHANED

log = logging.getLogger(__name__)

__all__ = [
    "CONNECT_TIMEOUT", "DEVICE_FILE", "DeviceConfig", "Connection", "LocalConnection",
    "SSHConnection", "SSHTarget", "connect", "device_file", "device_or_default", "list_devices",
    "load_device", "parse_target", "save_device", "validate_name",
]

DEVICE_FILE = "device.json"
CONNECT_TIMEOUT = 15  # seconds; ssh's ConnectTimeout
MAX_THREADS = 256  # onnxruntime intra-op threads of a device
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOST_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+")
_TARGET_RE = re.compile(
    r"ssh://(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[^\]/\s]*\]|[^@/:\s\[\]]*)(?::(?P<port>[^/\s]*))?/?")


# ---------------------------------------------------------------- device configs

@dataclass
class DeviceConfig:
    """A named device: ``target`` is ``local`` or ``ssh://[user@]host[:port]``; ``threads``
    is the onnxruntime intra-op thread count; ``python`` the interpreter on the device
    (a command on its PATH, an absolute path or ``~/path``)."""

    name: str
    target: str = "local"
    threads: int = 1
    python: str = "python3"

    def validate(self) -> DeviceConfig:
        validate_name(self.name)
        parse_target(self.target)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or \
                not 1 <= self.threads <= MAX_THREADS:
            raise HwnasError(f"device '{self.name}': threads must be an integer >= 1 (at most "
                             f"{MAX_THREADS}), got {self.threads!r}")
        if not isinstance(self.python, str) or not self.python.strip() or "\n" in self.python \
                or "\0" in self.python or len(self.python) > 4096:
            raise HwnasError(f"device '{self.name}': python must be a command or path, got {self.python!r}")
        return self

    @property
    def is_local(self) -> bool:
        return self.target == "local"


def validate_name(name: str) -> str:
    """A device name is also a folder name: letters, digits, '.', '_', '-' (max 64)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise HwnasError(f"bad device name {name!r}: use letters, digits, '.', '_' and '-' "
                         "(starting with a letter or digit, at most 64 characters)")
    return name


@dataclass(frozen=True)
class SSHTarget:
    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user + '@' if self.user else ''}{h}{':' + str(self.port) if self.port else ''}"

    @property
    def display(self) -> str:
        """user@host[:port] for messages."""
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{h}{':' + str(self.port) if self.port else ''}"


def parse_target(target: str) -> SSHTarget | None:
    """``local`` -> None; ``ssh://[user@]host[:port]`` -> :class:`SSHTarget`; else HwnasError."""
    if target == "local":
        return None
    hint = "expected 'local' or 'ssh://user@host[:port]'"
    if not isinstance(target, str) or not target.startswith("ssh://"):
        raise HwnasError(f"bad device target {target!r}: {hint}")
    m = _TARGET_RE.fullmatch(target)
    if not m:
        raise HwnasError(f"bad device target {target!r}: {hint}")
    user, host, port_s = m.group("user"), m.group("host"), m.group("port")
    if user is not None and not _USER_RE.fullmatch(user):
        raise HwnasError(f"bad device target {target!r}: bad user name {user!r}")
    if host.startswith("["):
        host = host[1:-1]
        if not host or not _IPV6_RE.fullmatch(host):
            raise HwnasError(f"bad device target {target!r}: bad IPv6 address {host!r}")
    elif not host or not _HOST_RE.fullmatch(host):
        raise HwnasError(f"bad device target {target!r}: bad host name {host!r} ({hint})")
    port = None
    if port_s is not None:
        if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
            raise HwnasError(f"bad device target {target!r}: port must be an integer 1-65535, got {port_s!r}")
        port = int(port_s)
    return SSHTarget(host=host, user=user, port=port)


def device_file(name: str) -> Path:
    return paths.tables_dir() / validate_name(name) / DEVICE_FILE


def save_device(cfg: DeviceConfig) -> Path:
    """Write ``latency_tables/<name>/device.json`` atomically; returns its path."""
    cfg.validate()
    return atomic_write_json(device_file(cfg.name), asdict(cfg))


def load_device(name: str) -> DeviceConfig:
    p = device_file(name)
    if not p.is_file():
        raise HwnasError(f"unknown device '{name}' (hwnas device add {name} --target local|ssh://user@host[:port])")
    try:
        d = loads_json(p.read_text())
    except (OSError, ValueError) as e:
        raise HwnasError(f"{p}: cannot read device file: {e}") from None
    if not isinstance(d, dict):
        raise HwnasError(f"{p}: not a device file (expected a JSON object)")
    known = {f.name for f in fields(DeviceConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise HwnasError(f"{p}: unknown field(s) {', '.join(unknown)}")
    d.setdefault("name", name)
    if d["name"] != name:
        raise HwnasError(f"{p}: name {d['name']!r} does not match its folder '{name}'")
    try:
        cfg = DeviceConfig(**d)
    except TypeError as e:
        raise HwnasError(f"{p}: {e}") from None
    try:
        return cfg.validate()
    except HwnasError as e:
        raise HwnasError(f"{p}: {e}") from None


def device_or_default(name: str) -> DeviceConfig:
    """The device's ``device.json``, or the defaults (local, 1 thread) when it has none
    (writing a bundle by hand needs no registered device)."""
    validate_name(name)
    if device_file(name).is_file():
        return load_device(name)
    return DeviceConfig(name=name)


def list_devices() -> list[DeviceConfig]:
    """Every device with a ``device.json`` under ``latency_tables/``, by name."""
    root = paths.tables_dir()
    out: list[DeviceConfig] = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if (d / DEVICE_FILE).is_file() and _NAME_RE.fullmatch(d.name):
            try:
                out.append(load_device(d.name))
            except HwnasError as e:
                log.warning("skipping %s", e)
    return out


# ---------------------------------------------------------------- connections

class Connection:
    """How to reach a device: check it, run a bundle on it."""

    def __init__(self, cfg: DeviceConfig):
        self.cfg = cfg

    def run_bundle(self, bundle_dir: Path, args: list[str], on_line: Callable[[str], None]) -> int:
        """Run ``<python> run.py ARGS`` in (a copy of) ``bundle_dir`` on the device, calling
        ``on_line`` with every stdout line as it arrives. Returns 0; a failing runner or
        connection raises HwnasError (one line, with the runner's last stderr line)."""
        raise NotImplementedError

    def check(self) -> dict:
        """Run the runner's ``--check`` on the device and return its INFO dict
        (python, numpy, onnxruntime versions, machine, CPU...). HwnasError (one line) if
        the device cannot be reached or lacks Python, numpy or onnxruntime."""
        with tempfile.TemporaryDirectory(prefix="hwnas-check-") as tmp:
            _write_runner(Path(tmp))
            infos: list[dict] = []

            def on_line(line: str) -> None:
                if line.startswith("INFO "):
                    try:
                        infos.append(json.loads(line[5:]))
                    except ValueError:
                        log.debug("unparsable INFO line: %s", line)
                elif line.strip():
                    log.debug("%s", line)

            self.run_bundle(Path(tmp), ["--check"], on_line)
        if not infos or not isinstance(infos[-1], dict):
            raise HwnasError(f"device '{self.cfg.name}': the runner's --check printed no INFO line")
        return infos[-1]

    def describe(self) -> str:
        return self.cfg.target


def connect(cfg: DeviceConfig) -> Connection:
    """A :class:`LocalConnection` or :class:`SSHConnection` for ``cfg``."""
    t = parse_target(cfg.target)
    return LocalConnection(cfg) if t is None else SSHConnection(cfg, t)


def _write_runner(dest: Path) -> None:
    """Put the on-device runner (run.py + the device package) into ``dest``."""
    from .bundle import write_runner

    write_runner(dest)


def _stream(argv: list[str], on_line: Callable[[str], None], *, cwd: Path | None = None,
            env: dict | None = None, tail: int = 40) -> tuple[int, list[str]]:
    """Run argv; call on_line for each stdout line as it comes; return (rc, last stderr lines).

    On any exception (including KeyboardInterrupt) the child is terminated first."""
    err: deque[str] = deque(maxlen=tail)
    # stdin: a pipe nobody writes to, open while we listen; the runner (also through ssh)
    # sees end-of-file once this process is gone (hwnas.onboard.runner.HostWatch)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=env, text=True,
                            errors="replace", bufsize=1)

    def drain() -> None:
        for line in proc.stderr:
            line = line.rstrip("\r\n")
            if line.strip():
                err.append(line)
                log.debug("stderr: %s", line)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        for line in proc.stdout:
            on_line(line.rstrip("\r\n"))
        rc = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        t.join(timeout=5)
        proc.stdout.close()
        try:
            proc.stdin.close()
        except OSError:
            pass
    return rc, list(err)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bundle_dir(path: Path) -> Path:
    """``path`` if it holds a bundle's runner (run.py), else HwnasError."""
    path = Path(path)
    if not (path / "run.py").is_file():
        raise HwnasError(f"{path}: not a bundle (no run.py)")
    return path


def _last_line(lines: list[str]) -> str:
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return ""


class LocalConnection(Connection):
    """Runs the bundle on this machine. The default ``python3`` means the interpreter
    running hwnas (which has numpy and onnxruntime); anything else is used as given."""

    @property
    def python(self) -> str:
        return sys.executable if self.cfg.python == "python3" else os.path.expanduser(self.cfg.python)

    def describe(self) -> str:
        return "local"

    def run_bundle(self, bundle_dir: Path, args: list[str], on_line: Callable[[str], None]) -> int:
        bundle_dir = _bundle_dir(bundle_dir)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{ENV_EXIT_WITH_STDIN: "1"})
        argv = [self.python, "-u", "run.py", *map(str, args)]
        log.debug("local: %s (in %s)", shlex.join(argv), bundle_dir)
        try:
            rc, err = _stream(argv, on_line, cwd=bundle_dir, env=env)
        except FileNotFoundError:
            raise HwnasError(f"device '{self.cfg.name}': python {self.cfg.python!r} not found "
                             "(install Python 3 or give --python /path/to/python)") from None
        except PermissionError:
            raise HwnasError(f"device '{self.cfg.name}': python {self.cfg.python!r} is not executable") from None
        if rc != 0:
            raise HwnasError(_runner_failure(self.cfg.name, rc, err))
        return rc


def _runner_failure(name: str, rc: int, err: list[str]) -> str:
    text = "\n".join(err)
    last = _last_line(err)
    if last.startswith("error: "):
        last = last[len("error: "):]
    if "No space left on device" in text or "Disk quota exceeded" in text:
        return f"device '{name}': disk full on the device (No space left on device): free some space and run again"
    if rc in (126, 127):  # the shell's "command not found" / "not executable"
        return (f"device '{name}': python not found or not executable on the device ({last or f'exit {rc}'}); "
                "install Python 3 or give --python /path/to/python")
    if rc < 0:
        return f"device '{name}': the runner was killed by signal {-rc}" + (f": {last}" if last else "")
    if rc == 7 and last:  # the runner's "its onnxruntime X cannot run static QDQ int8 models"
        return f"device '{name}': {last}"
    return f"device '{name}': the runner failed (exit {rc})" + (f": {last}" if last else "")


def _remote_python(python: str) -> str:
    """Shell word for the interpreter: ``~/x`` and relative paths with '/' are under $HOME."""
    if python.startswith("~/"):
        return '"$HOME"/' + shlex.quote(python[2:])
    if "/" in python and not python.startswith("/"):
        return '"$HOME"/' + shlex.quote(python)
    return shlex.quote(python)


class SSHConnection(Connection):
    """Runs the bundle on a remote machine through the OpenSSH client."""

    def __init__(self, cfg: DeviceConfig, target: SSHTarget | None = None):
        super().__init__(cfg)
        self.target = target or parse_target(cfg.target)

    def describe(self) -> str:
        return str(self.target)

    # --- ssh plumbing

    def manual_ssh(self) -> str:
        """The plain ssh command a person would type to reach the device."""
        parts = ["ssh"] + (["-p", str(self.target.port)] if self.target.port else [])
        return shlex.join([*parts, f"{self.target.user}@{self.target.host}" if self.target.user else self.target.host])

    def ssh_argv(self, remote_command: str) -> list[str]:
        """The ssh command line that runs ``remote_command`` (a shell string) on the device."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        cfg_file = os.environ.get("HWNAS_SSH_CONFIG")
        if cfg_file:
            if not Path(cfg_file).expanduser().is_file():
                raise HwnasError(f"HWNAS_SSH_CONFIG={cfg_file}: no such ssh config file")
            argv += ["-F", str(Path(cfg_file).expanduser())]
        extra = os.environ.get("HWNAS_SSH_OPTS")
        if extra:
            try:
                argv += shlex.split(extra)
            except ValueError as e:
                raise HwnasError(f"HWNAS_SSH_OPTS: cannot parse: {e}") from None
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        if self.target.user:
            argv += ["-l", self.target.user]
        return [*argv, "--", self.target.host, remote_command]

    def _ssh_error(self, err: list[str]) -> str | None:
        """A one-line message for ssh's own failure (exit 255), or None if not recognised."""
        text = "\n".join(err)
        n, t = self.cfg.name, self.target
        where = f"device '{n}' ({t.display})"
        kh_host = f"[{t.host}]:{t.port}" if t.port and t.port != 22 else t.host
        if "Could not resolve hostname" in text or "Name or service not known" in text:
            return f"{where}: unknown host '{t.host}' (could not resolve it; check --target or your ssh config)"
        if "Connection refused" in text:
            return f"{where}: connection refused by {t.host} port {t.port or 22} (is sshd running on the device, and the port right?)"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "POSSIBLE DNS SPOOFING" in text:
            return (f"{where}: host key mismatch: the device's host key differs from the one in your known_hosts "
                    f"(if the device was reinstalled, check and remove the old key: ssh-keygen -R '{kh_host}')")
        if "Host key verification failed" in text or "host key is known" in text:
            return (f"{where}: host key not verified: the device is not in your known_hosts "
                    f"(connect once by hand to check and accept its key: {self.manual_ssh()})")
        if "Permission denied" in text or "Too many authentication failures" in text:
            return (f"{where}: authentication failed (hwnas uses key login only: "
                    f"set up a key with ssh-copy-id, or set IdentityFile in your ssh config)")
        if "timed out" in text or "No route to host" in text or "Network is unreachable" in text:
            return f"{where}: cannot reach the device ({_last_line(err)})"
        if "No space left on device" in text:
            return f"{where}: disk full on the device (No space left on device): free some space and run again"
        if "Connection closed" in text or "Connection reset" in text or "kex_exchange_identification" in text:
            return f"{where}: the connection was closed ({_last_line(err)})"
        return None

    def _run(self, remote_command: str, *, stdin=None, timeout: float | None = None
             ) -> subprocess.CompletedProcess:
        argv = self.ssh_argv(remote_command)
        log.debug("ssh: %s", shlex.join(argv))
        try:
            return subprocess.run(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace", timeout=timeout)
        except FileNotFoundError:
            raise HwnasError("ssh not found: install the OpenSSH client (apt-get install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise HwnasError(f"device '{self.cfg.name}' ({self.target.display}): no answer within {timeout:.0f} s") from None

    def _fail(self, what: str, rc: int, stderr: str) -> HwnasError:
        err = [x for x in stderr.splitlines() if x.strip()]
        msg = self._ssh_error(err) if rc == 255 else None
        if msg is None and any("No space left on device" in x for x in err):
            msg = f"device '{self.cfg.name}' ({self.target.display}): disk full on the device (No space left on device): free some space and run again"
        if msg is None:
            msg = f"device '{self.cfg.name}' ({self.target.display}): {what} failed (exit {rc})" + (
                f": {_last_line(err)}" if err else "")
        return HwnasError(msg)

    def run_command(self, remote_command: str, timeout: float | None = 120) -> str:
        """Run a shell command on the device; its stdout, or HwnasError."""
        r = self._run(remote_command, timeout=timeout)
        if r.returncode != 0:
            raise self._fail("remote command", r.returncode, r.stderr)
        return r.stdout

    # --- bundle

    def upload(self, bundle_dir: Path) -> str:
        """Copy ``bundle_dir`` into a fresh remote temporary folder; returns its path."""
        setup = ('d=$(mktemp -d "${TMPDIR:-/tmp}/hwnas.XXXXXXXX") || exit 1; printf "HWNAS_DIR %s\\n" "$d"; '
                 'tar xf - -C "$d" || { rm -rf "$d"; exit 1; }')
        with tempfile.TemporaryFile(prefix="hwnas-bundle-", suffix=".tar") as f:
            _tar_dir(Path(bundle_dir), f)
            f.seek(0)
            r = self._run(setup, stdin=f, timeout=None)
        # a marker: login scripts on the device may print things of their own
        dirs = [x[len("HWNAS_DIR "):].strip() for x in r.stdout.splitlines()
                if x.startswith("HWNAS_DIR /")]
        if r.returncode != 0 or not dirs:
            raise self._fail("copying the bundle", r.returncode or 1, r.stderr)
        return dirs[-1]

    def cleanup(self, remote_dir: str) -> None:
        """Stop the runner if it still runs (its pid is in the folder) and remove the folder."""
        q = shlex.quote(remote_dir)
        cmd = (f'if [ -f {q}/.hwnas.pid ]; then kill "$(cat {q}/.hwnas.pid)" 2>/dev/null; fi; '
               f'rm -rf {q}')
        try:
            r = self._run(cmd, timeout=60)
            if r.returncode != 0:
                log.warning("could not remove %s on %s: %s", remote_dir, self.target.display,
                            _last_line(r.stderr.splitlines()))
        except HwnasError as e:
            log.warning("could not remove %s on %s: %s", remote_dir, self.target.display, e)

    def run_bundle(self, bundle_dir: Path, args: list[str], on_line: Callable[[str], None]) -> int:
        bundle_dir = _bundle_dir(bundle_dir)
        remote_dir = self.upload(bundle_dir)
        log.debug("bundle copied to %s:%s", self.target.display, remote_dir)
        try:
            q = shlex.quote(remote_dir)
            run = " ".join([f"{ENV_EXIT_WITH_STDIN}=1", f"{ENV_REMOVE_IF_ORPHANED}=1",
                            _remote_python(self.cfg.python), "-u", "run.py",
                            *(shlex.quote(str(a)) for a in args)])
            # run in the background so cleanup() can stop it by pid if we are interrupted;
            # its stdin is the session's (fd 3: a background job's own stdin is /dev/null),
            # so that it stops and removes the folder itself when the session is gone
            cmd = (f"cd {q} && exec 3<&0 && "
                   f"{{ {run} <&3 3<&- & echo $! > .hwnas.pid; wait $!; }}")
            try:
                rc, err = _stream(self.ssh_argv(cmd), on_line)
            except FileNotFoundError:
                raise HwnasError("ssh not found: install the OpenSSH client (apt-get install openssh-client)") from None
            if rc != 0:
                msg = self._ssh_error(err) if rc == 255 else None
                raise HwnasError(msg or _runner_failure(self.cfg.name, rc, err))
            return rc
        finally:
            self.cleanup(remote_dir)


def _tar_dir(src: Path, fileobj) -> None:
    import tarfile

    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            if "__pycache__" in rel.parts:
                continue
            tar.add(p, arcname=str(rel), recursive=False)
