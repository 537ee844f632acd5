"""The new pages in a real browser, offline (issue 14.5): `hwnas compare`'s page and the
report's predictor ablation figure render from file:// with networking off, no console error
and no request leaving the machine. Skipped without Selenium and Chromium (as
test_report_browser, whose Browser this reuses)."""

from __future__ import annotations

import json
import shutil

import pytest
import test_report
from test_report_browser import Browser  # skips this module without Selenium/Chromium

made = test_report.made

# per figure id: [meta, number of drawn points (markers or bars)] for every trace
DRAWN = """
const out = {};
for (const id of arguments[0]) {
  const gd = document.getElementById(id);
  if (!gd || !gd._fullLayout || !gd.calcdata) { out[id] = null; continue; }
  out[id] = gd.calcdata.map((cd, i) => {
    const node = cd[0] && cd[0].node3 ? cd[0].node3.node() : null;
    return [gd.data[i].meta || null, node ? node.querySelectorAll('.point').length : -1];
  });
}
return out;
"""


def _open(path, ids):
    b = Browser()
    try:
        b.open(path)
        for _ in range(50):
            figs = b.driver.execute_script(DRAWN, list(ids))
            if all(figs.values()):
                break
            b.driver.execute_script("return new Promise(r => setTimeout(r, 200))")
        errors = [e for e in b.console() if e.get("level") == "SEVERE"]
        urls = b.requested_urls()
    finally:
        b.close()
    external = [u for u in urls if u.split(":", 1)[0].lower() in ("http", "https", "ws", "wss")]
    assert not errors, errors
    assert not external, external
    assert all(figs.values()), figs
    return figs


def test_compare_page_and_ablation_render_offline(made, monkeypatch, tmp_path):
    from test_report_paper import EVAL_ROWS

    from hwnas.report import ablation_data, build_report, draw_figures, render_html, write_compare

    monkeypatch.setenv("HWNAS_HOME", str(made["home"]))
    other = made["home"] / "runs" / "r-sn"
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(made["run_dir"], other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "injected_estimators": False,
                                                   "accuracy_estimator": "supernet"}))
    path, d = write_compare(["r", "r-sn"], tmp_path / "compare.html")
    figs = _open(path, ["fig-compare"])
    fronts = [n for meta, n in figs["fig-compare"] if meta == "front"]
    assert fronts == [len(c.front_x) for c in d.runs] and all(fronts)

    rep = build_report("r", predictor=False)
    rep.ablation = ablation_data(EVAL_ROWS, "dev")
    page = tmp_path / "report.html"
    page.write_text(render_html(rep, draw_figures(rep)))
    figs = _open(page, ["fig-ablation", "fig-parity"])
    bars = [n for meta, n in figs["fig-ablation"] if meta == "ablation"]
    assert len(bars) == 8 and sum(bars) == 16  # 4 predictors x 2 groups, MAPE and tau


@pytest.fixture(autouse=True)
def _home(made, monkeypatch):
    monkeypatch.chdir(made["home"])
