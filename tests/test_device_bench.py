"""The on-device side: the timing protocol, the bundle runner (resume, kill -9, half-written
lines, incompatible results, failing models, missing numpy/onnxruntime), and that the
device package needs nothing but numpy, onnxruntime and the standard library."""

import ast
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.onboard import bench
from hwnas.onboard.bench import Protocol, summarize
from hwnas.onboard.runner import read_records
from hwnas.pieces import Piece
from hwnas.profiling.bundle import write_runner

DEVICE_DIR = Path(bench.__file__).resolve().parent


# ---- helpers ----------------------------------------------------------------------------------

PIECES = [
    Piece("stem", 32, 3, 8, 3, 2, act="relu6"),
    Piece("mb", 16, 8, 8, 3, 1, 24, 0, "relu6", True),
    Piece("mb", 16, 8, 16, 5, 2, 24, 8, "hswish", False),
    Piece("mb", 8, 16, 16, 3, 1, 48, 0, "relu", True),
    Piece("head", 8, 16, 32, act="relu6"),
    Piece("cls", 8, 32, 10),
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    from hwnas.export import export_piece

    d = tmp_path_factory.mktemp("onnx")
    for p in PIECES:
        export_piece(p, d / f"{p.key}.onnx")
    return d


def make_bundle(dest: Path, onnx_dir: Path, copies: int = 1, protocol: dict | None = None) -> list[str]:
    """A bundle of the test pieces (each ``copies`` times under different ids); its ids."""
    write_runner(dest)
    (dest / "models").mkdir(exist_ok=True)
    entries = []
    for c in range(copies):
        for p in PIECES:
            f = f"models/{p.key}-{c}.onnx"
            (dest / f).write_bytes((onnx_dir / f"{p.key}.onnx").read_bytes())
            entries.append({"id": f"{p.key}#{c}", "kind": "block", "file": f,
                            "input_shape": [1, p.cin, p.h, p.h]})
    random.Random(1).shuffle(entries)
    man = {"schema": 1, "kind": "hwnas-bundle", "entries": entries,
           "protocol": protocol or Protocol.quick().to_dict()}
    (dest / "manifest.json").write_text(json.dumps(man))
    return [e["id"] for e in entries]


def run_py(bundle: Path, *args, python=sys.executable, **kw):
    return subprocess.run([python, "run.py", *args], cwd=bundle, capture_output=True, text=True,
                          timeout=300, **kw)


def results_of(bundle: Path, name: str = "results.jsonl") -> list[dict]:
    return [r for r in read_records(str(bundle / name)) if r["type"] == "result"]


# ---- statistics and protocol --------------------------------------------------------------------

def test_summarize_matches_numpy():
    rng = random.Random(3)
    for n in (1, 2, 7, 50):
        xs = [rng.lognormvariate(0, 0.5) for _ in range(n)]
        s = summarize(xs)
        assert s["n"] == n
        assert s["min_ms"] == pytest.approx(min(xs), abs=1e-6)
        assert s["p10_ms"] == pytest.approx(np.percentile(xs, 10), abs=1e-6)
        assert s["median_ms"] == pytest.approx(np.median(xs), abs=1e-6)
        q75, q25 = np.percentile(xs, [75, 25])
        assert s["iqr_ms"] == pytest.approx(q75 - q25, abs=1e-6)
        assert s["min_ms"] <= s["p10_ms"] <= s["median_ms"]


def test_protocol_minimums_hold(onnx_dir):
    """After its passes a model has >= min_repeats samples and >= min_time_s of timed runs."""
    p = Protocol(warmup=2, min_repeats=7, min_time_s=0.06, passes=3, burst_warmup=1)
    m = bench.Model(str(onnx_dir / f"{PIECES[1].key}.onnx"), None, threads=1)
    m.warm(p.warmup)
    samples, timed = [], 0.0
    for _ in range(p.passes):
        s = m.burst(p)
        samples += s
        timed += sum(s) * m.last_loops / 1000
    assert len(samples) >= p.min_repeats
    assert timed >= p.min_time_s
    st = bench.measure(str(onnx_dir / f"{PIECES[0].key}.onnx"), [1, 3, 32, 32], p)
    assert st["n"] >= p.min_repeats and st["min_ms"] > 0


def test_protocol_validation():
    with pytest.raises(ValueError):
        Protocol(passes=0).validate()
    with pytest.raises(ValueError):
        Protocol(min_time_s=-1).validate()
    q = Protocol.quick(threads=2)
    assert q.threads == 2 and q.passes < Protocol().passes
    assert Protocol.from_dict({**q.to_dict(), "unknown": 1}) == q


def test_provenance_fields():
    pv = bench.provenance(threads=1)
    for k in ("cpu_model", "cores", "machine", "os", "kernel", "python", "numpy", "onnxruntime",
              "governor", "freq_mhz", "date", "threads"):
        assert k in pv
    assert pv["onnxruntime"] and pv["machine"] and pv["cores"] >= 1


# ---- the runner ---------------------------------------------------------------------------------

def test_device_package_imports_only_numpy_onnxruntime_stdlib():
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "__future__"}
    for f in DEVICE_DIR.glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside the package
                    continue
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                ok = top in allowed or (f.name == "run.py" and m in ("hwnas_device.runner", "hwnas.onboard.runner"))
                assert ok, f"{f.name} imports {m}"


def test_check_from_runner_only_dir(tmp_path):
    write_runner(tmp_path)
    r = run_py(tmp_path, "--check")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1].removeprefix("INFO "))
    assert info["onnxruntime"] and info["machine"] and "cpu_model" in info


def test_missing_numpy_onnxruntime_one_line(tmp_path, onnx_dir):
    make_bundle(tmp_path, onnx_dir)
    for args in (["--check"], []):
        # -S: no site-packages, so neither numpy nor onnxruntime can be imported
        r = subprocess.run([sys.executable, "-S", "run.py", *args], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 3
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "pip install onnxruntime numpy" in lines[0], r.stderr
    assert not (tmp_path / "results.jsonl").exists()


def test_run_appends_each_entry_once_and_resumes(tmp_path, onnx_dir):
    ids = make_bundle(tmp_path, onnx_dir)
    r = run_py(tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    printed = [json.loads(x[7:]) for x in out if x.startswith("RESULT ")]
    assert sorted(p["id"] for p in printed) == sorted(ids)
    assert any(x.startswith("PROGRESS ") for x in out)
    last = [x for x in out if x.startswith("PROGRESS ")][-1].split()
    assert float(last[1]) == len(ids) and int(last[2]) == len(ids)
    res = results_of(tmp_path)
    assert sorted(x["id"] for x in res) == sorted(ids)
    for x in res:
        assert x["n"] >= Protocol.quick().min_repeats and 0 < x["min_ms"] <= x["median_ms"]
    provs = [x for x in read_records(str(tmp_path / "results.jsonl")) if x["type"] == "provenance"]
    assert provs[0]["threads"] == 1 and provs[0]["protocol"]["passes"] == Protocol.quick().passes
    # again: nothing left to measure
    before = (tmp_path / "results.jsonl").read_text().count('"type":"result"')
    r2 = run_py(tmp_path)
    assert r2.returncode == 0 and "RESULT " not in r2.stdout
    assert (tmp_path / "results.jsonl").read_text().count('"type":"result"') == before


def test_half_written_last_line_is_dropped(tmp_path, onnx_dir):
    ids = make_bundle(tmp_path, onnx_dir)
    good = {"type": "result", "id": ids[0], "kind": "block", "min_ms": 1.0, "p10_ms": 1.0,
            "median_ms": 1.0, "iqr_ms": 0.0, "n": 3}
    pv = dict(bench.provenance(1), type="provenance", protocol=Protocol.quick().to_dict())
    (tmp_path / "results.jsonl").write_text(json.dumps(pv) + "\n" + json.dumps(good) + "\n"
                                            + '{"type": "result", "id": "' + ids[1] + '", "min_')
    r = run_py(tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "results.jsonl").read_text()
    assert all(json.loads(line) for line in text.splitlines())  # every line whole
    res = results_of(tmp_path)
    assert sorted(x["id"] for x in res) == sorted(ids)  # each exactly once
    assert [x for x in res if x["id"] == ids[0]][0]["min_ms"] == 1.0  # finished one kept


def test_kill_9_and_resume_measures_each_entry_exactly_once(tmp_path, onnx_dir):
    proto = Protocol(warmup=1, min_repeats=3, min_time_s=0.12, passes=3, burst_warmup=0, chunk=4)
    ids = make_bundle(tmp_path, onnx_dir, copies=3, protocol=proto.to_dict())
    res_file = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "run.py"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once some, not all, results are written
        n = res_file.read_text().count('"type":"result"') if res_file.exists() else 0
        if n >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_killed = len(results_of(tmp_path))
    assert 0 < n_killed < len(ids), "the kill should land mid-run"
    r = run_py(tmp_path)
    assert r.returncode == 0, r.stderr
    res = results_of(tmp_path)
    assert sorted(x["id"] for x in res) == sorted(ids)  # every entry exactly once
    passes = {}
    for x in read_records(str(res_file)):
        if x["type"] == "pass":
            passes.setdefault(x["id"], []).append(x["pass"])
    # pass records resume where they stopped: each entry has passes 1..P once, except for
    # the one burst in flight at the kill, whose record was never written
    for i in ids:
        assert sorted(passes[i]) == list(range(1, proto.passes + 1)), (i, passes[i])


def test_incompatible_results_file_is_refused_untouched(tmp_path, onnx_dir):
    make_bundle(tmp_path, onnx_dir)
    pv = dict(bench.provenance(1), type="provenance", protocol=Protocol.quick().to_dict())
    pv["cpu_model"] = "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)"
    pv["machine"] = "aarch64"
    text = json.dumps(pv) + "\n"
    (tmp_path / "results.jsonl").write_text(text)
    r = run_py(tmp_path)
    assert r.returncode == 5
    assert len(r.stderr.strip().splitlines()) == 1 and "cpu_model" in r.stderr
    assert (tmp_path / "results.jsonl").read_text() == text
    # another protocol than the file's is refused too
    pv = dict(bench.provenance(1), type="provenance", protocol=Protocol.quick().to_dict())
    (tmp_path / "other.jsonl").write_text(json.dumps(pv) + "\n")
    r = run_py(tmp_path, "--results", "other.jsonl", "--passes", "5")
    assert r.returncode == 5 and "passes" in r.stderr


def test_failing_model_keeps_the_others(tmp_path, onnx_dir):
    ids = make_bundle(tmp_path, onnx_dir)
    man = json.loads((tmp_path / "manifest.json").read_text())
    bad = man["entries"][2]
    (tmp_path / bad["file"]).write_bytes(b"not an onnx model")
    r = run_py(tmp_path)
    assert r.returncode == 6
    assert len(r.stderr.strip().splitlines()) == 1 and bad["id"] in r.stderr
    assert sorted(x["id"] for x in results_of(tmp_path)) == sorted(i for i in ids if i != bad["id"])


def test_unwritable_results_one_line(tmp_path, onnx_dir):
    """A results file that cannot grow (like a full disk): exit 4, one line, nothing lost."""
    import resource

    make_bundle(tmp_path, onnx_dir)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    r = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, preexec_fn=limit)
    assert r.returncode == 4, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "results.jsonl" in lines[0]
    kept = results_of(tmp_path)
    r = run_py(tmp_path)  # space again: it resumes
    assert r.returncode == 0
    res = results_of(tmp_path)
    assert len(res) == len({x["id"] for x in res}) == len(PIECES)
    assert {x["id"] for x in kept} <= {x["id"] for x in res}


def test_exit_with_parent(tmp_path, onnx_dir):
    """With --exit-with-parent the runner stops soon after the process that started it dies
    (a killed host must not leave a runner measuring on its own)."""
    proto = Protocol(warmup=1, min_repeats=3, min_time_s=0.5, passes=3, burst_warmup=0, chunk=2)
    make_bundle(tmp_path, onnx_dir, copies=3, protocol=proto.to_dict())
    sh = subprocess.Popen(["sh", "-c", f"{sys.executable} run.py --exit-with-parent >/dev/null "
                           "2>&1 & echo $! > runner.pid; wait"], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "results.jsonl").is_file():
        time.sleep(0.05)
    pid = int((tmp_path / "runner.pid").read_text())
    os.kill(sh.pid, signal.SIGKILL)
    sh.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            break
        if state == "Z":  # exited; not reaped yet (PID 1 of a container may never do it)
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the runner outlived its parent")
    assert len(results_of(tmp_path)) < len(PIECES) * 3


# ---- throttling and load ------------------------------------------------------------------------

def sys_fixture(root: Path, freqs_khz=(1500000, 1500000), temps=((52612, "cpu-thermal"),),
                load="0.42 0.30 0.20 1/123 456") -> Path:
    """A fake / with cpufreq, thermal zones and /proc/loadavg, as on a Raspberry Pi 4."""
    for i, f in enumerate(freqs_khz):
        d = root / f"sys/devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True, exist_ok=True)
        (d / "scaling_cur_freq").write_text(f"{f}\n")
    for i, (t, typ) in enumerate(temps):
        d = root / f"sys/class/thermal/thermal_zone{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "temp").write_text(f"{t}\n")
        if typ:
            (d / "type").write_text(typ + "\n")
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "loadavg").write_text(load + "\n")
    return root


def test_conditions_read_fixture_files(tmp_path):
    from hwnas.onboard import conditions as c

    root = sys_fixture(tmp_path, freqs_khz=[1500000] * 2 + [600000] * 9,
                       temps=[(52612, "cpu-thermal"), ("garbage", "gpu"), (-1500, None)])
    freqs = c.read_freqs(str(root))
    assert list(freqs)[:3] == ["cpu0", "cpu1", "cpu2"] and list(freqs)[-1] == "cpu10"  # numeric order
    assert freqs["cpu0"] == 1500 and freqs["cpu10"] == 600
    assert c.read_temps(str(root)) == {"cpu-thermal": 52.6, "thermal_zone2": -1.5}
    assert c.read_load(str(root)) == 0.42
    empty = tmp_path / "vm"  # a VM: nothing readable, nothing reported
    empty.mkdir()
    assert c.read_freqs(str(empty)) == {} and c.read_temps(str(empty)) == {}
    assert c.read_load(str(empty)) is None
    snap = c.snapshot(str(empty), vcgencmd=[])
    assert set(snap) == {"time"}


def test_get_throttled_flags():
    from hwnas.onboard import conditions as c

    t = c.parse_throttled("throttled=0x50005\n")
    assert t == {"raw": "0x50005", "now": ["under-voltage", "throttled"],
                 "since_boot": ["under-voltage", "throttled"]}
    t = c.parse_throttled("throttled=0x80000")
    assert t["now"] == [] and t["since_boot"] == ["soft temperature limit"]
    t = c.parse_throttled("throttled=0xa")
    assert t["now"] == ["frequency capped", "soft temperature limit"] and t["since_boot"] == []
    assert c.parse_throttled("throttled=0x0") == {"raw": "0x0", "now": [], "since_boot": []}
    assert c.parse_throttled("error=1") is None and c.parse_throttled("") is None
    # the command: run and parsed; a missing one is simply not readable
    assert c.read_throttled(["echo", "throttled=0x50005"])["now"] == ["under-voltage", "throttled"]
    assert c.read_throttled(["no-such-vcgencmd-here", "get_throttled"]) is None
    assert c.read_throttled(["false"]) is None


def test_chunk_issues_name_throttling_and_frequency_drops():
    from hwnas.onboard import conditions as c

    ok = {"freq_mhz": {"cpu0": 1500, "cpu1": 1500}, "throttled": c.parse_throttled("throttled=0x0")}
    assert c.chunk_issues(ok, ok) == []
    assert c.chunk_issues(ok, {"freq_mhz": {"cpu0": 1450, "cpu1": 1440}}) == []  # -3 %: fine
    drop = c.chunk_issues(ok, {"freq_mhz": {"cpu0": 1200, "cpu1": 1200}})
    assert len(drop) == 1 and "1500 -> 1200 MHz" in drop[0] and "-20%" in drop[0]
    now = c.chunk_issues(ok, {"throttled": c.parse_throttled("throttled=0x50005")})
    assert now == ["throttled now: under-voltage, throttled"]
    # throttled for a moment between the two readings: only the sticky bit shows it
    during = c.chunk_issues(ok, {"throttled": c.parse_throttled("throttled=0x80000")})
    assert during == ["during the chunk: soft temperature limit"]
    old = {"throttled": c.parse_throttled("throttled=0x80000")}  # since boot, before the chunk
    assert c.chunk_issues(old, old) == []
    assert c.load_issue(2.5, 2) and "2.50 on 2 cores" in c.load_issue(2.5, 2)
    assert c.load_issue(1.9, 2) is None and c.load_issue(None, 2) is None


def test_runner_records_conditions_per_chunk(tmp_path, onnx_dir):
    """Each chunk gets a start and an end record with the clock, temperature, throttling
    and load; a throttled board gives a warning line, and the host one line naming it."""
    from hwnas.profiling.profile import conditions_warning

    proto = Protocol.quick(chunk=4)
    make_bundle(tmp_path, onnx_dir, protocol=proto.to_dict())
    root = sys_fixture(tmp_path / "root")
    r = run_py(tmp_path, "--sys-root", str(root), "--vcgencmd", "echo throttled=0x50005")
    assert r.returncode == 0, r.stderr
    recs = read_records(str(tmp_path / "results.jsonl"))
    chunks = [x for x in recs if x["type"] == "chunk"]
    n_chunks = -(-len(PIECES) // 4)
    assert [(x["chunk"], x["at"]) for x in chunks] == [
        (k, at) for k in range(1, n_chunks + 1) for at in ("start", "end")]
    assert sum(x["entries"] for x in chunks if x["at"] == "start") == len(PIECES)
    for x in chunks:
        cond = x["conditions"]
        assert cond["freq_mhz"] == {"cpu0": 1500, "cpu1": 1500}
        assert cond["temp_c"] == {"cpu-thermal": 52.6} and cond["load1"] == 0.42
        assert cond["throttled"]["raw"] == "0x50005"
    assert all(x["issues"] == ["throttled now: under-voltage, throttled"]
               for x in chunks if x["at"] == "end")
    assert r.stdout.count("warning: chunk") == n_chunks  # printed for a person at the board
    assert "RECORD " + json.dumps(chunks[0], separators=(",", ":")) in r.stdout  # for the host
    w = conditions_warning(recs, "pi4")
    assert w and "\n" not in w and f"{n_chunks} of {n_chunks} chunk" in w
    assert "under-voltage" in w and "pi4" in w
    # a quiet board: records, no issues, no warning
    (tmp_path / "results.jsonl").unlink()
    r = run_py(tmp_path, "--sys-root", str(root), "--vcgencmd", "echo throttled=0x0")
    assert r.returncode == 0 and "warning" not in r.stdout
    assert conditions_warning(read_records(str(tmp_path / "results.jsonl")), "pi4") is None
    # the clock fell during a chunk (a killed run has only its start record: judged alone)
    start = {"type": "chunk", "chunk": 1, "at": "start", "conditions": {"freq_mhz": {"cpu0": 1500}}}
    end = {"type": "chunk", "chunk": 1, "at": "end", "conditions": {"freq_mhz": {"cpu0": 1000}}}
    w = conditions_warning([start, end], "pi4")
    assert "1500 -> 1000 MHz" in w and "1 of 1 chunk" in w
    assert conditions_warning([start], "pi4") is None
