"""The report as a student pastes it into a paper (issue 14.5): visible predicted markers,
equal log parity axes with round ticks, the score named for its estimator, no spread with
one seed, trials and distinct archs counted, pdf export, booktabs LaTeX, the predictor
ablation figure. Tests read the figure data and the written files, not pixels."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
import types
from pathlib import Path

import pytest
import test_report
from conftest import run_cli

made = test_report.made  # the module-scoped fixture: HWNAS_HOME with one finished run 'r'
env = test_report.env  # ... as this test's HWNAS_HOME and working folder


def _copy(env, tmp_path, **config):
    """A copy of run 'r' whose config.json has ``config`` on top."""
    run = tmp_path / "runs" / "c"
    shutil.copytree(env["run_dir"], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(config)
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def _traces(fig, meta):
    return [t for t in fig.data if t.meta == meta]


# ---- 1. predicted markers ---------------------------------------------------------------------

def _is_whiteish(color: str) -> bool:
    c = str(color).strip().lower()
    if c in ("white", "#fff", "#ffffff", "rgb(255,255,255)", "rgba(0,0,0,0)", "transparent"):
        return True
    m = re.fullmatch(r"#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})", c)
    return bool(m) and min(int(x, 16) for x in m.groups()) > 0xE0


def test_predicted_markers_are_drawn_in_the_kind_colour(env):
    from hwnas.report import COLORS, build_report, draw_figures

    d = build_report("r", predictor=False)
    fig = draw_figures(d)["objective"]
    pred = _traces(fig, "predicted")
    assert {t.legendgroup for t in pred} == {"winner", "baseline"}
    for t in pred:
        m = t.marker
        # an open symbol is drawn with marker.color: it must be the kind's colour, not white
        assert m.symbol.endswith("-open")
        assert not _is_whiteish(m.color), m.color
        assert m.color == COLORS[t.legendgroup]
        assert m.line.width >= 2 and m.size >= 10
    measured = {t.legendgroup: t.marker.color for t in _traces(fig, "measured")}
    assert {t.legendgroup: t.marker.color for t in pred} == measured


# ---- 2. parity axes -------------------------------------------------------------------------------

def test_log_ticks_are_round_and_readable():
    from hwnas.report import log_ticks, tick_text

    assert tick_text(log_ticks(0.12, 2.875)) == ["0.2", "0.5", "1", "2"]
    assert tick_text(log_ticks(0.08, 2.5)) == ["0.1", "0.2", "0.5", "1", "2"]
    narrow = log_ticks(1.0, 1.6)  # less than one 1-2-5 step: finer round values
    assert len(narrow) >= 3 and all(1.0 <= t <= 1.6 for t in narrow)
    wide = log_ticks(0.01, 5000)
    assert 3 <= len(wide) <= 9 and wide == sorted(wide)
    for t in narrow + wide:
        assert len(f"{t:g}") <= 6, t  # no 0.30000000000000004
    assert log_ticks(0, 1) == [] and log_ticks(2, 1) == []


def test_parity_axes_are_equal_log_with_the_same_round_ticks():
    from hwnas.report import draw_parity, parity_data

    measured = {f"a{i}": v for i, v in enumerate((0.15, 0.3, 0.7, 1.1, 2.3))}
    d = parity_data(measured, lambda keys: [measured[k] * 1.05 for k in keys])
    fig = draw_parity(d)
    x, y = fig.layout.xaxis, fig.layout.yaxis
    assert x.type == y.type == "log"
    assert tuple(x.range) == tuple(y.range)
    assert 10 ** x.range[0] <= 0.15 and 10 ** x.range[1] >= 2.3 * 1.05
    assert list(x.tickvals) == list(y.tickvals) == d.ticks
    assert list(x.ticktext) == list(y.ticktext) == ["0.2", "0.5", "1", "2"]
    assert y.scaleanchor == "x" and y.scaleratio == 1
    assert "ms" in x.title.text and "ms" in y.title.text


# ---- 3. the score's name --------------------------------------------------------------------------

@pytest.mark.parametrize(("cfg", "label"), [
    ({"accuracy": "zero-cost", "accuracy_estimator": "naswot"}, "NASWOT score"),
    ({"accuracy": "supernet", "accuracy_estimator": "supernet"}, "supernet val. accuracy"),
    ({"accuracy": "train", "accuracy_estimator": "short-train"}, "short-training val. accuracy"),
])
def test_the_score_is_named_for_its_estimator(env, tmp_path, cfg, label):
    from hwnas.report import build_report, draw_figures, render_html

    run = _copy(env, tmp_path, injected_estimators=False, **cfg)
    d = build_report(run, predictor=False)
    figs = draw_figures(d)
    assert figs["objective"].layout.yaxis.title.text == label
    pareto = next(t for t in d.tables if t.id == "table-pareto")
    assert pareto.columns[1] == label
    hover = d.objective.groups[-1].hover[0]
    assert f"{label}:" in hover
    page = render_html(d, figs)
    head = page.split('<table id="table-pareto">')[1].split("</thead>")[0]
    assert f"<th>{label}</th>" in head
    if "accuracy" not in label:  # a NASWOT score is never called an accuracy
        assert "accuracy" not in head
        assert "accuracy" not in figs["objective"].layout.yaxis.title.text
        assert "accuracy (estimate)" not in hover and "accuracy estimate" not in hover
        assert "estimated accuracy" not in d.hypervolume.caption


def test_an_injected_estimator_is_not_called_accuracy(env):
    from hwnas.report import build_report

    d = build_report("r", predictor=False)  # the fixture's run has injected functions
    assert "accuracy" not in d.objective.y_label and "injected" in d.objective.y_label


# ---- 4. one seed -----------------------------------------------------------------------------------

ONE_SEED = {"name": "w1", "kind": "winner", "arch": "x", "predicted_ms": 1.0,
            "measured_median_ms": 1.1, "acc_mean": 0.81234, "acc_std": 0.0, "seeds": "0",
            "epochs": 2}
TWO_SEEDS = {**ONE_SEED, "name": "w2", "acc_std": 0.0123, "seeds": "0;1",
             "measured_median_ms": 1.3}


def test_one_seed_shows_no_spread():
    from hwnas.report import draw_objective_space, fmt_acc, objective_space_data, results_table
    from hwnas.report.latex import retrain_latex

    t = results_table([ONE_SEED, TWO_SEEDS])
    col = t.columns.index("test accuracy (trained)")
    one, two = (row[col] for row in t.rows)  # winners by measured latency: w1 first
    assert "+-" not in one and "0.0000" not in one and "(1 seed, 2 ep.)" in one
    assert one.startswith("0.8123 ")
    assert "0.8123 +- 0.0123" in two
    d = objective_space_data([], [], {}, [ONE_SEED, TWO_SEEDS])
    assert [r.n_seeds for r in d.retrained] == [1, 2]
    assert "+-" not in d.retrained[0].hover and "0.8123 over 1 seed" in d.retrained[0].hover
    assert fmt_acc(0.81234, 0.0, 1) == "0.8123 (n=1)" and fmt_acc(0.8, 0.01, 3) == "0.8000 +- 0.0100"
    fig = draw_objective_space(d)
    bars = next(tr for tr in fig.data if tr.meta == "measured").error_y.array
    assert bars[0] is None and bars[1] == pytest.approx(0.0123)  # no bar for one seed
    tex = retrain_latex([ONE_SEED, TWO_SEEDS])
    rows = _tex_rows(tex)
    assert r"\pm" not in rows[0] and r"81.23 $\pm$ 1.23" in rows[1]


# ---- 5. trials and archs ------------------------------------------------------------------------------

def test_legend_counts_trials_and_distinct_archs():
    from hwnas.report import draw_objective_space, objective_space_data, pareto_table

    archs = ["a", "a", "b", "c", "c", "c"]
    trials = [{"number": i, "state": "COMPLETE", "arch": a, "naswot_score": 0.5 + 0.1 * (a != "c"),
               "latency_ms": 1.0 + i, "feasible": True} for i, a in enumerate(archs)]
    pareto = [{"trial": 0, "arch": "a", "naswot_score": 0.6, "latency_ms": 1.0},
              {"trial": 2, "arch": "b", "naswot_score": 0.6, "latency_ms": 3.0}]
    d = objective_space_data(trials, pareto, {"objectives": ["accuracy", "latency"]})
    by = {g.kind: g for g in d.groups}
    assert (len(by["front"].x), by["front"].n_archs) == (3, 2)
    assert (len(by["feasible"].x), by["feasible"].n_archs) == (3, 1)
    names = {t.name for t in draw_objective_space(d).data if t.meta == "trials"}
    assert "Pareto front (3 trials, 2 distinct archs)" in names
    assert "feasible trials (3 trials, 1 distinct arch)" in names
    assert d.n_archs == 3 and "6 trials, 3 distinct archs" in d.caption
    t = pareto_table(pareto, {"objectives": ["accuracy", "latency"]})
    assert t.title.endswith("2 archs") and len(t.rows) == 2


# ---- 6. image export ----------------------------------------------------------------------------------

def test_images_pdf_without_kaleido_says_what_to_install(env, tmp_path):
    fake = tmp_path / "nokaleido"
    fake.mkdir()
    (fake / "kaleido.py").write_text("raise ImportError('no kaleido here')\n")
    path = os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])
    r = run_cli("view", "r", "--images", "pdf", "--no-predictor", cwd=env["home"], check=0,
                env={"HWNAS_HOME": str(env["home"]), "PYTHONPATH": path})
    lines = [x for x in r.stderr.splitlines() if "kaleido" in x]
    assert len(lines) == 1 and "pip install kaleido" in lines[0] and "pdf" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (env["run_dir"] / "figures" / "objective.pdf").exists()


def test_images_pdf_with_kaleido(env, tmp_path):
    pytest.importorskip("kaleido", reason="pip install kaleido")
    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        pytest.skip("kaleido needs Chrome or Chromium")
    from hwnas.report import build_report, draw_figures, export_images

    figs = draw_figures(build_report("r", predictor=False))
    t0 = time.monotonic()
    out = export_images({k: figs[k] for k in ("objective", "parity")}, tmp_path, ["pdf", "svg"])
    took = time.monotonic() - t0
    assert [p.name for p in out] == ["objective.pdf", "objective.svg", "parity.pdf", "parity.svg"]
    assert out[0].read_bytes().startswith(b"%PDF")
    svg = out[3].read_text()
    w, h = (float(x) for x in re.search(r'width="([\d.]+)" height="([\d.]+)"', svg).groups())
    assert (w, h) == (figs["parity"].layout.width, figs["parity"].layout.height)  # its own size
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out[0].stat().st_mode) == 0o666 & ~umask
    print(f"4 images in {took:.1f} s")


# ---- 7. LaTeX --------------------------------------------------------------------------------------------

def _tex_rows(tex: str) -> list[str]:
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0]
    return [x for x in body.splitlines() if x.strip()]


def test_tex_escape():
    from hwnas.report import tex_escape

    assert tex_escape("a_b & 5% +- #1 {x} >= 2") == \
        r"a\_b \& 5\% $\pm$ \#1 \{x\} $\geq$ 2"


def test_view_latex_writes_booktabs_tables(env):
    from hwnas.search import load_run

    r = run_cli("view", "r", "--latex", "--no-predictor", cwd=env["home"], check=0,
                env={"HWNAS_HOME": str(env["home"])})
    tables = env["run_dir"] / "tables"
    printed = [Path(x) for x in r.stdout.splitlines() if x.endswith(".tex")]
    assert printed == [tables / "retrain.tex", tables / "pareto.tex"]
    pareto = load_run("r").pareto
    for p, n, cols in ((printed[0], len(env["retrain"]), 8), (printed[1], len(pareto), 6)):
        tex = p.read_text()
        assert r"\begin{tabular}" in tex and tex.count(r"\toprule") == 1
        assert tex.count(r"\midrule") == 1 and tex.count(r"\bottomrule") == 1
        assert r"\hline" not in tex
        head = tex.split("\\toprule\n")[1].split("\n")[0]
        rows = _tex_rows(tex)
        assert len(rows) == n
        for line in [head, *rows]:
            assert line.endswith(r" \\") and len(re.findall(r"(?<!\\)&", line)) == cols - 1
            assert not re.search(r"(?<!\\)[_%#]", line), line  # escaped
        assert re.search(r"\\caption\{.+\}", tex) and r"\label{tab:" in tex
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    retrain = printed[0].read_text()
    assert "W1" in retrain and "mbv2-0.35" in retrain
    # the fixture trained one seed per model: no spread, and the caption says so
    assert r"\pm" not in retrain and "one seed per model (no spread)" in retrain
    assert "Estimated score (injected function)" in printed[1].read_text()
    assert not list(tables.glob(".*tmp"))


# ---- 9. the predictor ablation --------------------------------------------------------------------------

EVAL_ROWS = [{"group": g, "predictor": p, "n": n, "rmse_ms": 0.1, "mape_pct": m,
              "within5_pct": 50.0, "within10_pct": 80.0, "kendall_tau": t}
             for g, n in (("mbv2@96", 40), ("baselines", 5))
             for p, m, t in (("macs_linear", 12.0, 0.8), ("lut_sum", 8.0, 0.9),
                             ("block_sum", 9.0, 0.9), ("full", 3.0, 0.95))]


def test_ablation_data_and_figure():
    from hwnas.report import ablation_data, draw_ablation

    rows = [*EVAL_ROWS[:-3], {**EVAL_ROWS[-3], "n": 0, "mape_pct": "nan"}, *EVAL_ROWS[-2:]]
    d = ablation_data(rows, "dev")
    assert d.groups == ["mbv2@96", "baselines"]
    assert [s.key for s in d.series] == ["macs_linear", "lut_sum", "block_sum", "full"]
    full = d.series[-1]
    assert full.mape == [3.0, 3.0] and full.tau == [0.95, 0.95] and full.n == [40, 5]
    assert d.series[1].mape == [8.0, None]  # n 0 (blocks missing): no bar
    assert d.n_bars == 7
    fig = draw_ablation(d)
    bars = [t for t in fig.data if t.meta == "ablation"]
    assert len(bars) == 8 and {t.name for t in bars} == {s.name for s in d.series}
    mape = [t for t in bars if t.xaxis == "x"]
    assert [list(t.y) for t in mape][-1] == [3.0, 3.0]
    assert "MAPE" in fig.layout.yaxis.title.text and "tau" in fig.layout.yaxis2.title.text
    assert "dev" in d.caption and "held out" in d.caption


def _write_eval(path: Path, rows) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_device_ablation_prefers_a_current_predictor_eval_csv(tmp_path):
    from hwnas.report import device_ablation

    dev = types.SimpleNamespace(name="dev", dir=tmp_path)
    (tmp_path / "networks.json").write_text("{}")
    assert device_ablation(dev, None) is None
    computed = types.SimpleNamespace(rows=[{**r, "mape_pct": 99.0} for r in EVAL_ROWS], folds=5)
    _write_eval(tmp_path / "predictor_eval.csv", EVAL_ROWS)
    d = device_ablation(dev, computed)
    assert d.source == "stored" and d.series[-1].mape == [3.0, 3.0] and not d.notes
    assert "predictor_eval.csv" in d.caption
    old = time.time() - 3600
    os.utime(tmp_path / "predictor_eval.csv", (old, old))  # the table changed since
    d = device_ablation(dev, computed)
    assert d.source == "computed" and d.series[-1].mape == [99.0, 99.0]
    assert d.notes and "older" in d.notes[0]


def test_report_page_has_the_ablation_figure(env):
    from hwnas.report import ABLATION_ID, ablation_data, build_report, draw_figures, render_html

    d = build_report("r", predictor=False)
    assert d.ablation is None and "ablation" not in draw_figures(d)
    d.ablation = ablation_data(EVAL_ROWS, "dev", "computed")
    figs = draw_figures(d)
    page = render_html(d, figs)
    assert f'id="{ABLATION_ID}"' in page and "Latency predictor ablation (dev)" in page
    assert page.index('id="fig-parity"') < page.index(f'id="{ABLATION_ID}"')
    assert len(re.findall(r"plotly\.js v\d+\.\d+\.\d+", page)) == 1


@pytest.mark.slow
def test_report_of_a_run_on_the_reference_device_shows_its_ablation(env, tmp_path):
    """The real thing: the shipped reference table, the report's own held-out evaluation."""
    ref = Path(__file__).resolve().parents[1] / "latency_tables" / "x86_64-2core-ref"
    if not (ref / "networks.json").is_file():
        pytest.skip("no reference table in this checkout")
    home = tmp_path
    shutil.copytree(ref, home / "latency_tables" / ref.name)
    shutil.copytree(env["home"] / "search_spaces", home / "search_spaces")
    run = home / "runs" / "ref"
    shutil.copytree(env["run_dir"], run)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "device": ref.name}))
    r = run_cli("view", "ref", cwd=home, env={"HWNAS_HOME": str(home)}, check=0)
    page = (run / "report.html").read_text()
    assert 'id="fig-ablation"' in page, r.stderr
    fig = page.split('id="fig-ablation"')[1].split("</script>")[0]
    assert fig.count('"meta":"ablation"') == 8  # 4 predictors x (MAPE, Kendall tau)
    for name in ("MACs-linear", "LUT sum", "block-model sum", "full predictor"):
        assert f'"name":"{name}"' in fig
    assert "computed by the report" in page
