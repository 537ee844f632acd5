"""The report marks precision: each trial / Pareto point of a run searched with
``--precision int8|search`` by marker symbol, legend entry and hover; the retrained models'
int8 versions (retrain.csv's int8 columns) in the retrain table, the lower panel and the
parity plot. Hand-written rows: the report's data functions are pure."""

from __future__ import annotations

import csv
import json

import pytest

from hwnas.report.data import (
    as_retrained,
    objective_space_data,
    pareto_table,
    parity_data,
    results_table,
)
from hwnas.report.figures import draw_objective_space, draw_parity
from hwnas.runs import read_rows


def trial(n, arch, acc, lat, precision=None, feasible=True):
    t = {"number": n, "state": "COMPLETE", "arch": arch, "naswot_score": acc, "latency_ms": lat,
         "params": 1000, "macs": 10_000, "memory_bytes": 4096, "feasible": feasible}
    if precision is not None:
        t["precision"] = precision
    return t


def pareto_row(t):
    return {"trial": t["number"], "arch": t["arch"], "naswot_score": t["naswot_score"],
            "latency_ms": t["latency_ms"], "precision": t.get("precision"),
            **{k: t[k] for k in ("params", "macs", "memory_bytes")},
            "file": f"winners/{t['arch']}.yaml"}


CFG = {"objectives": ["accuracy", "latency"], "space": "tiny", "device": "d", "resolution": 32}


def test_fp32_run_looks_as_before():
    ts = [trial(0, "a", 0.5, 2.0), trial(1, "b", 0.6, 3.0), trial(2, "c", 0.4, 4.0, feasible=False)]
    d = objective_space_data(ts, [pareto_row(ts[0]), pareto_row(ts[1])], CFG)
    assert [g.kind for g in d.groups] == ["infeasible", "feasible", "front"]
    assert [g.name for g in d.groups] == ["infeasible trials", "feasible trials", "Pareto front"]
    assert all(g.precision is None for g in d.groups)
    assert not any("precision" in h for g in d.groups for h in g.hover)
    assert "Marker symbol" not in d.caption
    fig = draw_objective_space(d)
    assert all(tr.marker.symbol is None for tr in fig.data if tr.meta == "trials")
    # an explicit fp32 column changes nothing
    ts32 = [dict(t, precision="fp32") for t in ts]
    d32 = objective_space_data(ts32, [pareto_row(ts32[0])], dict(CFG, precision="fp32"))
    assert [g.name for g in d32.groups] == ["infeasible trials", "feasible trials", "Pareto front"]
    assert "precision" not in pareto_table([pareto_row(ts[0])], CFG).columns


def test_search_run_marks_each_points_precision():
    # the same arch in both precisions; only its int8 trial is on the front
    ts = [trial(0, "a", 0.5, 2.0, "fp32"), trial(1, "a", 0.5, 1.2, "int8"),
          trial(2, "b", 0.7, 3.0, "fp32"), trial(3, "c", 0.3, 5.0, "int8"),
          trial(4, "d", 0.2, 9.0, "int8", feasible=False)]
    front = [pareto_row(ts[1]), pareto_row(ts[2])]
    cfg = dict(CFG, precision="search")
    d = objective_space_data(ts, front, cfg)
    by = {(g.kind, g.precision): g for g in d.groups}
    assert set(by) == {("infeasible", "int8"), ("feasible", "fp32"), ("feasible", "int8"),
                       ("front", "fp32"), ("front", "int8")}
    assert by["front", "int8"].numbers == [1] and by["front", "fp32"].numbers == [2]
    assert by["feasible", "fp32"].numbers == [0]  # arch a in fp32 is not on the front
    assert by["feasible", "int8"].numbers == [3] and by["infeasible", "int8"].numbers == [4]
    assert by["front", "int8"].legend.startswith("Pareto front, int8 (")
    assert "precision: <b>int8</b>" in by["front", "int8"].hover[0]
    assert "precision: <b>fp32</b>" in by["front", "fp32"].hover[0]
    assert "Marker symbol" in d.caption
    fig = draw_objective_space(d)
    sym = {tr.name.split(" (")[0]: tr.marker.symbol for tr in fig.data if tr.meta == "trials"}
    assert sym["Pareto front, int8"] == "square" and sym["Pareto front, fp32"] == "circle"
    assert sym["feasible trials, int8"] == "square"
    assert sum(len(tr.x) for tr in fig.data if tr.meta == "trials") == len(ts)
    # the Pareto table says each row's precision
    t = pareto_table(front, cfg)
    i = t.columns.index("precision")
    assert [r[i] for r in t.rows] == ["int8", "fp32"]
    assert all(len(tt) == len(t.columns) for tt in t.titles)


def test_int8_run_without_precision_column_is_int8():
    """A run searched with --precision int8 whose rows lack the column: the config says it."""
    ts = [trial(0, "a", 0.5, 2.0), trial(1, "b", 0.6, 3.0)]
    d = objective_space_data(ts, [pareto_row(ts[1])], dict(CFG, precision="int8"))
    assert {g.precision for g in d.groups} == {"int8"}
    assert [g.name for g in d.groups] == ["feasible trials, int8", "Pareto front, int8"]


def retrain_row(name, kind, meas, acc, *, int8=None, precision=None):
    r = {"name": name, "kind": kind, "arch": f"arch-{name}", "predicted_ms": meas * 1.05,
         "measured_median_ms": meas, "measured_iqr_ms": 0.01, "measured_n": 50,
         "measured_stat_ms": meas, "statistic": "median", "acc_mean": acc, "acc_std": 0.01,
         "seeds": "0;1", "epochs": 2, "params": 1000, "macs": 10_000, "peak_act_bytes": 4096}
    if precision:
        r["precision"] = precision
    if int8:
        m8, a8 = int8
        r.update(onnx_int8=f"models/{name}.int8.onnx", acc_onnx_fp32=acc + 0.002, acc_int8=a8,
                 acc_int8_delta_pp=100 * (a8 - acc - 0.002), measured_int8_median_ms=m8,
                 measured_int8_iqr_ms=0.02, measured_int8_stat_ms=m8,
                 predicted_int8_ms=m8 * 0.9, int8_speedup=meas / m8)
    return r


def test_retrain_rows_with_int8_in_table_figure_and_parity():
    rows = [retrain_row("w_fast", "winner", 2.0, 0.80, int8=(1.0, 0.79), precision="int8"),
            retrain_row("w_slow", "winner", 4.0, 0.85, int8=(3.0, 0.84), precision="fp32"),
            retrain_row("mbv2-0.5", "baseline", 3.0, 0.82)]  # no int8 for this one
    rows[1]["int8_speedup"] = None  # computed from the two measurements when missing
    rts = [as_retrained(r) for r in rows]
    assert rts[0].int8.measured_ms == 1.0 and rts[0].int8.accuracy == 0.79
    assert rts[1].int8.speedup == pytest.approx(4.0 / 3.0)
    assert rts[2].int8 is None and rts[0].precision == "int8"
    assert "int8 (static QDQ) test accuracy: 0.7900" in rts[0].hover
    assert "precision chosen by the search: <b>int8</b>" in rts[0].hover

    t = results_table(rows)
    cols = t.columns
    for c in ("precision (search)", "int8 test accuracy (ONNX, vs fp32 ONNX)",
              "int8 measured (median)", "int8 speed-up"):
        assert c in cols
    assert cols.index("error") < cols.index("int8 measured (median)") < cols.index("params")
    assert all(len(r) == len(cols) for r in t.rows)
    by = {r[0]: dict(zip(cols, r, strict=True)) for r in t.rows}
    assert by["W1"]["int8 measured (median)"] == "1.000 ms"
    assert by["W1"]["int8 speed-up"] == "2.00x" and by["W2"]["int8 speed-up"] == "1.33x"
    assert by["W1"]["int8 test accuracy (ONNX, vs fp32 ONNX)"].startswith("0.7900 (-1.20 pp vs 0.8020)")
    assert by["W1"]["precision (search)"] == "int8" and by["mbv2-0.5"]["precision (search)"] == "-"
    assert by["mbv2-0.5"]["int8 speed-up"] == "-" and by["W1"]["params"] == "1.0 k"
    assert "speed-up = fp32" in t.caption

    d = objective_space_data([], [], CFG, rows)
    assert "Open star/diamond" in d.caption
    fig = draw_objective_space(d)
    q8 = [tr for tr in fig.data if tr.meta == "measured-int8"]
    assert len(q8) == 1 and list(q8[0].x) == [1.0, 3.0] and list(q8[0].y) == [0.79, 0.84]
    assert q8[0].marker.symbol == "star-open"
    link = next(tr for tr in fig.data if tr.meta == "int8-link")
    assert list(link.x) == [2.0, 1.0, None, 4.0, 3.0, None]
    assert list(link.y) == [0.80, 0.79, None, 0.85, 0.84, None]

    p = parity_data(retrain=rows)
    s8 = next(s for s in p.series if s.kind == "winner-int8")
    assert s8.measured == [1.0, 3.0] and s8.predicted == pytest.approx([0.9, 2.7])
    assert p.metrics[s8.name]["mape"] == pytest.approx(10.0)
    assert not any(s.kind == "baseline-int8" for s in p.series)
    assert any(tr.marker.symbol == "star-open" for tr in draw_parity(p).data)


def test_fp32_retrain_table_unchanged():
    rows = [retrain_row("w", "winner", 2.0, 0.8), retrain_row("mbv2-0.5", "baseline", 3.0, 0.82)]
    t = results_table(rows)
    assert not any("int8" in c or "precision" in c for c in t.columns)
    d = objective_space_data([], [], CFG, rows)
    assert not any(tr.meta in ("measured-int8", "int8-link") for tr in draw_objective_space(d).data)
    assert not any(s.kind.endswith("int8") for s in parity_data(retrain=rows).series)


def _write_csv(path, rows):
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r.get(k) for k in cols})


def test_report_of_an_int8_run_end_to_end(home, tmp_path):
    """A run folder written by hand (precision search, retrain --int8): the typed reader reads
    the int8 columns as numbers and report.html shows both precisions."""
    from hwnas.report import write_report

    run = tmp_path / "runs" / "r8"
    (run / "winners").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(dict(CFG, precision="search")))
    ts = [trial(0, "a", 0.5, 2.0, "fp32"), trial(1, "a", 0.5, 1.2, "int8")]
    _write_csv(run / "trials.csv", ts)
    _write_csv(run / "pareto.csv", [pareto_row(ts[1])])
    rows = [retrain_row("w_fast", "winner", 2.0, 0.80, int8=(1.0, 0.79), precision="int8"),
            retrain_row("mbv2-0.5", "baseline", 3.0, 0.82)]
    _write_csv(run / "retrain.csv", rows)
    got = read_rows(run / "retrain.csv")
    assert got[0]["measured_int8_stat_ms"] == 1.0 and got[0]["int8_speedup"] == 2.0
    assert got[1]["acc_int8"] is None and got[0]["precision"] == "int8"
    res = write_report(run, predictor=False)
    page = res.path.read_text()
    assert "int8 speed-up" in page and "Pareto front, int8" in page
    assert "precision: \\u003cb\\u003eint8" in page  # a hover box, in plotly's JSON
    assert res.data.tables[0].rows[0][res.data.tables[0].columns.index("int8 speed-up")] == "2.00x"


def test_latex_tables_show_int8_and_precision():
    from hwnas.report.latex import pareto_latex, retrain_latex

    rows = [retrain_row("w", "winner", 2.0, 0.80, int8=(1.0, 0.79)),
            retrain_row("mbv2-0.5", "baseline", 3.0, 0.82)]
    tex = retrain_latex(rows)
    assert "Int8 speed-up" in tex and "2.00x" in tex and "79.00" in tex
    assert r"\begin{tabular}{llrrrrrrrrr}" in tex  # 11 columns, as many alignments
    assert "Int8" not in retrain_latex(rows[1:])
    ts = [trial(0, "a", 0.5, 1.2, "int8"), trial(1, "b", 0.7, 3.0, "fp32")]
    tex = pareto_latex([pareto_row(t) for t in ts], dict(CFG, precision="search"))
    assert "Precision" in tex and "int8" in tex and r"{rlrrrrr}" in tex
    assert "Precision" not in pareto_latex([pareto_row(trial(0, "a", 0.5, 1.2))], CFG)
