"""The host side of profiling: hwnas profile / measure / lut show / lut import on a tiny
space, the LatencyTable API, resuming after kill -9, refusing other machines' results, and
a profile over a real SSH server."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.onboard.runner import read_records
from hwnas.pieces import arch_pieces
from hwnas.profiling.lut import LatencyTable, Stats

QUICK = ("--quick",)


@pytest.fixture
def dev(ref_device):
    return ref_device


def bundle_dir(home: Path, device="ref", space="tiny", res=32) -> Path:
    return home / "runs" / "profile" / device / f"{space}-r{res}"


def result_ids(path: Path) -> list[str]:
    return [r["id"] for r in read_records(str(path)) if r["type"] == "result"]


# ---- profile --------------------------------------------------------------------------------------

def test_profile_writes_table_and_skips_what_it_has(cli, home, tiny_in_home, dev):
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "3", *QUICK,
            check=0)
    assert "added" in r.stdout
    # issue 24.4: it ends with the natural next command
    assert r.stdout.strip().splitlines()[-1] == (
        f"next: hwnas predictor eval --device {dev} (how well the table predicts), then "
        f"hwnas search --space tiny --device {dev} -r 32 --name RUN")
    t = LatencyTable.load(dev)
    keys = {p.key for p in tiny_in_home.pieces(32)}
    assert set(t.blocks) == keys
    assert len(t.networks) == 3 and set(t.network_sources.values()) == {"profile"}
    assert t.coverage(tiny_in_home, 32) == (len(keys), len(keys))
    for a in t.networks:  # every network's pieces are in the LUT: the sum is defined
        assert t.lut_sum(Arch.from_string(a)) > 0
    doc = json.loads((home / "latency_tables" / dev / "blocks.json").read_text())
    assert doc["schema"] == 1 and doc["kind"] == "hwnas-lut" and doc["statistic"] == t.statistic
    pv = doc["provenance"]
    for k in ("cpu_model", "cores", "machine", "os", "kernel", "python", "numpy", "onnxruntime",
              "threads", "governor", "freq_mhz", "date", "protocol"):
        assert k in pv, k
    assert pv["threads"] == 1 and pv["protocol"]["passes"] == 3
    nets = json.loads((home / "latency_tables" / dev / "networks.json").read_text())
    for k, v in nets["entries"].items():
        assert Arch.from_string(k).to_string() == k
        assert {"min_ms", "p10_ms", "median_ms", "iqr_ms", "n", "source"} <= set(v)
    # finished: the bundle's models are gone, the results stay
    b = bundle_dir(home)
    assert not (b / "models").exists() and (b / "results.jsonl").is_file()
    before = (b / "results.jsonl").read_bytes()
    # the same command again measures nothing
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "3", *QUICK,
            check=0)
    assert "added 0 blocks and 0 networks" in r.stdout
    assert (b / "results.jsonl").read_bytes() == before
    # more networks: only the new ones are measured
    cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "5", *QUICK, check=0)
    t2 = LatencyTable.load(dev)
    assert len(t2.networks) == 5 and t2.blocks == t.blocks
    ids = result_ids(b / "results.jsonl")
    assert len(ids) == len(set(ids)) == len(keys) + 5

    r = cli("lut", "show", dev, check=0)
    assert f"coverage of tiny at 32: {len(keys)}/{len(keys)} blocks (100%)" in r.stdout
    assert "onnxruntime" in r.stdout and "statistic: " in r.stdout
    r = cli("lut", "show", dev, "--space", "tiny", "--entries", "--networks", check=0)
    assert all(k in r.stdout for k in keys)


def test_profile_classes_measures_that_classifier(cli, home, tiny_in_home, dev):
    """--classes N profiles the space with N classes (tiny has 10): its classifier block and
    N-class networks join the table, beside what was there."""
    cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "3", *QUICK,
        check=0)
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "2",
            "--classes", "1000", *QUICK, check=0)
    assert "added 1 blocks and 2 networks" in r.stdout
    assert "--data DATA --name RUN" in r.stdout.strip().splitlines()[-1]
    t = LatencyTable.load(dev)
    cls = sorted(k for k in t.blocks if k.startswith("cls_"))
    assert len(cls) == 2 and cls[0].endswith("_o10") and cls[1].endswith("_o1000")
    assert sorted(Arch.from_string(a).classes for a in t.networks) == [10] * 3 + [1000] * 2
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--classes", "0", check=2)
    assert_one_line_error(r, "--classes: must be a positive integer, got 0")


def test_search_warns_when_the_table_lacks_its_classifier(home):
    """A table of 1000-class networks extrapolates a 10-class classifier (30-53 % on small
    networks at 32 px, measured): the search's estimators say so in one line that names the
    fix; a table with that classifier gives no warning."""
    from conftest import put_space, synthetic_table

    from hwnas.context import Device
    from hwnas.search.objective import classifier_warning

    put_space(home, "tiny-search", "tiny-search")
    wide = put_space(home, "tiny-search", "tiny-1000")
    wide.write_text(wide.read_text().replace("classes: 10", "classes: 1000"))
    synthetic_table("tiny-1000", "syn1000")
    synthetic_table("tiny-search", "syn10")
    w = classifier_warning(Device.load("syn1000"), "tiny-search", 32, 10)
    assert w and "no classifier for 10 classes" in w and len(w.splitlines()) == 1
    assert "hwnas profile --device syn1000 --space tiny-search -r 32 --classes 10" in w
    assert classifier_warning(Device.load("syn1000"), "tiny-search", 32, 1000) is None
    assert classifier_warning(Device.load("syn10"), "tiny-search", 32, 10) is None
    # a space the table cannot predict (no relu stem measured): no warning, and no error here
    # (the search's predictions name what to measure)
    assert classifier_warning(Device.load("syn10"), "nas-bench-macro", 32, 10) is None


def test_deleted_table_is_measured_again(cli, home, tiny_in_home, dev):
    args = ("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "1", *QUICK)
    cli(*args, check=0)
    first = LatencyTable.load(dev)
    for n in ("blocks.json", "networks.json"):
        (home / "latency_tables" / dev / n).unlink()
    r = cli(*args, check=0)
    assert f"added {len(tiny_in_home.pieces(32))} blocks and 1 networks" in r.stdout
    b = bundle_dir(home)
    assert len(list(b.glob("results.jsonl.old-*"))) == 1  # the old results, not resumed from
    ids = result_ids(b / "results.jsonl")
    assert len(ids) == len(set(ids)) == len(tiny_in_home.pieces(32)) + 1
    assert LatencyTable.load(dev).provenance["date"] != first.provenance["date"] or \
        LatencyTable.load(dev).blocks != first.blocks


def test_profile_kill_9_and_resume(cli, home, tiny_in_home, dev):
    """A profiling process killed mid-run and started again ends with every entry measured
    exactly once (and the table complete)."""
    args = ["profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "4",
            "--warmup", "1", "--min-repeats", "3", "--min-time", "0.3", "--passes", "3",
            "--burst-warmup", "0", "--chunk", "3"]
    env = dict(os.environ, HWNAS_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "hwnas", *args], cwd=home, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = bundle_dir(home) / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if res.is_file() and len(result_ids(res)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = len(result_ids(res))
    total = len(tiny_in_home.pieces(32)) + 4
    assert 0 < killed < total
    assert not LatencyTable.exists(dev)  # nothing merged yet: merging happens at the end
    r = run_cli(*args, env={"HWNAS_HOME": str(home)}, cwd=home, check=0)
    assert "added" in r.stdout
    ids = result_ids(res)
    assert len(ids) == len(set(ids)) == total  # each exactly once
    t = LatencyTable.load(dev)
    assert len(t.blocks) == len(tiny_in_home.pieces(32)) and len(t.networks) == 4


def test_bundle_only_run_by_hand_and_import(cli, home, tiny_in_home, tmp_path):
    out = tmp_path / "pi-bundle"
    r = cli("profile", "--device", "pi", "--space", "tiny", "-r", "32", "--networks", "2",
            "--bundle-only", out, *QUICK, check=0)
    assert "lut import" in r.stdout and "python3 run.py" in r.stdout
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["entries"]) == len(tiny_in_home.pieces(32)) + 2
    assert all((out / e["file"]).is_file() for e in man["entries"])
    assert not LatencyTable.exists("pi")
    # "on the board": a copy with only the bundle, plain python
    board = tmp_path / "board"
    subprocess.run(["cp", "-r", str(out), str(board)], check=True)
    rr = subprocess.run([sys.executable, "run.py"], cwd=board, capture_output=True, text=True,
                        timeout=300)
    assert rr.returncode == 0, rr.stderr
    r = cli("lut", "import", board, "--device", "pi", check=0)  # the folder, or its results.jsonl
    assert f"imported {len(tiny_in_home.pieces(32))} blocks and 2 networks" in r.stdout
    t = LatencyTable.load("pi")
    assert t.coverage(tiny_in_home, 32)[0] == len(tiny_in_home.pieces(32))
    files = {n: (home / "latency_tables" / "pi" / n).read_bytes() for n in ("blocks.json", "networks.json")}

    # results of another machine: refused, one line, table untouched
    lines = (board / "results.jsonl").read_text().splitlines()
    alien = []
    for line in lines:
        rec = json.loads(line)
        if rec["type"] == "provenance":
            rec.update(cpu_model="Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)", machine="aarch64")
        alien.append(json.dumps(rec))
    (tmp_path / "alien.jsonl").write_text("\n".join(alien) + "\n")
    r = cli("lut", "import", tmp_path / "alien.jsonl", "--device", "pi")
    assert_one_line_error(r, "cpu_model", "--replace")
    for n, data in files.items():
        assert (home / "latency_tables" / "pi" / n).read_bytes() == data
    # another onnxruntime version: refused as well
    ort = [json.loads(x) for x in lines]
    for rec in ort:
        if rec["type"] == "provenance":
            rec["onnxruntime"] = "1.0.0"
    (tmp_path / "ort.jsonl").write_text("".join(json.dumps(x) + "\n" for x in ort))
    assert_one_line_error(cli("lut", "import", tmp_path / "ort.jsonl", "--device", "pi"),
                          "onnxruntime")
    # --replace: a new table, the old one backed up
    cli("lut", "import", tmp_path / "alien.jsonl", "--device", "pi", "--replace", check=0)
    assert LatencyTable.load("pi").provenance["machine"] == "aarch64"
    backups = sorted(p.name for p in (home / "latency_tables" / "pi").glob("*.bak-*"))
    assert len(backups) == 2


def test_bundle_only_archive(cli, home, tiny_in_home, tmp_path):
    import tarfile

    r = cli("profile", "--device", "pi", "--space", "tiny", "-r", "32", "--networks", "1",
            "--bundle-only", tmp_path / "b.tar.gz", *QUICK, check=0)
    assert "tar xzf b.tar.gz" in r.stdout
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    b = tmp_path / "x" / "b"
    rr = subprocess.run([sys.executable, "run.py"], cwd=b, capture_output=True, text=True, timeout=300)
    assert rr.returncode == 0, rr.stderr
    assert len(result_ids(b / "results.jsonl")) == len(tiny_in_home.pieces(32)) + 1
    assert not (tmp_path / ".b.tar.gz.d").exists()


def test_profile_refuses_table_of_other_onnxruntime(cli, home, tiny_in_home, dev):
    cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "1", *QUICK, check=0)
    p = home / "latency_tables" / dev / "blocks.json"
    original = p.read_bytes()
    doc = json.loads(original)
    doc["provenance"]["onnxruntime"] = "1.0.0"
    p.write_text(json.dumps(doc))
    before = p.read_bytes(), (p.parent / "networks.json").read_bytes()
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "3", *QUICK)
    assert_one_line_error(r, "onnxruntime", "1.0.0")
    assert (p.read_bytes(), (p.parent / "networks.json").read_bytes()) == before
    # another protocol than the table's is refused as well
    p.write_bytes(original)
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "3",
            *QUICK, "--passes", "4")
    assert_one_line_error(r, "passes")
    assert p.read_bytes() == original


def test_disk_full_while_exporting_keeps_what_is_done(home, tiny_in_home, dev, monkeypatch):
    import errno

    import hwnas.export as ex
    from hwnas.profiling.profile import make_protocol, profile

    real, calls = ex.export_piece, {"n": 0}

    def full(p, path=None, seed=0):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(p, path, seed)

    monkeypatch.setattr(ex, "export_piece", full)
    quick = make_protocol(1, quick=True)
    with pytest.raises(HwnasError, match="No space left on device") as e:
        profile(dev, tiny_in_home, 32, networks=1, protocol=quick, progress=False)
    assert "\n" not in str(e.value)
    assert len(list((bundle_dir(home) / "models").glob("*.onnx"))) == 3  # kept
    assert not LatencyTable.exists(dev)
    monkeypatch.setattr(ex, "export_piece", real)
    rep = profile(dev, tiny_in_home, 32, networks=1, protocol=quick, progress=False)
    assert rep.measured_blocks == len(tiny_in_home.pieces(32)) and rep.measured_networks == 1


@pytest.mark.parametrize("args,fragment", [
    (["profile", "--device", "nosuch", "--space", "tiny", "-r", "32"], "unknown device 'nosuch'"),
    (["profile", "--device", "ref", "--space", "nosuchspace", "-r", "32"], "unknown space"),
    (["profile", "--device", "ref", "--space", "tiny", "-r", "2"], "resolution"),
    (["profile", "--device", "ref", "--space", "tiny", "-r", "32", "--passes", "0"], "passes"),
    (["profile", "--device", "ref", "--space", "tiny", "-r", "32", "--networks", "-1"], "networks"),
    (["lut", "show", "nosuch"], "no latency table"),
    (["lut", "import", "missing.jsonl", "--device", "ref"], "missing.jsonl"),
    (["measure", "nosuch.onnx", "--device", "ref"], "nosuch.onnx"),
    (["measure", "mbv2-0.5", "--device", "nosuch"], "unknown device"),
])
def test_bad_input_one_line(cli, dev, args, fragment):
    assert_one_line_error(cli(*args), fragment)


def test_not_a_results_file_or_table(cli, home, dev):
    (home / "x.jsonl").write_text('{"hello": 1}\n')
    assert_one_line_error(cli("lut", "import", "x.jsonl", "--device", dev), "x.jsonl")
    d = home / "latency_tables" / dev
    (d / "blocks.json").write_text("{not json")
    assert_one_line_error(cli("lut", "show", dev), "blocks.json")
    (d / "blocks.json").write_text(json.dumps({"schema": 1, "kind": "hwnas-lut", "statistic": "min",
                                               "entries": {"k": {"min_ms": "x"}}}))
    assert_one_line_error(cli("lut", "show", dev), "blocks.json")


# ---- measure --------------------------------------------------------------------------------------

def test_measure_arch_and_onnx(cli, home, tiny_in_home, dev):
    a = tiny_in_home.sample(seed=1, resolution=32)[0]
    s = a.to_string()
    cli("export", s, "-o", home / "m.onnx", check=0)
    r = cli("measure", s, "m.onnx", "--device", dev, "--save", *QUICK, check=0)
    lines = r.stdout.splitlines()
    assert lines[0].startswith(s + ": median") and "IQR" in lines[0] and " n " in lines[0]
    assert lines[1].startswith("m.onnx: median")
    t = LatencyTable.load(dev)
    assert list(t.networks) == [s] and t.network_sources[s] == "measure"
    assert not any((home / "runs" / "profile" / dev).glob("measure-*"))  # cleaned up


def test_measure_archs_api(home, tiny_in_home, dev):
    from hwnas.export import export_arch
    from hwnas.profiling.measure import measure_archs, measure_onnx
    from hwnas.profiling.profile import make_protocol

    archs = tiny_in_home.sample(seed=2, n=2, resolution=32)
    onnx = home / "trained.onnx"
    export_arch(archs[0], onnx, seed=5)
    p = make_protocol(1, quick=True)
    st = measure_archs(dev, archs, onnx={archs[0].to_string(): onnx}, protocol=p,
                       source="retrain", progress=False)
    assert set(st) == {a.to_string() for a in archs}
    assert all(isinstance(v, Stats) and v.n >= p.min_repeats for v in st.values())
    t = LatencyTable.load(dev)
    assert {t.network_sources[a.to_string()] for a in archs} == {"retrain"}
    st2 = measure_onnx(dev, [onnx], protocol=p, progress=False)
    assert list(st2) == [str(onnx)] and st2[str(onnx)].min_ms > 0
    # a protocol the table was not measured with is refused before measuring
    with pytest.raises(HwnasError, match="passes"):
        measure_archs(dev, archs, protocol=make_protocol(1, quick=True, passes=5),
                      source="measure", progress=False)


# ---- the table API --------------------------------------------------------------------------------

def test_latency_table_api(home, tiny_in_home):
    a = tiny_in_home.sample(seed=3, resolution=32)[0]
    pieces = arch_pieces(a)
    t = LatencyTable("dev1", statistic="p10", provenance={"cpu_model": "x", "threads": 1})
    for i, p in enumerate(pieces):
        t.blocks[p.key] = Stats(min_ms=i + 1.0, p10_ms=i + 1.5, median_ms=i + 2.0, iqr_ms=0.1, n=5)
    want = sum(i + 1.5 for i in range(len(pieces)))
    assert t.lut_sum(a) == pytest.approx(want)
    assert t.block_ms(pieces[0].key) == 1.5 and t.block_ms("nope") is None
    t.add_networks({a.to_string(): Stats(1, 2, 3, 0.5, 10)}, "measure")
    t.save()
    t2 = LatencyTable.load("dev1")
    assert t2.statistic == "p10" and t2.blocks == t.blocks and t2.networks == t.networks
    assert t2.network_ms(a.to_string()) == 2 and t2.network_sources[a.to_string()] == "measure"
    assert t2.coverage(tiny_in_home, 32) == (len({p.key for p in pieces}), len(tiny_in_home.pieces(32)))
    del t2.blocks[pieces[1].key]
    del t2.blocks[pieces[-1].key]
    with pytest.raises(HwnasError, match=rf"{pieces[1].key}.*2 missing"):
        t2.lut_sum(a)
    with pytest.raises(HwnasError):
        Stats(1, 1, 1, 0, 1).value("mean")
    with pytest.raises(HwnasError):
        t2.add_networks({}, "guess")
    other = {"cpu_model": "y", "threads": 1}
    with pytest.raises(HwnasError, match="cpu_model"):
        t2.check_compatible(other)


# ---- over a real SSH server -----------------------------------------------------------------------

@pytest.mark.ssh
def test_profile_over_ssh(cli, home, tiny_in_home, ssh_server):
    """Profile through sshd: the host keeps its own copy of the results as they stream."""
    env = {"HWNAS_HOME": str(home), **ssh_server.env()}
    cli("device", "add", "pi", "--target", ssh_server.target, "--python", sys.executable,
        env=env, check=0)
    r = cli("profile", "--device", "pi", "--space", "tiny", "-r", "32", "--networks", "2", *QUICK,
            env=env)
    assert r.returncode == 0, r.stderr
    t = LatencyTable.load("pi")
    assert t.coverage(tiny_in_home, 32)[0] == len(tiny_in_home.pieces(32)) and len(t.networks) == 2
    ids = result_ids(bundle_dir(home, "pi") / "results.jsonl")
    assert len(ids) == len(set(ids)) == len(tiny_in_home.pieces(32)) + 2
    assert not list(ssh_server.remote_tmp.glob("hwnas.*"))  # remote folder removed


def test_composed_network_matches_exported_graph(tmp_path, home, tiny_in_home):
    """Networks are chained from their pieces' ONNX files: same operators and shapes as a
    torch export of the whole network, and onnxruntime runs it."""
    from collections import Counter

    import numpy as np
    import onnx
    import onnxruntime as ort

    from hwnas.export import export_arch, export_piece
    from hwnas.profiling.profile import compose_network

    for a in [*tiny_in_home.sample(seed=4, n=2, resolution=32), Arch.from_string(
            "r64c3_s16k3s2hs_k3e1c16s2q0.25re_k3e4.5c24s2q0_k5e4c40s2q0.25hs_h96hs_n7")]:
        def piece_file(p):
            f = tmp_path / f"{p.key}.onnx"
            if not f.exists():
                export_piece(p, f)
            return f

        composed = onnx.load_from_string(compose_network(a, piece_file))
        onnx.checker.check_model(composed)
        whole = onnx.load_from_string(export_arch(a))

        def ops(m):
            return Counter(n.op_type for n in m.graph.node if n.op_type != "Identity")

        assert ops(composed) == ops(whole)
        assert len(composed.graph.initializer) >= 1
        sess = ort.InferenceSession(composed.SerializeToString(), providers=["CPUExecutionProvider"])
        x = np.zeros((1, a.channels, a.resolution, a.resolution), np.float32)
        assert sess.run(None, {sess.get_inputs()[0].name: x})[0].shape == (1, a.classes)


# ---- throttling and load --------------------------------------------------------------------------

def test_busy_local_device_gets_one_warning_line(home, tiny_in_home, dev, monkeypatch, caplog):
    import logging

    import hwnas.onboard.conditions as cond
    from hwnas.export import export_piece
    from hwnas.profiling.measure import measure_onnx
    from hwnas.profiling.profile import make_protocol

    f = home / "b.onnx"
    export_piece(tiny_in_home.pieces(32)[0], f)
    quick = make_protocol(1, quick=True)
    cores = os.cpu_count()
    for load, warned in ((cores + 0.5, True), (cores - 0.5, False)):
        monkeypatch.setattr(cond, "read_load", lambda root="/", v=load: v)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hwnas"):
            st = measure_onnx(dev, [f], protocol=quick, progress=False)
        assert st[str(f)].min_ms > 0
        lines = [r.getMessage() for r in caplog.records if "load average" in r.getMessage()]
        assert len(lines) == int(warned), lines
        if warned:
            assert f"{load:.2f} on {cores} cores" in lines[0] and "'ref'" in lines[0]
            assert "\n" not in lines[0]


def test_profile_keeps_chunk_conditions_with_its_results(cli, home, tiny_in_home, dev):
    """The chunk records (clock, temperature, throttling, load where readable) stay in the
    profile's results file next to the measurements."""
    cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "1", *QUICK,
        "--chunk", "8", check=0)
    recs = read_records(str(bundle_dir(home) / "results.jsonl"))
    chunks = [r for r in recs if r["type"] == "chunk"]
    n = -(-(len(tiny_in_home.pieces(32)) + 1) // 8)
    assert [(r["chunk"], r["at"]) for r in chunks] == [
        (k, at) for k in range(1, n + 1) for at in ("start", "end")]
    load = cond_load()
    for r in chunks:
        assert "time" in r["conditions"]
        if load is not None:  # /proc/loadavg is readable here
            assert r["conditions"]["load1"] >= 0
    assert all(isinstance(r["issues"], list) for r in chunks if r["at"] == "end")


def cond_load():
    from hwnas.onboard.conditions import read_load

    return read_load()


# ---- sentinels ------------------------------------------------------------------------------------

def test_bundle_only_carries_sentinels_and_import_refuses_a_drifted_chunk(home, tiny_in_home, tmp_path,
                                                                           caplog):
    """A bundle run by hand times the table's sentinels in its chunks too; at import, a
    chunk whose sentinels drifted beyond the threshold stays out unless --accept-drift."""
    import logging

    from hwnas.profiling.drift import DriftSettings
    from hwnas.profiling.profile import import_results, make_protocol, profile

    p = make_protocol(1, warmup=1, min_repeats=10, passes=2, burst_warmup=0, min_time_s=0.0,
                      sample_ms=0.0)

    def by_hand(out):
        rr = subprocess.run([sys.executable, "run.py"], cwd=out, capture_output=True, text=True,
                            timeout=300)
        assert rr.returncode == 0, rr.stderr

    first = tmp_path / "b1"
    profile("pi", tiny_in_home, 32, networks=2, protocol=p, bundle_only=first, progress=False)
    man = json.loads((first / "manifest.json").read_text())
    assert not [e for e in man["entries"] if e["kind"] == "sentinel"]  # no table yet
    by_hand(first)
    import_results("pi", first)
    second = tmp_path / "b2"
    profile("pi", tiny_in_home, 32, networks=4, protocol=p, bundle_only=second, progress=False)
    man = json.loads((second / "manifest.json").read_text())
    sents = [e for e in man["entries"] if e["kind"] == "sentinel"]
    assert {e["id"].split(":", 3)[3] for e in sents} == set(LatencyTable.load("pi").networks)
    by_hand(second)
    nets = home / "latency_tables" / "pi" / "networks.json"
    doc = json.loads(nets.read_text())
    for e in doc["entries"].values():  # the device now looks 10x slower than its table
        for k in ("min_ms", "p10_ms", "median_ms", "iqr_ms"):
            e[k] /= 10
    nets.write_text(json.dumps(doc))
    loose = DriftSettings(threshold=2.0)  # beyond at > 3x: the edit, not this VM's noise
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        _, nb, nn = import_results("pi", second, drift=loose)
    assert (nb, nn) == (0, 0) and len(LatencyTable.load("pi").networks) == 2
    msg = [r.getMessage() for r in caplog.records if "sentinel" in r.getMessage()]
    assert len(msg) == 1 and "x slower" in msg[0] and "not importing the 2 results" in msg[0]
    _, nb, nn = import_results("pi", second, drift=DriftSettings(threshold=2.0, accept=True))
    assert nn == 2 and len(LatencyTable.load("pi").networks) == 4
