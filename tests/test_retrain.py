"""hwnas retrain: winners + baselines trained with one recipe, exported, re-measured side by side.

The end-to-end tests use a tiny space at 32 px, a local device profiled with the quick
protocol in a temporary HWNAS_HOME, a search run made through the search API with cheap
injected latency/accuracy functions (MACs and params: an honest, fast front), and digits
with 1 epoch on a small training subset.
"""

import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import assert_one_line_error, put_space, run_cli

from hwnas.errors import HwnasError
from hwnas.retrain.run import (
    COLUMNS,
    knee_index,
    load_retrain,
    parse_seeds,
    select_winners,
    spread_indices,
    summarize,
)

# tiny training: 1 epoch on 96 digits, one seed, quick measurement
FAST = ("--epochs", "1", "--seeds", "0,", "--subset", "96", "--batch-size", "32", "--quick",
        "--baselines", "mbv2-0.35")


def _latency(archs):  # a cheap stand-in for the predictor: MACs (M)
    from hwnas.search import arch_costs_fast

    return [arch_costs_fast(a)[1] / 1e6 for a in archs]


def _accuracy(archs):  # ... and for the accuracy estimate: grows with params
    from hwnas.search import arch_costs_fast

    return [math.log(arch_costs_fast(a)[0]) for a in archs]


@pytest.fixture(scope="module")
def env(retrain_env):
    return retrain_env


def make_env(tmp_path_factory, prefix: str):
    """HWNAS_HOME with the tiny space, a local device 'ref' profiled (quick) and a search run
    'tr' (journal storage) whose front has at least 2 winners; (home, its environment)."""
    home = tmp_path_factory.mktemp(prefix)
    put_space(home)
    e = {"HWNAS_HOME": str(home)}
    run_cli("device", "add", "ref", "--target", "local", "--threads", "1", env=e, cwd=home,
            check=0)
    run_cli("profile", "--device", "ref", "--space", "tiny", "-r", "32", "--networks", "2",
            "--quick", env=e, cwd=home, check=0)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWNAS_HOME", str(home))
        from hwnas.search import SearchSettings, run_search

        res = run_search(SearchSettings(space="tiny", device="ref", name="tr", trials=12,
                                        resolution=32, sampler="random"),
                         latency_fn=_latency, accuracy_fn=_accuracy, classes=10, progress=False)
    assert len(res.pareto) >= 2
    return home, e


def _cli(env, *args, **kw):
    home, e = env
    return run_cli("retrain", *args, env=e, cwd=home, **kw)


def _copy_run(env, name):
    home, _ = env
    src, dst = home / "runs" / "tr", home / "runs" / name
    dst.mkdir()
    for f in ("config.json", "pareto.csv", "trials.csv"):
        shutil.copy(src / f, dst / f)
    shutil.copytree(src / "winners", dst / "winners")
    return dst


# ---- end to end ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_retrain_end_to_end_with_feedback(env, monkeypatch, capsys):
    home, _ = env
    run = _copy_run(env, "e2e")
    r = _cli(env, "e2e", "--top", "2", *FAST, "--feedback", check=0)
    rows = load_retrain(run)
    assert [x["kind"] for x in rows].count("winner") == 2
    assert [x["name"] for x in rows if x["kind"] == "baseline"] == ["mbv2-0.35"]
    with open(run / "retrain.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:len(COLUMNS)] == COLUMNS
    pareto = {p["arch"] for p in _pareto(run)}
    for x in rows:
        assert 0.0 <= x["acc_mean"] <= 1.0 and x["acc_std"] == 0.0
        assert x["measured_median_ms"] > 0 and x["measured_iqr_ms"] >= 0 and x["measured_n"] >= 3
        assert x["params"] > 0 and x["macs"] > 0 and x["peak_act_bytes"] > 0
        assert x["seeds"] == "0" and x["epochs"] == 1
        assert (run / x["onnx"]).is_file() and x["onnx"] == f"models/{x['name']}.onnx"
        assert x["arch"].startswith("r32")
        if x["predicted_ms"] is not None:
            want = 100 * (x["predicted_ms"] - x["measured_stat_ms"]) / x["measured_stat_ms"]
            assert x["error_pct"] == pytest.approx(want, abs=0.01)
        if x["kind"] == "winner":
            assert x["arch"] in pareto
            assert (run / "winners" / f"{x['name']}.yaml").is_file()
        ck = run / "retrain"
        assert list(ck.glob(f"*/{x['name']}/seed0.pt")) and list(ck.glob(f"*/{x['name']}/seed0.json"))
    # the exported ONNX holds the trained weights: it reproduces the checkpoint's outputs
    import onnxruntime as ort

    from hwnas.train import load_trained

    x = rows[0]
    _, net, _ = load_trained(next((run / "retrain").glob(f"*/{x['name']}/seed0.pt")))
    inp = torch.randn(1, 3, 32, 32)
    want = net(inp).detach().numpy()
    got = ort.InferenceSession(str(run / x["onnx"])).run(None, {"input": inp.numpy()})[0]
    assert abs(got - want).max() < 1e-3
    # --feedback: the measurements joined the device's networks.json as 'retrain'
    nets = json.loads((home / "latency_tables" / "ref" / "networks.json").read_text())["entries"]
    for x in rows:
        assert nets[x["arch"]]["source"] == "retrain"
    # the summary names how it was measured and compares every winner with the baseline
    assert "measured on 'ref'" in r.stdout and "speedup at matched accuracy" in r.stdout
    assert "mbv2-0.35" in r.stdout
    # issue 24.4: the plan and its estimate before it starts, the next command at the end
    assert "plan: 2 winner(s) + 1 baseline(s) = 3 models x 1 seed(s) = 3 trainings of 1 " \
        "epoch(s)" in r.stderr and "(one batch timed per model)" in r.stderr
    assert "smaller: --top K" in r.stderr and "--subset N" in r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("next: hwnas view e2e")
    meta = json.loads((run / "retrain.json").read_text())
    assert meta["device"] == "ref" and meta["seeds"] == [0] and meta["feedback"] is True
    # everything finished: the same command trains and measures nothing again
    before = {p: p.stat().st_mtime_ns for p in (run / "retrain").rglob("*") if p.is_file()}
    from hwnas.cli import main

    monkeypatch.setenv("HWNAS_HOME", str(home))
    capsys.readouterr()
    assert main(["retrain", "e2e", "--top", "2", *FAST, "--feedback", "-q"]) == 0
    assert "(0 trainings in this call)" in capsys.readouterr().out
    after = {p: p.stat().st_mtime_ns for p in (run / "retrain").rglob("*") if p.is_file()}
    assert after == before
    assert [(x["name"], x["acc_mean"], x["measured_median_ms"]) for x in load_retrain(run)] == \
        [(x["name"], x["acc_mean"], x["measured_median_ms"]) for x in rows]
    # --json: one document on stdout, nothing else there (issue 24.5)
    assert main(["retrain", "e2e", "--top", "2", *FAST, "--feedback", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"] == "e2e" and doc["trained"] == 0 and len(doc["rows"]) == 3
    assert doc["summary"]["statistic"] == doc["rows"][0]["statistic"]
    assert doc["next"].startswith("hwnas view e2e")


def _pareto(run):
    with open(run / "pareto.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_retrain_resumes_after_kill_between_models(env):
    home, e = env
    run = _copy_run(env, "kill")
    cmd = [sys.executable, "-m", "hwnas", "retrain", "kill", "--top", "2", *FAST, "-q"]
    p = subprocess.Popen(cmd, env={**os.environ, **e}, cwd=home, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    first = None
    t0 = time.monotonic()
    while first is None and time.monotonic() - t0 < 300 and p.poll() is None:
        found = list((run / "retrain").glob("*/*/seed0.json")) if (run / "retrain").is_dir() else []
        first = found[0] if found else None
        time.sleep(0.05)
    assert first is not None, p.communicate()[1].decode()[-2000:]
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    content, mtime = first.read_bytes(), first.stat().st_mtime_ns
    done_before = len(list((run / "retrain").glob("*/*/seed0.json")))
    r = _cli(env, "kill", "--top", "2", *FAST, check=0)
    assert first.read_bytes() == content and first.stat().st_mtime_ns == mtime
    name = first.parent.name
    assert f"{name} seed 0: trained earlier" in r.stderr
    assert f"({3 - done_before} trainings in this call)" in r.stdout
    rows = load_retrain(run)
    assert len(rows) == 3 and all(x["measured_median_ms"] > 0 for x in rows)
    acc = next(x for x in rows if x["name"] == name)["acc_mean"]
    assert acc == pytest.approx(json.loads(content)["test_acc"], abs=1e-6)


@pytest.mark.slow
def test_corrupt_or_foreign_checkpoint_is_refused_with_one_line(env, monkeypatch, capsys):
    from types import SimpleNamespace

    from hwnas.cli import main

    run = _copy_run(env, "bad")
    # --top 1 trains the most accurate winner; plant its checkpoint
    first = select_winners(_pareto(run), "top", 1)[0]
    name = os.path.splitext(os.path.basename(first["file"]))[0]
    from hwnas.retrain.run import recipe_id
    from hwnas.train import Recipe

    rid = recipe_id(Recipe(epochs=1, batch_size=32, subset=96), "digits", 32)
    ck = run / "retrain" / rid / name / "seed0.pt"
    ck.parent.mkdir(parents=True)
    args = ("bad", "--top", "1", "--epochs", "1", "--seeds", "0,", "--subset", "96",
            "--batch-size", "32", "--quick", "--baselines", "none", "-q")
    import argparse

    planted = [b"PK\x03\x04 this is not a checkpoint",  # corrupt
               {"format": "something-else/1", "weights": torch.zeros(3)},  # foreign
               {"format": "hwnas-train/1", "obj": argparse.Namespace(a=1)}]  # a pickled object
    monkeypatch.setenv("HWNAS_HOME", str(env[0]))
    for i, content in enumerate(planted):
        if isinstance(content, bytes):
            ck.write_bytes(content)
        else:
            torch.save(content, ck)
        data = ck.read_bytes()
        if i == 0:  # through the installed CLI in a fresh process
            r = _cli(env, *args)
        else:  # the same entry point in this process (saves a torch import)
            capsys.readouterr()
            rc = main(["retrain", *args])
            r = SimpleNamespace(returncode=rc, stderr=capsys.readouterr().err)
        assert_one_line_error(r, str(ck), "checkpoint")
        assert ck.read_bytes() == data  # left as it was
    assert not (run / "retrain.csv").exists()


def test_bad_arguments_are_one_line(env, monkeypatch, capsys):
    from types import SimpleNamespace

    from hwnas.cli import main

    home, _ = env
    _copy_run(env, "args")
    monkeypatch.setenv("HWNAS_HOME", str(home))
    for args, frag in [(("nope",), "run 'nope' not found"),
                       (("args", "--baselines", "mbv9"), "unknown baseline 'mbv9'"),
                       (("args", "--seeds", "x"), "--seeds 'x'"),
                       (("args", "--select", "budget"), "no latency budget"),
                       (("args", "--device", "ghost"), "ghost")]:
        capsys.readouterr()
        rc = main(["retrain", *args, "-q"])
        err = capsys.readouterr().err
        assert_one_line_error(SimpleNamespace(returncode=rc, stderr=err), frag)
    assert not (home / "runs" / "args" / "retrain.csv").exists()
    if not torch.cuda.is_available():  # refused before anything is trained
        capsys.readouterr()
        rc = main(["retrain", "args", "-q", "--torch-device", "cuda"])
        err = capsys.readouterr().err
        assert_one_line_error(SimpleNamespace(returncode=rc, stderr=err), "--torch-device cuda")
        assert not (home / "runs" / "args" / "retrain").exists()


# ---- selection, summary, parsing (no training) ------------------------------------------------------

def test_spread_and_knee():
    assert spread_indices(5, 1) == [4]
    assert spread_indices(5, 2) == [0, 4]
    assert spread_indices(5, 3) == [0, 2, 4]
    assert spread_indices(2, 3) == [0, 1]
    # a front with an obvious knee at index 1
    lat, acc = [1.0, 2.0, 6.0, 10.0], [0.5, 0.9, 0.93, 0.95]
    assert knee_index(lat, acc) == 1
    assert knee_index([1.0, 2.0], [0.2, 0.9]) in (0, 1)
    assert knee_index([3.0], [0.1]) == 0


def test_select_winners():
    rows = [{"arch": f"a{i}", "latency_ms": float(lat), "score": acc}
            for i, (lat, acc) in enumerate([(6, 0.93), (1, 0.5), (10, 0.95), (2, 0.9)])]
    assert [r["arch"] for r in select_winners(rows, "all")] == ["a1", "a3", "a0", "a2"]
    assert [r["arch"] for r in select_winners(rows, "top", 2)] == ["a1", "a2"]
    assert [r["arch"] for r in select_winners(rows, "top", 1)] == ["a2"]
    assert [r["arch"] for r in select_winners(rows, "knee")] == ["a3"]
    assert [r["arch"] for r in select_winners(rows, "budget", budget_ms=7)] == ["a0"]
    with pytest.raises(HwnasError, match="no latency budget"):
        select_winners(rows, "budget")
    with pytest.raises(HwnasError, match="no winner within"):
        select_winners(rows, "budget", budget_ms=0.5)
    with pytest.raises(HwnasError, match="front is empty"):
        select_winners([], "top", 3)


def _row(name, kind, ms, acc, std=0.0):
    return {"name": name, "kind": kind, "measured_median_ms": ms, "acc_mean": acc, "acc_std": std}


def test_summary_dominance_and_speedup():
    rows = [_row("w1", "winner", 2.0, 0.90, 0.01), _row("w2", "winner", 5.0, 0.96, 0.01),
            _row("b1", "baseline", 4.0, 0.91, 0.01), _row("b2", "baseline", 8.0, 0.95, 0.0)]
    s = summarize(rows)
    pairs = {(d["winner"], d["baseline"]): d for d in s["dominance"]}
    # w1 is faster than b1 and within noise of its accuracy (0.90 >= 0.91 - 0.014)
    assert ("w1", "b1") in pairs and not pairs[("w1", "b1")]["strict"]
    assert ("w2", "b2") in pairs and pairs[("w2", "b2")]["strict"]
    assert ("w2", "b1") not in pairs  # slower
    assert ("w1", "b2") not in pairs  # much less accurate
    sp = {e["baseline"]: e for e in s["speedups"]}
    assert sp["b1"]["strict"]["winner"] == "w2" and sp["b1"]["strict"]["speedup"] == pytest.approx(0.8)
    assert sp["b1"]["noise"]["winner"] == "w1" and sp["b1"]["noise"]["speedup"] == pytest.approx(2.0)
    assert sp["b2"]["strict"]["speedup"] == pytest.approx(8.0 / 5.0)
    assert s["best_strict_speedup"] == pytest.approx(1.6)
    none = summarize([_row("w", "winner", 1.0, 0.1), _row("b", "baseline", 2.0, 0.9)])
    assert none["speedups"][0]["strict"] is None and none["best_strict_speedup"] is None


def test_summary_uses_the_tables_statistic_with_median_and_iqr_beside():
    """issue 24.3: "measured" is the table's statistic (min here), and the speed-ups and the
    winners' order use it, not the median; median +- IQR are printed beside it."""
    from hwnas.retrain.run import format_summary, format_table

    def row(name, kind, stat, median, acc, arch):
        return {"name": name, "kind": kind, "arch": arch, "params": 1000, "macs": 10_000,
                "peak_act_bytes": 4096, "predicted_ms": stat, "measured_median_ms": median,
                "measured_iqr_ms": 0.5, "measured_n": 50, "measured_stat_ms": stat,
                "statistic": "min", "error_pct": 0.0, "acc_mean": acc, "acc_std": 0.0,
                "seeds": "0", "epochs": 1}

    # by min, w_b (1.0 ms) is faster than w_a (2.0 ms); by median it is the other way round
    rows = [row("w_a", "winner", 2.0, 2.1, 0.9, "a"), row("w_b", "winner", 1.0, 5.0, 0.9, "b"),
            row("base", "baseline", 4.0, 4.2, 0.8, "c")]
    s = summarize(rows)
    assert s["statistic"] == "min"
    sp = s["speedups"][0]["strict"]
    assert sp["winner"] == "w_b" and sp["speedup"] == pytest.approx(4.0)  # 4.0 / 1.0, by min
    table = format_table(rows)
    head = table.splitlines()[0]
    assert "measured min" in head and "median +- IQR" in head
    assert "W1 = b" in table  # W1 is the fastest by the statistic
    text = format_summary(rows)
    assert "latency = the min of the samples" in text and "latency = median" not in text
    assert "4.00x" in text  # the grid's speed-up by min


def test_parse_seeds():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("7,") == (7,)
    assert parse_seeds("0,5,7") == (0, 5, 7)
    for bad in ("0", "-1,", "a", ","):
        with pytest.raises(HwnasError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.slow
def test_retrain_records_the_drift_beside_the_errors(env, monkeypatch, capsys):
    """The measurement times the table's sentinels too: retrain.json and its cached
    measurement keep the drift, the summary shows it (and, asked, the drift-corrected
    prediction)."""
    run = _copy_run(env, "drift")
    r = _cli(env, "drift", "--top", "1", *FAST, "--drift-correct", check=0)
    meta = json.loads((run / "retrain.json").read_text())
    d = meta["drift"]
    assert meta["drift_correct"] is True and d["sentinels"]
    assert all(s["drift"] == pytest.approx(s["measured_ms"] / s["table_ms"], rel=1e-3)
               for s in d["sentinels"])
    # the summary prints the median drift to 3 decimals, retrain.json keeps it rounded to 4:
    # the printed digit can differ by one (x1.52346 prints 1.523, its 1.5235 prints 1.524)
    printed = re.search(r"drift x(\d+\.\d{3}) ", r.stdout)
    assert printed and float(printed.group(1)) == pytest.approx(d["median"], abs=1e-3), r.stdout
    assert "drift-corr." in r.stdout
    cached = json.loads((run / "retrain" / "measured-ref.json").read_text())
    assert cached["drift"]["median"] == d["median"]
    # from the cache: the same drift (the same entry point in this process: no torch import)
    from hwnas.cli import main

    monkeypatch.setenv("HWNAS_HOME", str(env[0]))
    capsys.readouterr()
    assert main(["retrain", "drift", "--top", "1", *FAST]) == 0
    out2 = capsys.readouterr().out
    assert json.loads((run / "retrain.json").read_text())["drift"]["median"] == d["median"]
    assert "drift-corr." not in out2


def test_the_printed_table_shows_a_spread_only_with_several_seeds():
    from hwnas.retrain.run import format_table

    def row(name, seeds, std):
        return {"name": name, "kind": "baseline", "arch": "a", "params": 1e5, "macs": 1e6,
                "peak_act_bytes": 2**20, "predicted_ms": 1.0, "measured_median_ms": 1.1,
                "measured_iqr_ms": 0.01, "error_pct": -9.1, "acc_mean": 0.81234, "acc_std": std,
                "seeds": seeds}

    one = format_table([row("mbv2-0.35", "0", 0.0)])
    assert "0.8123 (1 seed)" in one and "+- 0.0000" not in one
    two = format_table([row("mbv2-0.35", "0;1", 0.0123)])
    assert "0.8123 +- 0.0123" in two


@pytest.mark.slow
def test_retrain_int8_adds_the_quantized_models_accuracy(env):
    home, _ = env
    run = _copy_run(env, "i8")
    out = _cli(env, "i8", "--top", "1", *FAST, "--int8", check=0).stdout
    with open(run / "retrain.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["acc_int8"] != "" for r in rows)
    for r in rows:
        assert (run / r["onnx_int8"]).is_file() and r["onnx_int8"].endswith(".int8.onnx")
        fp32, int8 = float(r["acc_onnx_fp32"]), float(r["acc_int8"])
        assert 0 <= int8 <= 1 and fp32 == pytest.approx(float(r["acc_mean"]), abs=0.02)
        assert float(r["acc_int8_delta_pp"]) == pytest.approx(100 * (int8 - fp32), abs=0.01)
        # the int8 file timed in the same interleaved run as the fp32 one
        m8, m32 = float(r["measured_int8_stat_ms"]), float(r["measured_stat_ms"])
        assert m8 > 0 and float(r["int8_speedup"]) == pytest.approx(m32 / m8, rel=1e-3)
        assert r["precision"] == "fp32"  # an fp32 search's winners and the baselines
    assert "int8 (static QDQ" in out and "speed-up" in out
    cache = json.loads((run / "retrain" / "measured-ref.json").read_text())
    assert {r["onnx_int8"] for r in rows} <= set(cache["stats"])  # one run, both precisions
