"""A bundle hwnas builds runs on a Raspberry Pi's userland: Debian bookworm arm64, its own
python3, and a venv holding only the aarch64 wheels of onnxruntime and numpy -- emulated
with qemu-user (tools/aarch64_root.sh), as a Cortex-A72 (a Pi 4's CPU). The bundle is run
with the README's own commands, stopped part-way (kill -9 of the emulated runner), run
again, and its results imported into a table named for what it is.

Timings measured here are emulated: nothing in this test looks at their values.
"""

import json
import os
import re
import signal
import subprocess
import warnings
from pathlib import Path

import pytest
from conftest import ROOT, tiny_space

from hwnas.profiling.lut import LatencyTable

pytestmark = [pytest.mark.aarch64, pytest.mark.slow]

SCRIPT = ROOT / "tools" / "aarch64_root.sh"
CACHE = Path(os.environ.get("HWNAS_AARCH64_CACHE", "/var/cache/hwnas-aarch64"))
DEVICE = "aarch64-qemu-emulated"  # the table says what it is: not a Raspberry Pi
# What the README's Raspberry Pi section tells a Pi user to type (checked below that it does).
PI_SETUP = "python3 -m venv ~/venv && ~/venv/bin/pip install onnxruntime numpy"
PI_RUN = ". ~/venv/bin/activate && python3 run.py"

SPACE = tiny_space("tiny")


def _skip(reason: str):
    # A warning shows in pytest's summary even without -rs: the reason is printed.
    warnings.warn(f"aarch64 test skipped: {reason}", stacklevel=2)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def aarch64_root():
    """The emulated root, prepared (or found cached) by tools/aarch64_root.sh."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _skip("needs root (debootstrap, chroot, mount)")
    r = subprocess.run(["bash", str(SCRIPT), "prepare"], capture_output=True, text=True,
                       timeout=1800)
    if r.returncode == 3:  # this machine lacks a package, rights or the network
        _skip((r.stderr.strip().splitlines() or ["prepare failed"])[-1])
    assert r.returncode == 0, f"tools/aarch64_root.sh prepare failed:\n{r.stderr}"
    r = subprocess.run(["bash", str(SCRIPT), "check"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return (CACHE / "root").resolve()


def run_in_root(bundle: Path, command: str, **kw) -> subprocess.Popen:
    """``cd ~/bundle && sh -c COMMAND`` in the root, its own session (so it can be signalled)."""
    return subprocess.Popen(["bash", str(SCRIPT), "run", str(bundle), "--", "/bin/sh", "-c", command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def session_pids(sid: int) -> list[int]:
    """The live (not zombie) processes of session ``sid``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.getsid(int(d.name)) == sid and state != "Z":
                    out.append(int(d.name))
            except (OSError, IndexError):
                pass
    return out


def results(bundle: Path) -> list[dict]:
    return [json.loads(x) for x in (bundle / "results.jsonl").read_text().splitlines() if x.strip()]


def test_readme_states_what_the_pi_needs():
    """The commands this test runs in the root are the ones the README gives a Pi user."""
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- section:pi -->", 1)[1].split("\n## ", 1)[0]
    assert PI_SETUP in section and PI_RUN in section
    assert "bookworm" in section and "3.11" in section and "emulat" in section


def test_bundle_runs_on_emulated_pi_resumes_and_imports(aarch64_root, cli, home, tmp_path):
    (home / "search_spaces").mkdir()
    (home / "search_spaces" / "tiny.yaml").write_text(SPACE)
    bundle = tmp_path / "pi-bundle"
    # small chunks: when the run is stopped, some entries are finished, some half-measured
    # (passes recorded) and some not started
    cli("profile", "--device", DEVICE, "--space", "tiny", "-r", "32", "--networks", "2",
        "--quick", "--chunk", "4", "--bundle-only", bundle, check=0)
    entries = json.loads((bundle / "manifest.json").read_text())["entries"]
    ids = {e["id"] for e in entries}
    assert len(ids) >= 10 and sum(e["kind"] == "network" for e in entries) == 2

    # the bundle's own check, on the emulated board
    p = run_in_root(bundle, ". ~/venv/bin/activate && python3 run.py --check")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    info = json.loads(next(x for x in out.splitlines() if x.startswith("INFO "))[5:])
    assert info["machine"] == "aarch64", info
    assert info["python"].startswith("3.11."), info
    assert "emulation" in info["cpu_model"], info  # never passes for a real Pi
    # int8 on ARM: the emulated Pi 4 (Cortex-A72: NEON, no dot product) is read from its
    # auxiliary vector; its U8S8 kernels are exact, so hwnas quantizes it full-range
    assert info["isa"]["machine"] == "aarch64" and info["isa"]["int8"] == "arm-neon", info["isa"]
    q = info["int8_qdq"]
    assert q["runs"] and q["format"] == "u8s8" and not q["saturates"], q
    assert all(v <= 1 for v in q["error_steps"].values()), q

    # first run, stopped by kill -9 of the emulated runner once two entries are finished
    p = run_in_root(bundle, PI_RUN)
    finished, killed = 0, []
    for line in p.stdout:
        finished += line.startswith("RESULT ")
        if finished >= 2:
            for pid in session_pids(p.pid):  # the runner: the session's python inside the root
                try:
                    if (Path(f"/proc/{pid}/root").resolve() == aarch64_root
                            and Path(f"/proc/{pid}/comm").read_text().startswith("python")):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                except OSError:
                    pass
            break
    assert len(killed) == 1, "no runner (python) of the run found inside the root"
    p.stdout.read()
    p.wait(timeout=120)
    err = p.stderr.read()
    assert p.returncode != 0, err
    assert session_pids(p.pid) == []  # nothing of the run is left behind, emulated or not
    assert str(aarch64_root) not in Path("/proc/mounts").read_text()  # no mount leaked
    done = [r["id"] for r in results(bundle) if r["type"] == "result"]
    assert 2 <= len(done) < len(ids)

    # again: it resumes, and every entry ends with exactly one result
    p = run_in_root(bundle, PI_RUN)
    out, err = p.communicate(timeout=1200)
    assert p.returncode == 0, err
    m = re.search(r"(\d+) entries, (\d+) already measured", out)
    assert m and int(m[1]) == len(ids) and int(m[2]) >= len(done), out
    recs = results(bundle)
    done = [r["id"] for r in recs if r["type"] == "result"]
    assert sorted(done) == sorted(ids)
    provs = [r for r in recs if r["type"] == "provenance"]
    assert len(provs) == 2 and all(r["machine"] == "aarch64" for r in provs)

    # back on the host: into a table named for what it is
    r = cli("lut", "import", bundle, "--device", DEVICE, check=0)
    nets = {e["id"] for e in entries if e["kind"] == "network"}
    assert f"imported {len(ids) - len(nets)} blocks and {len(nets)} networks" in r.stdout
    t = LatencyTable.load(DEVICE)
    assert t.provenance["machine"] == "aarch64"
    assert "emulation" in t.provenance["cpu_model"]
    assert set(t.blocks) == ids - nets and set(t.networks) == nets
    for s in [*t.blocks.values(), *t.networks.values()]:
        assert s.n >= 3 and s.median_ms > 0  # measured, with the quick protocol's samples
