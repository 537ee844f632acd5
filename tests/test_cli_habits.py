"""Command line habits (issue 14, part 4): --version, | head, -r on search, quiet progress,
--json on the commands that only print, predict of an exported ONNX file, the user's umask,
a public hypervolume."""

import io
import json
import os
import stat
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_one_line_error, put_space

import hwnas
from hwnas.cli import build_parser


def test_version_prints_the_package_version(cli):
    r = cli("--version", check=0)
    assert r.stdout.strip() == f"hwnas {hwnas.__version__}"
    assert hwnas.__version__ and hwnas.__version__[0].isdigit()


def test_piping_into_head_gives_no_traceback(home):
    # ~450 kB of arch YAML: far more than a pipe holds, so the writer meets the closed pipe
    env = dict(os.environ, HWNAS_HOME=str(home))
    p = subprocess.Popen([sys.executable, "-m", "hwnas", "arch", "sample", "mobilenetv2",
                          "-n", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, cwd=home)
    first = p.stdout.readline()
    p.stdout.close()  # what `head -1` does after its line
    err = p.stderr.read().decode()
    rc = p.wait(timeout=60)
    assert first.startswith(b"# r")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc == 0


def test_search_has_short_resolution_option():
    args = build_parser().parse_args(["search", "--space", "mobilenetv2", "--device", "d",
                                      "--name", "n", "-r", "160"])
    assert args.resolution == 160


# ---- progress bars and Optuna's log lines (a tiny in-process search with stand-in estimators)

SEEN_VERBOSITY: list[int] = []


def _latency(archs):
    from hwnas.search import arch_costs_fast

    return [arch_costs_fast(a)[1] / 1e6 + 0.2 * len(a.blocks) for a in archs]


def _accuracy(archs):
    import optuna

    SEEN_VERBOSITY.append(optuna.logging.get_verbosity())
    from hwnas.search import arch_costs_fast

    return [1 - 1 / (1 + arch_costs_fast(a)[1] / 1e6) for a in archs]


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _tiny_search(home, name: str, progress: bool):
    from hwnas.search import SearchSettings, run_search

    put_space(home)
    s = SearchSettings(space="tiny", device="stub", name=name, trials=4, resolution=32,
                       population=4, seed_baselines=False)
    return run_search(s, latency_fn=_latency, accuracy_fn=_accuracy, classes=10,
                      progress=progress)


@pytest.mark.parametrize("tty,progress,bar", [(False, True, False), (True, True, True),
                                              (True, False, False)])
def test_search_bar_only_on_a_terminal_and_when_asked(home, monkeypatch, tty, progress, bar):
    err = _FakeTTY() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    res = _tiny_search(home, f"bar-{tty}-{progress}", progress)
    assert res.complete == 4
    assert (f"search bar-{tty}-{progress}" in err.getvalue()) == bar, err.getvalue()


def test_optuna_info_lines_silenced_without_progress(home):
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        SEEN_VERBOSITY.clear()
        _tiny_search(home, "quiet", progress=False)
        assert SEEN_VERBOSITY and set(SEEN_VERBOSITY) == {optuna.logging.WARNING}
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # restored
        SEEN_VERBOSITY.clear()
        _tiny_search(home, "chatty", progress=True)
        assert set(SEEN_VERBOSITY) == {optuna.logging.INFO}
    finally:
        optuna.logging.set_verbosity(before)


# ---- --json on the commands that only print -----------------------------------------------------

@pytest.fixture
def main(home, capsys):
    """hwnas in this process: (returncode, stdout, stderr)."""
    from hwnas.cli import main as cli_main

    def run(*args, check=None):
        capsys.readouterr()
        rc = cli_main([str(a) for a in args])
        out, err = capsys.readouterr()
        if check is not None:
            assert rc == check, f"exit {rc}\n{out}\n{err}"
        return SimpleNamespace(returncode=rc, stdout=out, stderr=err)

    return run


def _synthetic_table(home, device="syn"):
    """A table of the predictor tests' space (known linear truth): every block at 32 px and
    30 whole networks."""
    from test_predictor import SPACE, _distinct, net_truth, truth_ms

    from hwnas.profiling.lut import LatencyTable, Stats
    from hwnas.space import load_space

    (home / "search_spaces").mkdir(exist_ok=True)
    (home / "search_spaces" / "ptiny.yaml").write_text(SPACE)
    space = load_space("ptiny")
    archs = [a for a in _distinct(space, 100, seed=3) if a.resolution == 32][:30]
    assert len(archs) == 30

    def st(v):
        return Stats(v, v * 1.01, v * 1.02, v * 0.01, 20)

    blocks = {p.key: st(truth_ms(p)) for p in space.pieces(32)}
    nets = {a.to_string(): st(net_truth(a)) for a in archs}
    LatencyTable(device, "min", {"onnxruntime": "0.0.1", "threads": 1, "cpu_model": "synthetic"},
                 blocks, nets).save()
    return space, archs


def test_predict_json_has_the_facts_of_the_text(main, home):
    from hwnas.pieces import arch_pieces

    space, archs = _synthetic_table(home)
    a = space.sample(seed=5, resolution=32)[0]
    text = main("predict", a.to_string(), "--device", "syn", check=0).stdout
    d = json.loads(main("predict", a.to_string(), "--device", "syn", "--json", check=0).stdout)
    assert d["arch"] == a.to_string() and d["device"] == "syn" and d["statistic"] == "min"
    assert f"predicted   {d['predicted_ms']:.4f} ms" in text
    assert f"block sum   {d['block_sum_ms']:.4f} ms" in text
    assert [b["key"] for b in d["blocks"]] == [p.key for p in arch_pieces(a)]
    assert d["block_sum_ms"] == pytest.approx(sum(b["latency_ms"] for b in d["blocks"]))
    assert d["blocks_in_table"] == d["blocks_total"] == len(d["blocks"])
    assert d["fitted_on"] == {"blocks": len(space.pieces(32)), "networks": 30}
    # a network of the table: its measurement is there too
    m = json.loads(main("predict", archs[0].to_string(), "--device", "syn", "--json",
                        check=0).stdout)
    assert m["measured_ms"] is not None and m["measured_ms"] > 0


def test_arch_info_json(main, home):
    from hwnas.baselines import baseline
    from hwnas.model import arch_costs

    text = main("arch", "info", "mbv3-small@32", check=0).stdout
    d = json.loads(main("arch", "info", "mbv3-small@32", "--json", check=0).stdout)
    a = baseline("mbv3-small", 32)
    c = arch_costs(a)
    assert d["arch"] == a.to_string() and d["resolution"] == 32 and d["classes"] == a.classes
    assert (d["params"], d["macs"], d["peak_activation_bytes"]) == (
        c.params, c.macs, c.peak_act_bytes)
    assert f"({d['params']:,})" in text and len(d["block_keys"]) == len(a.blocks) + 3


def test_lut_show_and_device_list_json(main, home):
    from hwnas.profiling.hosts import DeviceConfig, save_device

    space, _ = _synthetic_table(home)
    d = json.loads(main("lut", "show", "syn", "--json", "--entries", "--networks",
                        check=0).stdout)
    n = len(space.pieces(32))
    assert (d["device"], d["statistic"], d["block_count"], d["network_count"]) == (
        "syn", "min", n, 30)
    assert {"space": "ptiny", "resolution": 32, "blocks_in_table": n,
            "blocks_total": n} in d["coverage"]
    assert d["provenance"]["cpu_model"] == "synthetic"
    assert len(d["blocks"]) == n and all(b["latency_ms"] == b["min_ms"] for b in d["blocks"])
    assert len(d["networks"]) == 30 and d["networks_by_source"] == {"profile": 30}
    assert "blocks" not in json.loads(main("lut", "show", "syn", "--json", check=0).stdout)

    assert json.loads(main("device", "list", "--json", check=0).stdout)["devices"] == []
    save_device(DeviceConfig("b", "ssh://pi@raspberrypi.local:2222", threads=4))
    save_device(DeviceConfig("a", "local"))
    devs = json.loads(main("device", "list", "--json", check=0).stdout)["devices"]
    assert [(x["name"], x["target"], x["threads"]) for x in devs] == [
        ("a", "local", 1), ("b", "ssh://pi@raspberrypi.local:2222", 4)]


def test_measure_json(main, home):
    put_space(home)
    main("device", "add", "ref", "--target", "local", check=0)
    main("export", "mbv2-0.35@32", "-o", home / "m.onnx", check=0)
    r = main("measure", "mbv2-0.35@32", "m.onnx", "--device", "ref", "--quick", "--json",
             check=0)
    d = json.loads(r.stdout)  # the whole of stdout is the document
    assert d["device"] == "ref" and d["threads"] == 1 and d["drift"] is None
    assert [m["model"] for m in d["models"]] == ["mbv2-0.35@32", "m.onnx"]
    for m in d["models"]:
        assert 0 < m["min_ms"] <= m["p10_ms"] <= m["median_ms"] and m["n"] >= 3


# ---- predict MODEL.onnx -------------------------------------------------------------------------

def test_predict_reads_an_onnx_file_hwnas_exported(main, home):
    import onnx
    from onnx import TensorProto, helper

    space, _ = _synthetic_table(home)
    a = space.sample(seed=7, resolution=32)[0]
    main("export", a.to_string(), "-o", home / "a.onnx", check=0)
    by_file = json.loads(main("predict", "a.onnx", "--device", "syn", "--json", check=0).stdout)
    by_arch = json.loads(main("predict", a.to_string(), "--device", "syn", "--json",
                              check=0).stdout)
    assert by_file["arch"] == a.to_string() and by_file == by_arch
    assert a.to_string() in main("arch", "info", "a.onnx", check=0).stdout

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), str(home / "foreign.onnx"))
    (home / "junk.onnx").write_bytes(bytes(range(256)) * 8)
    for name, frag in (("foreign.onnx", "not an ONNX file exported by hwnas"),
                       ("junk.onnx", "not a readable ONNX file"),
                       ("nosuch.onnx", "no such ONNX file")):
        assert_one_line_error(main("predict", name, "--device", "syn"), name, frag)


# ---- files written with the user's umask --------------------------------------------------------

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_with_the_users_umask(home, umask, mode):
    import torch

    from hwnas.baselines import baseline
    from hwnas.export import export_arch
    from hwnas.io import atomic_write_json, atomic_write_text
    from hwnas.profiling.bundle import write_archive
    from hwnas.profiling.lut import LatencyTable, Stats
    from hwnas.supernet.store import Store

    old = os.umask(umask)
    try:
        atomic_write_text(home / "runs" / "r" / "trials.csv", "a,b\n1,2\n")
        atomic_write_text(home / "runs" / "r" / "report.html", "<html></html>")
        atomic_write_json(home / "runs" / "r" / "config.json", {})
        LatencyTable("d", "min", {}, {"k": Stats(1, 1, 1, 0, 3)}).save()
        Store(home / "runs" / "supernets" / "s").save_checkpoint({"model": {"w": torch.ones(2)}})
        export_arch(baseline("mbv2-0.35", 32), home / "m.onnx")
        (home / "b").mkdir()
        (home / "b" / "x.txt").write_text("x")
        write_archive(home / "b", home / "b.tar.gz")
    finally:
        os.umask(old)
    files = [home / "runs" / "r" / f for f in ("trials.csv", "report.html", "config.json")]
    files += [home / "latency_tables" / "d" / "blocks.json",
              home / "runs" / "supernets" / "s" / "checkpoint.pt", home / "m.onnx",
              home / "b.tar.gz"]
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {
        f.name: oct(mode) for f in files}


def test_cli_process_writes_with_its_umask(home):
    env = dict(os.environ, HWNAS_HOME=str(home))
    for umask, mode in ((0o077, 0o600), (0o022, 0o644)):
        out = home / f"a{umask:o}.yaml"
        subprocess.run([sys.executable, "-m", "hwnas", "arch", "baseline", "mbv2-0.35", "-o",
                        str(out)], env=env, cwd=home, check=True, umask=umask,
                       capture_output=True)
        assert stat.S_IMODE(out.stat().st_mode) == mode


# ---- a public hypervolume -----------------------------------------------------------------------

def test_hypervolume_of_a_hand_checked_2d_front():
    from hwnas.search import hypervolume

    # maximise accuracy, minimise latency; reference (accuracy 0, latency 10):
    # (0.5, 2) covers 0.5 x 8 = 4; (0.8, 6) adds 0.3 x 4 = 1.2; (0.4, 8) is dominated
    dirs, ref = ["maximize", "minimize"], [0.0, 10.0]
    pts = np.array([[0.5, 2.0], [0.8, 6.0], [0.4, 8.0]])
    assert hypervolume(pts, dirs, ref) == pytest.approx(5.2)
    assert hypervolume(pts[::-1], dirs, ref) == pytest.approx(5.2)  # order does not matter
    assert hypervolume(pts[:1], dirs, ref) == pytest.approx(4.0)
    # a point worse than the reference in one objective adds nothing; none at all: 0
    assert hypervolume(np.vstack([pts, [[0.9, 11.0]]]), dirs, ref) == pytest.approx(5.2)
    assert hypervolume(np.array([[-0.1, 1.0]]), dirs, ref) == 0.0
    # both minimised: the unit squares below (3, 3) of (1, 2) and (2, 1) cover 3
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), ["minimize"] * 2, [3, 3]) == \
        pytest.approx(3.0)


def test_hypervolume_needs_no_private_optuna_module(monkeypatch):
    from hwnas.search import hypervolume

    monkeypatch.setitem(sys.modules, "optuna._hypervolume", None)  # importing it now fails
    assert hypervolume(np.array([[1.0, 2.0]]), ["minimize"] * 2, [3, 3]) == pytest.approx(2.0)
