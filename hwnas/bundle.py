"""Bundles: a self-contained directory the board runs with ``python3 run.py``.

Layout::

    manifest.json        {"schema": 1, "kind": "hwnas-bundle", "protocol": {...},
                          "entries": [{"id", "kind": "block"|"network", "file", "input_shape"}]}
    models/<name>.onnx   one ONNX file per entry
    run.py               the entry point (hwnas/device/run.py)
    hwnas_device/        a copy of hwnas/device (numpy + onnxruntime + stdlib only)
    results.jsonl        appended by the runner (see hwnas/device/runner.py)
"""

from __future__ import annotations

import shutil
from pathlib import Path

DEVICE_PACKAGE = Path(__file__).resolve().parent / "device"
PACKAGE_NAME = "hwnas_device"
MANIFEST = "manifest.json"
RESULTS = "results.jsonl"


def write_runner(dir: Path) -> None:
    """Copy ``run.py`` and the device package (as ``hwnas_device/``) into ``dir``."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    pkg = dir / PACKAGE_NAME
    pkg.mkdir(exist_ok=True)
    for src in sorted(DEVICE_PACKAGE.glob("*.py")):
        if src.name == "run.py":
            continue
        shutil.copyfile(src, pkg / src.name)
    shutil.copyfile(DEVICE_PACKAGE / "run.py", dir / "run.py")
