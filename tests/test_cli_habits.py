"""Command line habits (issue 14, part 4): --version, | head, -r on search, quiet progress."""

import io
import os
import subprocess
import sys

import pytest
from conftest import tiny_space

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

    (home / "search_spaces").mkdir(exist_ok=True)
    (home / "search_spaces" / "tiny.yaml").write_text(tiny_space())
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
