"""`hwnas profile` end to end through a real sshd, with a connection lost mid-run.

The device's "python3" is a wrapper script that logs how it was started (under sshd? in
which folder? with what arguments? how many results came with the bundle?) and, on the
first profile run, cuts the runner's output after its second result with exit 7 — what a
dropped connection or a crashed board looks like from the host. The run ends with one
line; the rerun resumes from the results that already arrived, and the finished table
holds every block of the space with the device's provenance.
"""

import json
import sys

import pytest
from conftest import tiny_space

from hwnas.onboard.runner import read_records
from hwnas.profiling.lut import LatencyTable
from hwnas.space import load_space

TINY = tiny_space("tinyssh")

WRAPPER = """\
#!/bin/sh
# the device's python3: log how it was started, then run the real one
n=$(cat results.jsonl 2>/dev/null | wc -l)
printf '%s|%s|%s|%s\\n' "${{SSH_CONNECTION:-none}}" "$PWD" "$n" "$*" >> {log}
case "$*" in *--check*) exec {py} "$@";; esac
if [ -f {brk} ]; then
    rm -f {brk}
    {py} "$@" | awk '{{ print; fflush() }} /^RESULT /{{ if (++n == 2) exit }}'
    exit 7
fi
exec {py} "$@"
"""


@pytest.mark.slow
@pytest.mark.ssh
def test_profile_over_ssh_survives_a_lost_connection(cli, home, tmp_path, ssh_server):
    space_file = tmp_path / "tinyssh.yaml"
    space_file.write_text(TINY)
    space = load_space(space_file)
    keys = {p.key for p in space.pieces(32)}
    log, brk = tmp_path / "invocations.log", tmp_path / "BREAK"
    wrapper = tmp_path / "device-python3"
    wrapper.write_text(WRAPPER.format(log=log, brk=brk, py=sys.executable))
    wrapper.chmod(0o755)
    brk.write_text("")
    env = {"HWNAS_HOME": str(home), **ssh_server.env()}
    cli("device", "add", "pi", "--target", ssh_server.target, "--python", str(wrapper),
        "--threads", "2", env=env, check=0)
    info = cli("device", "check", "pi", env=env, check=0).stdout
    profile = ("profile", "--device", "pi", "--space", str(space_file), "--resolution", "32",
               "--networks", "2", "--quick")

    # 1. the output stops after two results: exit 2 with one error line (after the progress
    #    bars), both results kept on the host
    r = cli(*profile, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("hwnas: error: device 'pi'") and "exit 7" in last, r.stderr
    results = next(home.glob("runs/profile/pi/*/results.jsonl"))
    kept = [r["id"] for r in read_records(str(results)) if r["type"] == "result"]
    assert len(kept) == 2
    lines_after_break = len(results.read_text().splitlines())
    assert not list(ssh_server.remote_tmp.glob("hwnas.*"))

    # 2. the same command again resumes: the kept results travel with the bundle
    r = cli(*profile, env=env)
    assert r.returncode == 0, r.stderr
    t = LatencyTable.load("pi")
    assert set(t.blocks) == keys
    assert len(t.networks) == 2
    ids = [r["id"] for r in read_records(str(results)) if r["type"] == "result"]
    assert len(ids) == len(set(ids)) == len(keys) + 2 and set(kept) <= set(ids)
    assert not list(ssh_server.remote_tmp.glob("hwnas.*"))

    # every run happened under sshd, in a temporary folder of the server's TMPDIR
    runs = [line.split("|") for line in log.read_text().splitlines()]
    assert runs and all(conn != "none" for conn, *_ in runs)
    assert all(cwd.startswith(f"{ssh_server.remote_tmp}/hwnas.") for _, cwd, _, _ in runs)
    measured = [(int(n), args) for _, _, n, args in runs if "--check" not in args]
    assert len(measured) == 2 and all("--threads 2" in a for _, a in measured)
    assert measured[0][0] == 0 and measured[1][0] == lines_after_break

    # the table's provenance is the device's: what `device check` reported, its threads
    doc = json.loads((home / "latency_tables" / "pi" / "blocks.json").read_text())
    pv = doc["provenance"]
    assert pv["threads"] == 2
    shown = dict(line.split(None, 1) for line in info.splitlines())
    for k in ("python", "numpy", "onnxruntime"):
        assert shown[k] == f"{pv[k]}  ok"
    assert shown["machine"] == pv["machine"]
    assert shown["cpu"].startswith(str(pv["cpu_model"]))
