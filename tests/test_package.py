"""The package's shape: ``import hwnas`` is cheap and lazy, old import paths still work, the
analytical costs agree with torch's counts, and the arch layer knows nothing above it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT


def _python(code: str) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a fresh interpreter, this checkout first on the path."""
    path = os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=path), timeout=300)


def test_import_hwnas_is_torch_free_and_lazy():
    r = _python(
        "import hwnas, sys\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'sklearn' not in sys.modules and 'hwnas.predictor' not in sys.modules\n"
        "import hwnas.arch, hwnas.costs, hwnas.context\n"
        "assert 'hwnas.baselines' not in sys.modules  # arch.py does not depend on baselines\n"
        "from hwnas import LatencyPredictor\n"
        "import hwnas.predictor\n"
        "assert LatencyPredictor is hwnas.predictor.LatencyPredictor\n"
        "assert 'torch' not in sys.modules  # the predictor predicts without torch\n"
        "assert isinstance(hwnas.__version__, str) and hwnas.__version__\n"
        "assert set(hwnas.__all__) <= set(dir(hwnas))\n"
        "try:\n"
        "    hwnas.no_such_name\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_name' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n")
    assert r.returncode == 0, r.stderr


def test_lazy_names_are_the_library_calls():
    import hwnas
    from hwnas.report import write_report
    from hwnas.retrain import run_retrain
    from hwnas.search import load_run, run_search

    assert (hwnas.run_search, hwnas.run_retrain, hwnas.write_report, hwnas.load_run) == (
        run_search, run_retrain, write_report, load_run)


def test_predictor_package_names_give_the_same_objects():
    """(hwnas.keys and hwnas.devices, the old names of pieces and hosts, are gone: issue 23.)"""
    import hwnas.costs
    import hwnas.predictor

    assert hwnas.predictor.piece_costs is hwnas.costs.piece_costs
    for name in hwnas.predictor.__all__:
        assert getattr(hwnas.predictor, name) is not None
    # the function, not its submodule of the same name (hwnas.predictor.evaluate in the README)
    assert hwnas.predictor.evaluate is sys.modules["hwnas.predictor.evaluate"].evaluate


@pytest.mark.parametrize("name", ["mbv2-0.35", "mbv3-small"])
def test_analytical_arch_costs_equal_torch_counts(name):
    from hwnas.baselines import baseline
    from hwnas.costs import arch_costs
    from hwnas.model import arch_costs as torch_costs

    a = baseline(name, 64, 10)
    c = arch_costs(a)
    assert c == torch_costs(a)
    params, macs, peak = c  # a tuple, as the search unpacks it
    assert params > 0 and macs > 0 and peak > 0
