"""report.html in a real browser: headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) opens it from a file:// URL with networking off, sees no console error
and no request leaving the machine, and finds the plots rendered: as many drawn markers in
the trial traces as the run has complete trials. A screenshot is saved.

``HWNAS_SCREENSHOT=path.png python -m pytest tests/test_report_browser.py`` also saves the
screenshot there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from conftest import put_space  # noqa: E402
from test_report import stub_accuracy, stub_latency, write_retrain  # noqa: E402

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--window-size=1280,1000",
         # belt and braces next to the offline emulation below: any proxied request fails
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


class Browser:
    """Headless Chromium with networking off; console and network logs kept."""

    def __init__(self):
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="hwnas-chromium-")
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for f in [*FLAGS, f"--user-data-dir={self.profile}"]:
            o.add_argument(f)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
        self.driver.set_page_load_timeout(120)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})

    def open(self, path: Path) -> None:
        self.driver.get_log("performance")  # drop what the start-up page requested
        self.driver.get(path.resolve().as_uri())

    def console(self) -> list[dict]:
        return self.driver.get_log("browser")

    def requested_urls(self) -> list[str]:
        urls = []
        for e in self.driver.get_log("performance"):
            msg = json.loads(e["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        return urls

    def screenshot(self, path: Path) -> None:
        h = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, min(int(h) + 40, 8000))
        self.driver.save_screenshot(str(path))

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


# per figure: [meta, number of drawn markers, path 'd' length] for every trace
RENDERED = """
const out = {};
for (const id of arguments[0]) {
  const gd = document.getElementById(id);
  if (!gd || !gd._fullLayout || !gd.calcdata) { out[id] = null; continue; }
  out[id] = gd.calcdata.map((cd, i) => {
    const node = cd[0] && cd[0].node3 ? cd[0].node3.node() : null;
    const line = node ? node.querySelector('path.js-line') : null;
    return [gd.data[i].meta || null, node ? node.querySelectorAll('path.point').length : -1,
            line ? (line.getAttribute('d') || '').length : 0];
  });
}
return out;
"""


def rendered(browser: Browser, ids) -> dict:
    return browser.driver.execute_script(RENDERED, list(ids))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import optuna

    from hwnas.report import write_report
    from hwnas.search import SearchSettings, load_run, run_search

    home = tmp_path_factory.mktemp("home")
    put_space(home, "tiny-search", "tiny-report")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWNAS_HOME", str(home))
        res = run_search(SearchSettings(space="tiny-report", device="stub", name="r", trials=30,
                                        resolution=32, population=8, latency_budget_ms=3.0),
                         latency_fn=stub_latency, accuracy_fn=stub_accuracy, classes=10,
                         progress=False)
        rows = write_retrain(res.run_dir, res.pareto)
        out = write_report("r")
        run = load_run("r")
    optuna.logging.set_verbosity(verbosity)
    return {"path": out.path, "run": run, "retrain": rows, "data": out.data}


def test_report_renders_offline_in_chromium(report, tmp_path):
    from hwnas.report import FIGURE_IDS

    b = Browser()
    try:
        b.open(report["path"])
        b.driver.implicitly_wait(0)
        # plotly draws synchronously on load, but give the layout a moment to settle
        for _ in range(50):
            figs = rendered(b, FIGURE_IDS.values())
            if all(figs.values()):
                break
            b.driver.execute_script("return new Promise(r => setTimeout(r, 200))")
        shot = tmp_path / "report.png"
        b.screenshot(shot)
        if os.environ.get("HWNAS_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["HWNAS_SCREENSHOT"])
        errors = [e for e in b.console() if e.get("level") == "SEVERE"]
        urls = b.requested_urls()
    finally:
        b.close()
    assert not errors, errors
    assert report["path"].resolve().as_uri() in urls
    external = [u for u in urls if u.split(":", 1)[0].lower() in ("http", "https", "ws", "wss", "ftp")]
    assert not external, external
    assert all(figs.values()), figs

    complete = [t for t in report["run"].trials if t["state"] == "COMPLETE"]
    trial_points = sum(n for meta, n, _ in figs[FIGURE_IDS["objective"]] if meta == "trials")
    assert trial_points == len(complete) == report["data"].n_complete
    measured = [n for meta, n, _ in figs[FIGURE_IDS["objective"]] if meta == "measured"]
    assert sum(measured) == len(report["retrain"])
    parity = sum(n for meta, n, _ in figs[FIGURE_IDS["parity"]] if meta == "parity")
    assert parity == len(report["retrain"])
    hv = [d for meta, _, d in figs[FIGURE_IDS["hypervolume"]] if meta == "hypervolume"]
    assert hv and hv[0] > 20, "the hypervolume line is drawn"
    assert shot.stat().st_size > 20_000
