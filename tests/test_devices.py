"""Devices: add/list/check (local and over a real sshd), running a bundle over SSH, and one
clear line for every way of failing to reach a device."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from sshd import SSHServer, free_port, new_key

from hwnas.errors import HwnasError
from hwnas.profiling.hosts import (
    DeviceConfig,
    SSHConnection,
    connect,
    list_devices,
    load_device,
    parse_target,
    save_device,
    validate_name,
)


@pytest.fixture
def ssh_env(ssh_server, monkeypatch):
    """hwnas in this process talks to the test sshd."""
    monkeypatch.setenv("HWNAS_SSH_CONFIG", str(ssh_server.ssh_config))
    monkeypatch.delenv("HWNAS_SSH_OPTS", raising=False)
    return ssh_server


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory):
    """A Python 3 without numpy and onnxruntime (a venv without pip)."""
    d = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)], check=True)
    py = d / "bin" / "python"
    r = subprocess.run([str(py), "-c", "import numpy"], capture_output=True)
    if r.returncode == 0:
        pytest.skip("the venv sees numpy (system site packages)")
    return py


def leftovers(srv: SSHServer) -> list[str]:
    return sorted(p.name for p in srv.remote_tmp.glob("hwnas.*"))


# ---------------------------------------------------------------- local

def test_add_list_check_local(cli, home):
    r = cli("device", "add", "here", "--target", "local", "--threads", "2", check=0)
    assert "added device 'here'" in r.stdout
    stored = json.loads((home / "latency_tables" / "here" / "device.json").read_text())
    assert stored == {"name": "here", "target": "local", "threads": 2, "python": "python3"}
    cli("device", "add", "pi", "--target", "ssh://pi@raspberrypi.local:2222", check=0)

    r = cli("device", "list", check=0)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TARGET", "THREADS", "PYTHON"]
    assert lines[1].split() == ["here", "local", "2", "python3"]
    assert lines[2].split() == ["pi", "ssh://pi@raspberrypi.local:2222", "1", "python3"]

    r = cli("device", "check", "here", check=0)
    import numpy
    import onnxruntime
    out = dict(line.split(None, 1) for line in r.stdout.splitlines())
    assert out["numpy"] == f"{numpy.__version__}  ok"
    assert out["onnxruntime"] == f"{onnxruntime.__version__}  ok"
    assert out["python"].startswith(sys.version.split()[0])


def test_library_roundtrip(home):
    p = save_device(DeviceConfig("b1", "ssh://u@h", threads=4, python="~/venv/bin/python"))
    assert p == home / "latency_tables" / "b1" / "device.json"
    assert load_device("b1") == DeviceConfig("b1", "ssh://u@h", 4, "~/venv/bin/python")
    assert [d.name for d in list_devices()] == ["b1"]
    assert isinstance(connect(load_device("b1")), SSHConnection)
    t = parse_target("ssh://[::1]:2200")
    assert (t.host, t.user, t.port) == ("::1", None, 2200)
    with pytest.raises(HwnasError, match="unknown device 'nope'"):
        load_device("nope")
    (home / "latency_tables" / "b1" / "device.json").write_text("{broken")
    with pytest.raises(HwnasError, match="cannot read device file"):
        load_device("b1")


def test_names_and_targets_end_at_the_end_of_the_text():
    """`$` matches before a trailing newline; names and targets are matched whole."""
    for bad in ("nl\n", "a\nb", "x" * 65):
        with pytest.raises(HwnasError, match="bad device name"):
            validate_name(bad)
    for bad in ("ssh://pi@host\n", "ssh://pi\n@host", "ssh://[::1]\n"):
        with pytest.raises(HwnasError, match="bad device target"):
            parse_target(bad)
    assert validate_name("pi-4.b_2") == "pi-4.b_2"


@pytest.mark.parametrize("args, fragment", [
    (["x", "--target", "ssh://pi@host:22x"], "port must be an integer"),
    (["x", "--target", "ssh://pi@host:70000"], "port must be an integer"),
    (["x", "--target", "pi@host"], "bad device target 'pi@host'"),
    (["x", "--target", "ssh://pi@"], "bad host name"),
    (["x", "--target", "ssh://-oProxyCommand=x@host"], "bad user name"),
    (["x", "--target", "ssh://pi@-oProxyCommand=x"], "bad host name"),
    (["../up", "--target", "local"], "bad device name '../up'"),
    (["a b", "--target", "local"], "bad device name 'a b'"),
    (["x", "--target", "local", "--threads", "0"], "threads must be an integer >= 1"),
])
def test_add_bad_input(cli, home, args, fragment):
    cli("device", "add", "x", "--target", "local", check=0)
    before = (home / "latency_tables" / "x" / "device.json").read_bytes()
    assert_one_line_error(cli("device", "add", *args), fragment)
    assert (home / "latency_tables" / "x" / "device.json").read_bytes() == before
    assert not (home / "latency_tables" / "up").exists()


def test_check_unknown_device(cli):
    assert_one_line_error(cli("device", "check", "ghost"), "unknown device 'ghost'", "hwnas device add ghost")


def test_check_local_missing_numpy(cli, bare_python):
    cli("device", "add", "bare", "--target", "local", "--python", str(bare_python), check=0)
    assert_one_line_error(cli("device", "check", "bare"), "device 'bare'", "not installed")


def test_check_local_python_not_found(cli, tmp_path):
    cli("device", "add", "nopy", "--target", "local", "--python", str(tmp_path / "no" / "python3"), check=0)
    assert_one_line_error(cli("device", "check", "nopy"), "device 'nopy'", "not found")


def fake_bundle(d: Path, body: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.py").write_text("import json, os, sys, time\n" + body)
    return d


ECHO_RUNNER = """
args = sys.argv[1:]
go = args[0]
print("PROGRESS 0 2 1.5")
print("READY")
sys.stdout.flush()
# wait for the host to have seen READY: proves lines stream while the runner still runs
for _ in range(400):
    if os.path.exists(go):
        break
    time.sleep(0.05)
else:
    print("NOT-STREAMED")
prior = open("results.jsonl").read() if os.path.exists("results.jsonl") else ""
print("RESULT " + json.dumps({"argv": args, "cwd": os.getcwd(), "prior": prior}))
print("PROGRESS 2 2 0")
"""

NASTY = "a b; touch PWNED $(touch PWNED2) `touch PWNED3` 'q' \"dq\" * \\ & | > x ~ $HOME\n2nd line"


def run_echo(conn, bundle: Path, go: Path) -> list[str]:
    lines: list[str] = []

    def on_line(line):
        lines.append(line)
        if line == "READY":
            go.write_text("go")

    assert conn.run_bundle(bundle, [str(go), NASTY, "", "--threads", "1"], on_line) == 0
    return lines


def check_echo(lines: list[str], go: Path) -> dict:
    assert "NOT-STREAMED" not in lines
    assert lines[0] == "PROGRESS 0 2 1.5" and lines[-1] == "PROGRESS 2 2 0"
    res = json.loads(next(x for x in lines if x.startswith("RESULT "))[7:])
    assert res["argv"] == [str(go), NASTY, "", "--threads", "1"]
    assert res["prior"] == '{"key": "done-before"}\n'
    return res


def test_local_run_bundle(home, tmp_path):
    b = fake_bundle(tmp_path / "bundle", ECHO_RUNNER)
    (b / "results.jsonl").write_text('{"key": "done-before"}\n')
    res = check_echo(run_echo(connect(DeviceConfig("here")), b, tmp_path / "go"), tmp_path / "go")
    assert Path(res["cwd"]) == b
    assert not list(b.glob("PWNED*"))


# ---------------------------------------------------------------- over SSH (real sshd)

def ssh_device(srv: SSHServer, name="board", **kw) -> DeviceConfig:
    kw.setdefault("python", sys.executable)
    return DeviceConfig(name, srv.target, **kw)


@pytest.mark.ssh
def test_ssh_add_check(cli, home, ssh_server):
    cli("device", "add", "board", "--target", ssh_server.target, "--python", sys.executable,
        "--threads", "2", check=0)
    r = cli("device", "check", "board", env={**ssh_server.env(), "HWNAS_HOME": str(home)}, check=0)
    import numpy
    import onnxruntime
    out = dict(line.split(None, 1) for line in r.stdout.splitlines())
    assert out["device"] == f"board ({ssh_server.target})"
    assert out["python"] == f"{sys.version.split()[0]}  ok"
    assert out["numpy"] == f"{numpy.__version__}  ok"
    assert out["onnxruntime"] == f"{onnxruntime.__version__}  ok"
    assert leftovers(ssh_server) == []


@pytest.mark.ssh
def test_ssh_check_through_ssh_config_alias(ssh_env):
    """ssh://alias with no user or port: HostName, Port and User come from the ssh config."""
    info = connect(DeviceConfig("alias", "ssh://hwnas-test", python=sys.executable)).check()
    import numpy
    assert info["numpy"] == numpy.__version__
    assert leftovers(ssh_env) == []


@pytest.mark.ssh
def test_ssh_run_bundle_streams_quotes_and_cleans_up(ssh_env, tmp_path):
    b = fake_bundle(tmp_path / "bundle", ECHO_RUNNER)
    (b / "results.jsonl").write_text('{"key": "done-before"}\n')
    go = tmp_path / "go"  # the "remote" is this machine: the runner sees the same /tmp
    res = check_echo(run_echo(connect(ssh_device(ssh_env)), b, go), go)
    remote = Path(res["cwd"])
    assert remote.parent == ssh_env.remote_tmp and remote.name.startswith("hwnas.")
    assert not remote.exists()
    assert leftovers(ssh_env) == []
    home_files = {p.name for p in Path.home().glob("PWNED*")}
    assert not home_files and not list(b.glob("PWNED*")) and not list(ssh_env.remote_tmp.rglob("PWNED*"))


@pytest.mark.ssh
def test_ssh_run_bundle_failure_reports_stderr_and_cleans_up(ssh_env, tmp_path):
    b = fake_bundle(tmp_path / "bundle", 'print("RESULT {}")\nsys.exit("error: onnxruntime exploded")\n')
    lines = []
    with pytest.raises(HwnasError, match="exit 1.*onnxruntime exploded") as e:
        connect(ssh_device(ssh_env)).run_bundle(b, [], lines.append)
    assert "\n" not in str(e.value)
    assert lines == ["RESULT {}"]  # what was measured before the failure still reached the host
    assert leftovers(ssh_env) == []


@pytest.mark.ssh
def test_ssh_interrupt_stops_runner_and_cleans_up(ssh_env, tmp_path):
    pidfile = tmp_path / "runner.pid"
    b = fake_bundle(tmp_path / "bundle", f"""
open({str(pidfile)!r}, "w").write(str(os.getpid()))
print("STARTED", flush=True)
for i in range(600):
    time.sleep(0.1)
print("FINISHED", flush=True)
""")

    def on_line(line):
        if line == "STARTED":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        connect(ssh_device(ssh_env)).run_bundle(b, [], on_line)
    assert leftovers(ssh_env) == []
    pid = int(pidfile.read_text())
    # cleanup sent SIGTERM to the runner by its pid; wait for it to go
    r = subprocess.run(["sh", "-c", f"for i in $(seq 100); do kill -0 {pid} 2>/dev/null || exit 0; "
                        "sleep 0.1; done; exit 1"])
    assert r.returncode == 0, "the remote runner is still running"


@pytest.mark.ssh
def test_ssh_disk_full(ssh_env, tmp_path, cli):
    """The runner hits ENOSPC (writing to /dev/full): one clear line, results so far kept."""
    b = fake_bundle(tmp_path / "bundle", """
print("RESULT {}", flush=True)
with open("/dev/full", "w") as f:
    f.write("x" * 10000)
""")
    lines = []
    with pytest.raises(HwnasError, match="disk full on the device") as e:
        connect(ssh_device(ssh_env)).run_bundle(b, [], lines.append)
    assert "\n" not in str(e.value) and lines == ["RESULT {}"]
    assert leftovers(ssh_env) == []


def _bad_configs(srv: SSHServer, d: Path) -> dict:
    d.mkdir(exist_ok=True)
    other_key, _ = new_key(d / "other_key")
    _, wrong_host_pub = new_key(d / "wrong_host_key")
    (d / "kh_mismatch").write_text(srv.known_hosts_line(wrong_host_pub))
    (d / "kh_empty").write_text("")
    return {
        "auth": srv.write_ssh_config(d / "cfg_auth", identity=other_key),
        "mismatch": srv.write_ssh_config(d / "cfg_mismatch", known_hosts=d / "kh_mismatch"),
        "unknown_key": srv.write_ssh_config(d / "cfg_unknown", known_hosts=d / "kh_empty"),
    }


@pytest.mark.ssh
def test_ssh_bad_cases_one_line_each(cli, home, ssh_server, bare_python, tmp_path):
    cfgs = _bad_configs(ssh_server, tmp_path / "cfgs")
    ok_py = sys.executable
    cases = [
        ("ghost", "ssh://u@nonexistent.invalid", ok_py, None, ["unknown host 'nonexistent.invalid'"]),
        ("closed", f"ssh://{ssh_server.user}@127.0.0.1:{free_port()}", ok_py, None, ["connection refused"]),
        ("auth", ssh_server.target, ok_py, cfgs["auth"], ["authentication failed"]),
        ("mismatch", ssh_server.target, ok_py, cfgs["mismatch"], ["host key mismatch", "ssh-keygen -R"]),
        ("unknownkey", ssh_server.target, ok_py, cfgs["unknown_key"], ["host key not verified"]),
        ("bare", ssh_server.target, str(bare_python), None, ["device 'bare'", "not installed"]),
        ("nopy", ssh_server.target, "/nonexistent/python3", None, ["device 'nopy'", "python not found"]),
    ]
    for name, target, py, cfg, fragments in cases:
        cli("device", "add", name, "--target", target, "--python", py, check=0)
        before = (home / "latency_tables" / name / "device.json").read_bytes()
        r = cli("device", "check", name,
                env={"HWNAS_HOME": str(home), **ssh_server.env(cfg)}, timeout=120)
        assert_one_line_error(r, f"device '{name}'", *fragments)
        assert (home / "latency_tables" / name / "device.json").read_bytes() == before
    assert leftovers(ssh_server) == []


def test_upload_disk_full_message():
    """tar on a full board: the copy fails with one clear line (the live case needs a full disk)."""
    conn = SSHConnection(DeviceConfig("pi", "ssh://pi@board:2222"))
    e = conn._fail("copying the bundle", 2, "tar: models/a.onnx: Cannot write: No space left on device\n"
                   "tar: Exiting with failure status due to previous errors\n")
    assert str(e) == ("device 'pi' (pi@board:2222): disk full on the device (No space left on device): "
                      "free some space and run again")


# ---------------------------------------------------------------- the runner when the host is gone

def relu_bundle(d: Path, n: int = 6, passes: int = 4, min_time_s: float = 0.15) -> list[str]:
    """A real bundle of ``n`` one-op ONNX models (no torch), slow enough to stop mid-run."""
    from onnx import TensorProto, helper

    from hwnas.onboard.bench import Protocol
    from hwnas.profiling.bundle import write_runner

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    write_runner(d)
    (d / "models").mkdir()
    (d / "models" / "relu.onnx").write_bytes(model.SerializeToString())
    ids = [f"relu#{i}" for i in range(n)]
    proto = Protocol(warmup=1, min_repeats=3, min_time_s=min_time_s, passes=passes,
                     burst_warmup=0, sample_ms=0.0, chunk=n)
    (d / "manifest.json").write_text(json.dumps({
        "schema": 1, "kind": "hwnas-bundle", "protocol": proto.to_dict(),
        "entries": [{"id": i, "kind": "block", "file": "models/relu.onnx",
                     "input_shape": [1, 4, 8, 8]} for i in ids]}))
    return ids


def _records(path: Path, kind: str) -> list[dict]:
    from hwnas.onboard.runner import read_records

    return [r for r in read_records(str(path)) if r["type"] == kind]


def test_runner_stops_and_removes_its_copy_when_stdin_closes(tmp_path):
    b = tmp_path / "copy"
    ids = relu_bundle(b)
    p = subprocess.Popen([sys.executable, "-u", "run.py", "--exit-with-stdin",
                          "--remove-if-orphaned"], cwd=b, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:  # the first burst is measured: the host goes away
        if line.startswith("RECORD") and '"type":"pass"' in line:
            break
    p.stdin.close()
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 1
    assert "stdin closed" in p.stderr.read()
    assert rest.count("RESULT ") < len(ids)  # it stopped, instead of measuring on
    assert not b.exists()  # and removed the folder itself


def test_a_runner_that_loses_its_host_writes_what_it_measured_and_a_resume_adds_no_burst(
        tmp_path):
    ids = relu_bundle(tmp_path, n=4, passes=3, min_time_s=0.05)
    res = tmp_path / "results.jsonl"
    p = subprocess.Popen([sys.executable, "-u", "run.py"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("RESULT"):
            break
    p.stdout.close()  # the host is gone: the next line printed meets a broken pipe
    assert p.wait(timeout=120) == 1
    assert "stdout closed" in p.stderr.read()
    first = _records(res, "pass")
    assert 0 < len(_records(res, "result")) < len(ids)
    # the last burst measured before the pipe broke is in the file, with its result if final
    for i in ids:
        n = sum(r["id"] == i for r in first)
        assert (n >= 3) == any(r["id"] == i for r in _records(res, "result")), i
    r = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    passes = [(x["id"], x["pass"]) for x in _records(res, "pass")]
    assert sorted(passes) == sorted((i, k) for i in ids for k in (1, 2, 3))  # none twice
    assert sorted(x["id"] for x in _records(res, "result")) == sorted(ids)
    # a runner stopped between an entry's last pass line and its result line: the next start
    # writes the result from the recorded passes, without another burst
    lines = res.read_text().splitlines(keepends=True)
    drop = next(k for k, x in enumerate(lines) if '"type":"result"' in x)
    gone = json.loads(lines[drop])
    res.write_text("".join(lines[:drop] + lines[drop + 1:]))
    r = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert [(x["id"], x["pass"]) for x in _records(res, "pass")] == passes
    again = [x for x in _records(res, "result") if x["id"] == gone["id"]]
    assert len(again) == 1 and again[0]["n"] == gone["n"] and again[0]["runs"] == gone["runs"]


@pytest.mark.ssh
@pytest.mark.parametrize("kill", ["host", "host-and-ssh"])
def test_ssh_kill_9_of_the_host_leaves_no_folder_on_the_board(ssh_env, tmp_path, kill):
    """kill -9 of hwnas (alone, or with its ssh client): the runner on the board notices its
    session is gone, stops and removes its temporary folder itself."""
    b = tmp_path / "bundle"
    relu_bundle(b, n=8, passes=6, min_time_s=0.2)
    host = tmp_path / "host.py"
    host.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from hwnas.profiling.hosts import DeviceConfig, connect
        os.setpgrp()
        cfg = DeviceConfig("board", {ssh_env.target!r}, python=sys.executable)
        connect(cfg).run_bundle(Path({str(b)!r}), ["--exit-with-parent"],
                                lambda line: print(line, flush=True))
    """))
    p = subprocess.Popen([sys.executable, str(host)], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, HWNAS_SSH_CONFIG=str(ssh_env.ssh_config)))
    for line in p.stdout:
        if '"type":"pass"' in line:
            break
    assert leftovers(ssh_env), "the bundle should be on the board while it runs"
    os.killpg(p.pid, signal.SIGKILL) if kill == "host-and-ssh" else os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 60
    while leftovers(ssh_env) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(ssh_env) == []
