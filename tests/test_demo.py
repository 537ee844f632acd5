"""hwnas demo: the device choice (reference table or this machine), the quick space, and
`hwnas demo --quick` end to end in a fresh HWNAS_HOME (then again: it resumes)."""

from __future__ import annotations

import csv
import json
import re
import time

import pytest
from conftest import assert_one_line_error


def _write_table(d, provenance):
    d.mkdir(parents=True, exist_ok=True)
    for name in ("blocks.json", "networks.json"):
        (d / name).write_text(json.dumps({"schema": 1, "kind": "hwnas-lut", "device": d.name,
                                          "statistic": "min", "provenance": provenance,
                                          "entries": {}}))


def _this_machine(protocol):
    from hwnas.onboard.bench import provenance

    return {**provenance(1), "protocol": protocol.to_dict()}


def test_reference_table_used_only_on_a_machine_like_it(home, monkeypatch, tmp_path):
    from hwnas import demo, paths
    from hwnas.profiling.hosts import load_device
    from hwnas.profiling.profile import make_protocol

    ref = paths.REFERENCE_DEVICE
    shipped = tmp_path / "checkout"
    monkeypatch.setattr(paths, "PACKAGE_ROOT", shipped)
    proto = make_protocol(1)
    _write_table(shipped / "latency_tables" / ref, _this_machine(proto))

    c = demo.choose_device(demo.FULL)
    assert c.name == ref and c.protocol.to_dict() == proto.to_dict()
    assert (home / "latency_tables" / ref / "blocks.json").is_file(), "copied into HWNAS_HOME"
    assert load_device(ref).is_local

    # the same table measured on another CPU: a fresh device named for this machine
    other = {**_this_machine(proto), "cpu_model": "Some Other CPU"}
    _write_table(home / "latency_tables" / ref, other)
    c = demo.choose_device(demo.FULL)
    me = demo.this_machine_name(_this_machine(proto))
    assert c.name == me != ref
    assert "cpu_model" in c.reason and "Some Other CPU" in c.reason
    assert load_device(me).target == "local"

    # the quick protocol never joins the reference table
    _write_table(home / "latency_tables" / ref, _this_machine(proto))
    c = demo.choose_device(demo.QUICK)
    assert c.name == me + "-quick" and c.protocol.passes == make_protocol(1, quick=True).passes


def test_quick_space_is_written_once_and_an_edited_copy_refused(home):
    from hwnas import demo
    from hwnas.errors import HwnasError

    sp = demo.ensure_space(demo.QUICK)
    p = home / "search_spaces" / "demo-quick.yaml"
    assert p.is_file() and sp.name == "demo-quick" and 32 in sp.resolutions
    assert demo.ensure_space(demo.QUICK).params() == sp.params()
    p.write_text(p.read_text().replace("kernel: [3, 5], expand: [3, 6], width", "kernel: [3, 7], "
                                       "expand: [3, 6], width"))
    with pytest.raises(HwnasError, match="not the demo's quick space"):
        demo.ensure_space(demo.QUICK)


def test_demo_cli_refuses_an_edited_space_in_one_line(home, cli):
    (home / "search_spaces").mkdir()
    (home / "search_spaces" / "demo-quick.yaml").write_text(
        "name: demo-quick\nresolutions: [32]\nstem: {out: 8, kernel: 3, stride: 2, act: relu}\n"
        "head: null\nstages:\n  - {out: 8, stride: 2, depth: 1, kernel: [3], expand: [1]}\n")
    assert_one_line_error(cli("demo", "--quick", "-q"), "demo-quick.yaml")


def _rows(p):
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def test_summary_numbers_winners_by_measured_latency_like_retrain_and_report():
    from pathlib import Path

    from hwnas.demo import QUICK, DemoResult
    from hwnas.runs import retrain_labels

    rows = [{"name": "w-slow", "kind": "winner", "arch": "ARCH-SLOW", "measured_median_ms": 3.0},
            {"name": "w-fast", "kind": "winner", "arch": "ARCH-FAST", "measured_median_ms": 1.0},
            {"name": "mbv2-0.35", "kind": "baseline", "arch": "ARCH-B", "measured_median_ms": 2.0}]
    text = DemoResult(QUICK, "dev", "", Path("r.html"), rows, {}, None, "here").summary()
    assert retrain_labels(rows) == {"w-fast": "W1", "w-slow": "W2", "mbv2-0.35": "mbv2-0.35"}
    assert "  W1 = ARCH-FAST" in text and "  W2 = ARCH-SLOW" in text
    assert text.index("W1 = ") < text.index("W2 = ")
    table = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and
             " = " not in line][1:]
    assert table == ["W2", "W1", "mbv2-0.35"]  # rows in retrain.csv order, labelled alike


@pytest.mark.slow
def test_demo_quick_end_to_end_and_resume(home, cli):
    from hwnas.demo import QUICK
    from hwnas.report import FIGURE_IDS

    t0 = time.monotonic()
    r = cli("demo", "--quick", "-q", timeout=900, check=0)
    first_s = time.monotonic() - t0
    run = home / "runs" / QUICK.run
    report = run / "report.html"
    assert f"report: {report}" in r.stdout
    assert report.is_file()
    page = report.read_text()
    for fid in FIGURE_IDS.values():
        assert f'id="{fid}"' in page
    assert not re.search(r"<script[^>]+src=", page)
    assert '<table id="table-retrain">' in page

    trials = _rows(run / "trials.csv")
    assert sum(t["state"] == "COMPLETE" for t in trials) == QUICK.trials
    rows = _rows(run / "retrain.csv")
    assert sorted(x["kind"] for x in rows) == ["baseline"] + ["winner"] * QUICK.top
    assert {x["name"] for x in rows if x["kind"] == "baseline"} == set(QUICK.baselines)
    for x in rows:
        assert float(x["measured_median_ms"]) > 0 and float(x["predicted_ms"]) > 0
        assert 0 <= float(x["acc_mean"]) <= 1
        assert (run / x["onnx"]).is_file()
    device = json.loads((run / "config.json").read_text())["device"]
    assert device.endswith("-quick")
    assert json.loads((home / "latency_tables" / device / "device.json").read_text())["target"] == "local"
    # the printed table says how it was measured and names every model
    assert "onnxruntime" in r.stdout and device in r.stdout and "mbv2-0.35" in r.stdout
    assert "W1" in r.stdout and "W2" in r.stdout

    # again: everything is resumed (nothing profiled, searched or trained anew)
    r2 = cli("demo", "--quick", "-q", timeout=900, check=0)
    assert "added 0 blocks and 0 networks" in r2.stderr
    assert "(0 new" in r2.stderr
    assert not re.search(r"seed \d+: test accuracy", r2.stderr)  # no training
    assert r2.stderr.count("trained earlier") == len(rows)
    assert [x["acc_mean"] for x in _rows(run / "retrain.csv")] == [x["acc_mean"] for x in rows]
    print(f"demo --quick: {first_s:.0f} s")


def test_reference_table_is_trusted_only_if_its_sentinels_run_as_fast_here(home, monkeypatch,
                                                                          tmp_path):
    """Same provenance is not enough: the shipped table's sentinel networks are timed here;
    a table whose networks run 10x slower here than it says is another machine's."""
    import shutil

    from conftest import put_space

    from hwnas import demo, paths
    from hwnas.profiling.drift import DriftSettings
    from hwnas.profiling.hosts import DeviceConfig, save_device
    from hwnas.profiling.profile import make_protocol, profile
    from hwnas.space import load_space

    put_space(home)
    save_device(DeviceConfig(name="src", target="local", threads=1))
    proto = make_protocol(1, warmup=1, min_repeats=10, passes=2, burst_warmup=0,
                          min_time_s=0.0, sample_ms=0.0)
    profile("src", load_space("tiny"), 32, networks=3, protocol=proto, progress=False)
    ref = paths.REFERENCE_DEVICE
    shipped = tmp_path / "checkout" / "latency_tables" / ref
    monkeypatch.setattr(paths, "PACKAGE_ROOT", tmp_path / "checkout")
    shutil.copytree(home / "latency_tables" / "src", shipped)
    for f in ("blocks.json", "networks.json"):  # shipped under the reference's name: it says so
        doc = json.loads((shipped / f).read_text())
        (shipped / f).write_text(json.dumps({**doc, "device": ref}))
    nets = json.loads((shipped / "networks.json").read_text())
    fast = json.loads(json.dumps(nets))
    for e in fast["entries"].values():
        for k in ("min_ms", "p10_ms", "median_ms", "iqr_ms"):
            e[k] /= 10
    (shipped / "networks.json").write_text(json.dumps(fast))
    loose = DriftSettings(threshold=2.0)  # beyond at > 3x slower: the 10x edit, not this VM's noise

    c = demo.choose_device(demo.FULL, drift=loose)
    me = demo.this_machine_name(_this_machine(proto))
    assert c.name == me != ref
    assert c.drift is not None and c.drift.beyond and c.drift.median > 1 + loose.threshold
    assert "sentinel networks run" in c.reason and "x slower" in c.reason
    assert not (home / "latency_tables" / ref / "blocks.json").exists(), "not copied"

    (shipped / "networks.json").write_text(json.dumps(nets))
    c = demo.choose_device(demo.FULL, drift=loose)
    assert c.name == ref and c.drift is not None and not c.drift.beyond
    assert "sentinels run within +-200 %" in c.reason
    assert (home / "latency_tables" / ref / "blocks.json").is_file()
    assert not list((home / "runs" / "profile" / ref).glob("sentinels-*")), "cleaned up"


def test_summary_shows_the_drift_beside_the_errors():
    from pathlib import Path

    from hwnas.demo import QUICK, DemoResult

    rows = [{"name": "w", "kind": "winner", "arch": "A", "measured_median_ms": 2.0,
             "predicted_ms": 1.0, "error_pct": -50.0}]
    drift = {"median": 2.0, "threshold": 0.08, "statistic": "min", "sentinels": [
        {"arch": "a", "table_ms": 1.0, "measured_ms": 2.0, "drift": 2.0, "n": 20}]}
    text = DemoResult(QUICK, "dev", "", Path("r.html"), rows, {}, None, "here",
                      drift=drift).summary()
    assert "drift x2.000 (+100.0 %, 1 sentinel)" in text and "2.00x slower" in text
    assert "drift" not in DemoResult(QUICK, "dev", "", Path("r.html"), rows, {}, None,
                                     "here").summary()


def test_demo_on_another_dataset_has_its_own_run_and_a_retraining_subset():
    from hwnas.demo import DEMO_SUBSET, FULL, QUICK, plan_for

    assert plan_for() is FULL and plan_for(quick=True) is QUICK
    p = plan_for(data="fashion-mnist")
    assert (p.run, p.data, p.subset) == ("demo-fashion-mnist", "fashion-mnist", DEMO_SUBSET)
    q = plan_for(quick=True, data="mnist:/some/where")
    assert q.run == "demo-quick-mnist" and q.trials == QUICK.trials and q.subset == DEMO_SUBSET


def test_demo_with_a_missing_dataset_is_one_line(home, cli, tmp_path):
    r = cli("demo", "--quick", "-q", "--data", f"fashion-mnist:{tmp_path / 'nope'}")
    assert_one_line_error(r, "no such folder")
    assert not (home / "runs" / "demo-quick-fashion-mnist" / "trials.csv").exists()
