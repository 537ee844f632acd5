"""`hwnas compare RUN1 RUN2 ...`: several runs' fronts on one offline page (issue 14.5).

The runs are copies of test_report's run 'r' with another estimator, device or precision in
their config.json, and scaled latencies for the second device."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
import test_report
from conftest import assert_one_line_error, run_cli

made = test_report.made  # the module-scoped fixture: HWNAS_HOME with one finished run 'r'
env = test_report.env  # ... as this test's HWNAS_HOME and working folder


def _variant(env, name, scale=1.0, **config):
    """runs/<name>: a copy of run 'r' with ``config`` on top and latencies x ``scale``."""
    run = env["home"] / "runs" / name
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(env["run_dir"], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(config)
    (run / "config.json").write_text(json.dumps(cfg))
    for f in ("trials.csv", "pareto.csv"):
        with open(run / f, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            if r.get("latency_ms"):
                r["latency_ms"] = str(float(r["latency_ms"]) * scale)
        with open(run / f, "w", newline="") as fh:
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return run


def test_compare_data_panels_labels_and_refusals(env):
    from hwnas.errors import HwnasError
    from hwnas.report import compare_data
    from hwnas.search import load_run

    _variant(env, "zc", injected_estimators=False, accuracy="zero-cost",
             accuracy_estimator="naswot")
    _variant(env, "sn", injected_estimators=False, accuracy="supernet",
             accuracy_estimator="supernet")
    _variant(env, "pi", scale=4.0, injected_estimators=False, accuracy="zero-cost",
             accuracy_estimator="naswot", device="pi5")
    zc, sn, pi = (load_run(n) for n in ("zc", "sn", "pi"))

    d = compare_data([zc, sn])
    assert d.panels == ["NASWOT score", "supernet val. accuracy"]  # scores never share an axis
    assert d.differs == ["score"]
    assert [c.label for c in d.runs] == ["zc (NASWOT score)", "sn (supernet val. accuracy)"]
    assert len(d.runs[0].front_x) == len(zc.pareto) and d.runs[0].front_x == sorted(d.runs[0].front_x)
    assert any("estimators differ" in n for n in d.notes)
    assert d.staircase and d.has_retrained

    d = compare_data([zc, pi])
    assert d.panels == ["NASWOT score"] and d.differs == ["device"]
    assert d.runs[1].label == "pi (pi5)"
    assert min(d.runs[1].front_x) == pytest.approx(4 * min(d.runs[0].front_x))
    assert any("different devices" in n for n in d.notes)
    assert len(d.table.rows) == 2 and d.table.rows[1][1] == "pi5"

    _variant(env, "p3", objectives=["accuracy", "latency", "params"])
    with pytest.raises(HwnasError, match="different objectives"):
        compare_data([zc, load_run("p3")])
    with pytest.raises(HwnasError, match="at least two"):
        compare_data([zc])
    with pytest.raises(HwnasError, match="listed twice"):
        compare_data([zc, load_run("zc")])


def test_compare_figure_one_panel_per_estimator(env):
    from hwnas.report import compare_data, draw_compare
    from hwnas.search import load_run

    _variant(env, "zc", injected_estimators=False, accuracy_estimator="naswot")
    _variant(env, "sn", injected_estimators=False, accuracy="supernet",
             accuracy_estimator="supernet")
    d = compare_data([load_run("zc"), load_run("sn")])
    fig = draw_compare(d)
    fronts = [t for t in fig.data if t.meta == "front"]
    assert [len(t.x) for t in fronts] == [len(c.front_x) for c in d.runs]
    assert fronts[0].yaxis == "y" and fronts[1].yaxis == "y2"  # own panels
    assert fronts[0].line.shape == "hv" and fronts[0].line.color != fronts[1].line.color
    assert fig.layout.yaxis.title.text == "NASWOT score"
    assert fig.layout.yaxis2.title.text == "supernet val. accuracy"
    retrained = [t for t in fig.data if t.meta == "retrained"]
    assert sum(len(t.x) for t in retrained) == 2 * len(env["retrain"])
    assert {t.yaxis for t in retrained} == {"y3"}
    assert fig.layout.yaxis3.title.text == "test accuracy (trained)"


def test_compare_cli_writes_one_offline_page(env):
    _variant(env, "zc", injected_estimators=False, accuracy_estimator="naswot")
    _variant(env, "i8", precision="int8", injected_estimators=False, accuracy_estimator="naswot")
    e = {"HWNAS_HOME": str(env["home"])}
    r = run_cli("compare", "zc", "i8", env=e, cwd=env["home"], check=0)
    page_path = env["home"] / "runs" / "compare" / "zc--i8.html"
    assert str(page_path) in r.stdout and "Traceback" not in r.stderr
    page = page_path.read_text()
    assert not re.search(r"<script[^>]+src=", page), "no external scripts"
    assert not re.search(r"<link[^>]+href=[\"']?https?:", page)
    assert len(re.findall(r"plotly\.js v\d+\.\d+\.\d+", page)) == 1
    assert 'id="fig-compare"' in page and '<table id="table-compare">' in page
    assert "zc (fp32)" in page and "i8 (int8)" in page  # what sets the runs apart
    body = page.split('<table id="table-compare">')[1].split("</table>")[0]
    assert body.count("<tr>") == 3

    _variant(env, "p3", objectives=["accuracy", "latency", "params"])
    r = run_cli("compare", "zc", "p3", env=e, cwd=env["home"])
    assert_one_line_error(r, "different objectives", "zc: accuracy, latency",
                          "p3: accuracy, latency, params")
    r = run_cli("compare", "zc", "nope", env=e, cwd=env["home"])
    assert_one_line_error(r, "nope", "not found")


def test_compare_shows_sampler_seed_budget_and_trials_per_run(env, capsys):
    """issue 24.5: each run's sampler, seed, budget and trials asked for, in the table and
    in what the command prints; the score is named by its column."""
    from hwnas.cli import main

    cfg = json.loads((env["run_dir"] / "config.json").read_text())
    st = dict(cfg["settings"])
    _variant(env, "ta", settings={**st, "sampler": "tpe", "seed": 7, "trials": 33},
             latency_budget_ms=2.5, max_params=None)
    _variant(env, "tb", settings={**st, "sampler": "random", "seed": 3, "trials": 44},
             latency_budget_ms=None, max_params=500_000)
    from hwnas.report import compare_data
    from hwnas.search import load_run

    d = compare_data([load_run("ta"), load_run("tb")])
    cols = d.table.columns
    a, b = ({c: v for c, v in zip(cols, row, strict=True)} for row in d.table.rows)
    assert (a["sampler"], a["seed"], a["trials asked"]) == ("tpe", "7", "33")
    assert (b["sampler"], b["seed"], b["trials asked"]) == ("random", "3", "44")
    assert a["budget"] == "<= 2.5 ms" and b["budget"] == "<= 500.0 k params"
    capsys.readouterr()
    assert main(["compare", "ta", "tb", "-o", str(env["home"] / "c.html")]) == 0
    out = capsys.readouterr().out
    assert "sampler tpe, seed 7, budget <= 2.5 ms, 33 trials asked" in out
    assert "sampler random, seed 3" in out and "44 trials asked" in out
