"""hwnas: hardware-aware neural architecture search for edge devices.

The names a notebook needs, imported on first use (PEP 562), so that ``import hwnas`` stays
cheap and imports neither torch nor scikit-learn::

    import hwnas
    pred = hwnas.LatencyPredictor.for_device("pi4")
    run = hwnas.load_run("demo")

Everything else lives in its module (see the README's Layout section).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it
_LAZY = {
    "LatencyPredictor": "hwnas.predictor",
    "run_search": "hwnas.search",
    "run_retrain": "hwnas.retrain.run",
    "write_report": "hwnas.report",
    "load_run": "hwnas.search",
}

__all__ = ["LatencyPredictor", "__version__", "load_run", "run_retrain", "run_search",
           "write_report"]

if TYPE_CHECKING:
    from .predictor import LatencyPredictor
    from .report import write_report
    from .retrain.run import run_retrain
    from .search import load_run, run_search

    __version__: str


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwnas")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
