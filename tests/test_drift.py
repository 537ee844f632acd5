"""Sentinels and drift (hwnas.profiling.drift): the sentinel picker, the layout that puts sentinels
in every chunk the runner makes, the drift and its warning line, and a device made
artificially slower by editing its table's sentinel entries: the warning fires, profile
refuses the chunk and re-measures it, the numbers land in the files; within the threshold
the chunk is merged without a word."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import put_space

from hwnas.onboard.runner import read_records
from hwnas.profiling.drift import (
    MAX_RETRIES,
    REJECTED,
    Drift,
    DriftSettings,
    drift_of,
    last,
    layout,
    note,
    sentinel_arch,
)
from hwnas.profiling.lut import LatencyTable, Stats

# enough samples per sentinel to judge (the quick protocol's 3 only warn), still fast
DECISIVE = dict(warmup=1, min_repeats=10, passes=2, burst_warmup=0, min_time_s=0.0,
                sample_ms=0.0)
SLOWER = 10.0  # the table's sentinel entries are divided by this: the device looks 10x slower
# beyond only when the device looks > 3x slower: the 10x edit crosses it, this shared VM's
# noise does not (a CI run under load re-timed the unedited sentinels 1.66x slow)
LOOSE = DriftSettings(threshold=2.0)


def _st(ms: float, n: int = 20) -> Stats:
    return Stats(ms, ms, ms, 0.0, n)


@pytest.fixture
def tiny_and_ref(tiny_in_home, ref_device):
    """The tiny space in HWNAS_HOME (loaded) and a local device 'ref' (1 thread) to profile it."""
    return tiny_in_home


def _protocol():
    from hwnas.profiling.profile import make_protocol

    return make_protocol(1, **DECISIVE)


def _profiled(space, networks=3):
    from hwnas.profiling.profile import profile

    profile("ref", space, 32, networks=networks, protocol=_protocol(), progress=False)
    return LatencyTable.load("ref")


def _slow_down(factor=SLOWER) -> dict[str, Stats]:
    """Divide every network entry of ref's table by ``factor``; the original entries."""
    t = LatencyTable.load("ref")
    old = dict(t.networks)
    t.networks = {k: Stats(*(v / factor for v in (s.min_ms, s.p10_ms, s.median_ms, s.iqr_ms)),
                           s.n) for k, s in old.items()}
    t.save()
    return old


def _records(home, kind):
    res = home / "runs" / "profile" / "ref" / "tiny-r32" / "results.jsonl"
    return [r for r in read_records(str(res)) if r["type"] == kind]


# ---- pieces ------------------------------------------------------------------------------------

def test_sentinels_span_the_table_latency_range():
    t = LatencyTable("d", networks={f"n{i}": _st(float(i)) for i in range(1, 11)})
    picks = t.sentinels(3)
    ms = [t.network_ms(k) for k in picks]
    assert len(picks) == 3 and ms == sorted(ms)
    assert ms[0] <= 3 and 4 <= ms[1] <= 7 and ms[2] >= 8  # low, middle, high
    assert LatencyTable("d").sentinels(3) == []  # a first profile: no sentinels
    assert len(LatencyTable("d", networks={"a": _st(1.0)}).sentinels(3)) == 1


def test_layout_puts_the_sentinels_in_every_chunk_the_runner_makes(tmp_path):
    from hwnas.onboard.bench import Protocol
    from hwnas.onboard.runner import _chunks

    sizes = [300, 900, 200, 200, 700, 100, 100, 100, 100, 800, 50, 50, 400]
    (tmp_path / "m").mkdir()
    pending = []
    for i, b in enumerate(sizes):
        (tmp_path / "m" / f"e{i}").write_bytes(b"x" * b)
        pending.append({"id": f"e{i}", "kind": "block", "file": f"m/e{i}"})
    sents = []
    for j in range(3):
        (tmp_path / "m" / f"s{j}").write_bytes(b"x" * 60)
        sents.append({"id": f"sentinel:r0:c0:arch{j}", "kind": "sentinel", "file": f"m/s{j}"})
    p = Protocol(chunk=6, chunk_mb=2000 / 2**20)

    def mb(e):
        return (tmp_path / e["file"]).stat().st_size / 2**20

    out = layout(pending, sents, p.chunk, p.chunk_mb, mb, run=7)
    assert [e["id"] for e in out if e["kind"] == "block"] == [e["id"] for e in pending]
    ids = [e["id"] for e in out]
    assert len(ids) == len(set(ids))
    chunks = _chunks(out, str(tmp_path), p)  # the runner's own chunking
    assert len(chunks) >= 3
    for c in chunks:
        arch = sorted(sentinel_arch(e["id"]) for e in c if e["kind"] == "sentinel")
        assert arch == ["arch0", "arch1", "arch2"], [e["id"] for e in c]
        at = [i for i, e in enumerate(c) if e["kind"] == "sentinel"]
        if len(c) - 3 >= 3:  # spread among the entries, not bunched together
            assert at[-1] - at[0] > 2, [e["id"] for e in c]
        assert all(e["id"].startswith("sentinel:r7:") for e in c if e["kind"] == "sentinel")


def test_drift_and_its_warning_line():
    t = LatencyTable("dev", networks={"a": _st(1.0), "b": _st(2.0), "c": _st(4.0)})
    d = drift_of(t, {"a": _st(2.1), "b": _st(3.9), "c": _st(8.0)})
    assert d.median == pytest.approx(2.0, rel=1e-3) and d.beyond and d.decisive
    w = d.warning("dev", "this run")
    assert "\n" not in w and "2.00x slower (+100 %)" in w and "busy" in w and "throttl" in w
    assert "'dev'" in w and "3 sentinel" in w and "+-8 %" in w
    f = drift_of(t, {"a": _st(0.8), "b": _st(1.6)})
    assert f.median == pytest.approx(0.8) and "1.25x faster (-20 %)" in f.warning("dev")
    ok = drift_of(t, {"a": _st(1.03), "b": _st(1.9)}, threshold=0.08)
    assert not ok.beyond and "within +-8 %" in note(ok)
    noisy = drift_of(t, {"a": _st(2.0, n=3)})
    assert noisy.beyond and not noisy.decisive and "may be noise" in noisy.warning("dev")
    assert drift_of(t, {"unknown": _st(1.0)}) is None
    assert Drift.from_dict(json.loads(json.dumps(d.to_dict()))).median == pytest.approx(d.median)


# ---- a device made slower ------------------------------------------------------------------------

def test_profile_refuses_a_drifted_chunk_and_measures_it_again(home, tiny_and_ref, monkeypatch, caplog):
    """The table's sentinels edited 10x faster than they run: the chunk is refused, the
    warning fires, and (the edit undone in between) the chunk measured again is merged."""
    import hwnas.profiling.drift as drift
    from hwnas.profiling.profile import profile

    _profiled(tiny_and_ref)
    old = _slow_down()
    real = drift.settle
    calls = []

    def settle(path, table, **kw):
        if any("re-measure" in c for c in calls):  # after the refusal: a threshold no noise of
            kw["threshold"] = 100.0  # this shared VM crosses (a re-measure ran 2x slow at times)
        out = real(path, table, **kw)
        calls.append([c.verdict for c in out])
        if any(c.verdict == "re-measure" for c in out):
            table.networks.update(old)  # the device is "fast again" for the next round
        return out

    monkeypatch.setattr(drift, "settle", settle)
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        rep = profile("ref", tiny_and_ref, 32, networks=5, protocol=_protocol(), progress=False,
                      drift=LOOSE)
    warned = [r.getMessage() for r in caplog.records if "sentinel" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert "x slower" in warned[0] and "refusing to merge" in warned[0]
    assert ["re-measure"] in calls and calls[-1] == ["merged"]
    assert rep.remeasured == 1 and rep.unmerged == 0 and rep.measured_networks == 2
    assert "1 chunk(s) re-measured" in rep.summary()
    assert len(LatencyTable.load("ref").networks) == 5
    # the numbers in the files: a drift record per chunk, the refused results aside
    recs = _records(home, "drift")
    assert [r["verdict"] for r in recs] == ["re-measure", "merged"]
    assert recs[0]["median"] > 1 + LOOSE.threshold and recs[0]["beyond"]
    assert abs(recs[1]["median"] - 1) < abs(recs[0]["median"] - 1)  # the edit undone
    assert all(len(r["sentinels"]) == 3 and {"arch", "table_ms", "measured_ms", "drift", "n"}
               <= set(r["sentinels"][0]) for r in recs)
    aside = read_records(str(home / "runs" / "profile" / "ref" / "tiny-r32" / REJECTED))
    moved = {r["id"] for r in aside if r["type"] == "result"}
    assert moved == set(recs[0]["moved"]) and len(moved) == 2
    results = [r["id"] for r in _records(home, "result")]
    assert len(results) == len(set(results)) == len(tiny_and_ref.pieces(32)) + 5  # no sentinel there
    assert len(_records(home, "sentinel")) == 6  # 3 per chunk, kept as "sentinel" records
    d, meta = last(home / "latency_tables" / "ref")
    assert meta["what"] == "profile" and d.median > 1 and len(d.sentinels) == 6  # 10x + ~1x


def test_profile_gives_up_after_the_retries_and_accept_drift_merges(home, tiny_and_ref, caplog):
    from hwnas.profiling.measure import measure
    from hwnas.profiling.profile import profile

    _profiled(tiny_and_ref)
    _slow_down()
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        rep = profile("ref", tiny_and_ref, 32, networks=5, protocol=_protocol(), progress=False,
                      drift=LOOSE)
    assert rep.remeasured == MAX_RETRIES and rep.unmerged == 2 and rep.measured_networks == 0
    assert f"{MAX_RETRIES} chunk(s) re-measured" in rep.summary()
    assert "2 entries left out of the table" in rep.summary()
    assert [r["verdict"] for r in _records(home, "drift")] == \
        ["re-measure"] * MAX_RETRIES + ["unmerged"]
    assert any("stay out of the table" in r.getMessage() for r in caplog.records)
    assert len(LatencyTable.load("ref").networks) == 3
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        rep = profile("ref", tiny_and_ref, 32, networks=5, protocol=_protocol(), progress=False,
                      drift=DriftSettings(threshold=LOOSE.threshold, accept=True))
    assert rep.measured_networks == 2 and rep.accepted == 1 and rep.remeasured == 0
    assert any("merged anyway (--accept-drift)" in r.getMessage() for r in caplog.records)
    assert _records(home, "drift")[-1]["verdict"] == "accepted"
    # hwnas measure times the sentinels too: the same drift, one warning line
    _slow_down()  # every network now, the two just merged too
    caplog.clear()
    a = tiny_and_ref.sample(seed=9, resolution=32)[0]
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        m = measure("ref", [a], protocol=_protocol(), progress=False, drift=LOOSE)
    assert set(m.stats) == {a.to_string()} and m.drift.beyond and m.drift.median > 2
    assert sum("this measurement" in r.getMessage() for r in caplog.records) == 1
    assert last(home / "latency_tables" / "ref")[1]["what"] == "measurement"


def test_within_the_threshold_no_warning_and_merged(home, tiny_and_ref, caplog):
    from hwnas.profiling.profile import profile

    _profiled(tiny_and_ref)
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        rep = profile("ref", tiny_and_ref, 32, networks=5, protocol=_protocol(), progress=False,
                      drift=LOOSE)
    assert not [r for r in caplog.records if "sentinel" in r.getMessage()]
    assert rep.measured_networks == 2 and rep.remeasured == 0 and not rep.drift.beyond
    assert [r["verdict"] for r in _records(home, "drift")] == ["merged"]
    assert not (home / "runs" / "profile" / "ref" / "tiny-r32" / REJECTED).exists()


# ---- where the drift is shown --------------------------------------------------------------------

def test_retrain_summary_and_report_show_the_drift_beside_the_errors():
    from hwnas.report import results_table
    from hwnas.retrain.run import format_summary

    t = LatencyTable("dev", networks={"a": _st(1.0), "b": _st(2.0)})
    d = drift_of(t, {"a": _st(2.0), "b": _st(4.0)}).to_dict()
    row = {"name": "mbv2-0.35", "kind": "baseline", "arch": "x", "params": 1e5, "macs": 1e6,
           "peak_act_bytes": 1e5, "predicted_ms": 1.0, "measured_median_ms": 2.1,
           "measured_iqr_ms": 0.1, "measured_n": 20, "error_pct": -50.0, "acc_mean": 0.5,
           "acc_std": 0.0, "seeds": "0", "epochs": 1, "statistic": "min",
           "measured_stat_ms": 2.0}
    plain = format_summary([row], {"drift": d})
    assert "drift x2.000 (+100.0 %, 2 sentinels)" in plain and "2.00x slower" in plain
    assert "drift-corr." not in plain
    corr = format_summary([row], {"drift": d, "drift_correct": True})
    assert "drift-corr." in corr.splitlines()[0] and "2.000" in corr.splitlines()[1]
    assert "+0.0" in corr.splitlines()[1]  # 1.0 ms x 2 = the measured 2.0 ms
    tab = results_table([row], drift=d, correct=True)
    assert any(c.startswith("drift-corrected") for c in tab.columns)
    assert "2.000 ms (+0.0 %)" in tab.rows[0] and "2.00x slower" in tab.caption
    assert "drift" not in " ".join(results_table([row]).columns)


# ---- over SSH: the host's copy of the results is the one settled --------------------------------

@pytest.mark.ssh
def test_refused_chunks_are_measured_again_over_ssh(cli, home, ssh_server):
    import sys

    put_space(home)
    env = {"HWNAS_HOME": str(home), **ssh_server.env()}
    cli("device", "add", "ref", "--target", ssh_server.target, "--python", sys.executable,
        env=env, check=0)
    proto = ["--warmup", "1", "--min-repeats", "10", "--passes", "2", "--burst-warmup", "0",
             "--min-time", "0", "--sample-ms", "0"]
    args = ["profile", "--device", "ref", "--space", "tiny", "-r", "32", *proto]
    cli(*args, "--networks", "3", env=env, check=0)
    _slow_down()
    r = cli(*args, "--networks", "5", "--drift-threshold", "60", env=env, check=0)
    assert f"{MAX_RETRIES} chunk(s) re-measured" in r.stdout
    warned = [x for x in r.stderr.splitlines() if "refusing to merge" in x]
    assert len(warned) == MAX_RETRIES + 1 and all("x slower" in x for x in warned)
    assert [x["verdict"] for x in _records(home, "drift")] == \
        ["re-measure"] * MAX_RETRIES + ["unmerged"]
    assert len(LatencyTable.load("ref").networks) == 3
