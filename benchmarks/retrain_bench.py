#!/usr/bin/env python3
"""Retrain benchmark: searched winners against MobileNetV2 x0.35-1.0, same recipe, measured
side by side on this machine.

The whole loop through the command line, in a working HWNAS_HOME (--home, default a new
temporary folder; give the same --home again to resume):

1. **device** -- the shipped reference device (``hwnas.paths.REFERENCE_DEVICE``) when its
   table is in the checkout's ``latency_tables/`` and covers SPACE at RESOLUTION (copied
   into the working home, so ``--feedback`` never touches the shipped table); otherwise a
   ``local`` device named ``bench-local`` profiled here with ``hwnas profile`` (the full
   protocol; SPACE at RESOLUTION, --networks sampled networks for the predictor);
2. **search** -- ``hwnas search`` (zero-cost accuracy on DATA, --trials trials, NSGA-II);
3. **retrain** -- ``hwnas retrain`` of the --top winners and the MobileNetV2 widths with
   the same recipe, --epochs epochs, --seeds seeds, every model exported to ONNX and timed
   on the device in one interleaved run with the protocol of the device's table;
4. prints the retrain table and summary (dominance, speedup at matched accuracy) and
   appends them, with the machine, date, load average and command lines, to --out.

Target (issue 6): >= 1.3x lower measured latency at equal or better accuracy than a
MobileNetV2 width.

Usage::

    python benchmarks/retrain_bench.py                                  # 96 px, 10 epochs, 3 seeds
    python benchmarks/retrain_bench.py --small                          # 32 px, 3 epochs, 3 seeds
    python benchmarks/retrain_bench.py --data cifar10:~/data/cifar-10-batches-py --resolution 32 \\
        --epochs 30 --seeds 3                                           # CIFAR-10 from a folder

CIFAR-10 is read from a local copy of the python-format batches (``cifar-10-batches-py``;
hwnas downloads nothing). The search's zero-cost estimate and the retraining then both use it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true",
                    help="a small form: 32 px, 60 trials, 3 epochs, 3 seeds, top 4")
    ap.add_argument("--home", help="working HWNAS_HOME (default: a new temporary folder)")
    ap.add_argument("--space", default="mobilenetv2")
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--trials", type=int)
    ap.add_argument("--networks", type=int, default=40,
                    help="sampled networks when profiling a device here [40]")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seeds")
    ap.add_argument("--top", type=int)
    ap.add_argument("--baselines", default="mbv2-0.35,mbv2-0.5,mbv2-0.75,mbv2-1.0")
    ap.add_argument("--device", help="use this existing device of --home instead")
    ap.add_argument("--threads", type=int, help="torch threads while training")
    ap.add_argument("--quick-profile", action="store_true",
                    help="profile a device here with --quick (faster; its latencies are not "
                    "comparable with a full measurement, and retrain then measures with it too)")
    ap.add_argument("--out", help="append the results (markdown) to this file")
    a = ap.parse_args()
    from hwnas.paths import DEMO_RESOLUTION

    small = {"resolution": 32, "trials": 60, "epochs": 3, "seeds": "3", "top": 4}
    full = {"resolution": DEMO_RESOLUTION, "trials": 300, "epochs": 10, "seeds": "3", "top": 3}
    for k, v in (small if a.small else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    return a


def hw(home: Path, *args: str, log: list[str]) -> str:
    """Run ``hwnas ARGS`` with HWNAS_HOME=home; stderr (progress) passes through."""
    cmd = [sys.executable, "-m", "hwnas", *args]
    log.append("hwnas " + " ".join(shlex.quote(x) for x in args))
    print(f"$ {log[-1]}", file=sys.stderr, flush=True)
    r = subprocess.run(cmd, env={**os.environ, "HWNAS_HOME": str(home)}, cwd=home,
                       stdout=subprocess.PIPE, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {log[-1]}")
    return r.stdout


def reference_table(space: str, resolution: int) -> Path | None:
    """The shipped reference device's folder if its table covers the space at the resolution."""
    from hwnas.paths import REFERENCE_DEVICE
    from hwnas.profiling.lut import LatencyTable
    from hwnas.space import load_space

    src = ROOT / "latency_tables" / REFERENCE_DEVICE
    if not (src / "blocks.json").is_file():
        return None
    old = os.environ.get("HWNAS_HOME")
    os.environ["HWNAS_HOME"] = str(ROOT)
    try:
        have, total = LatencyTable.load(REFERENCE_DEVICE).coverage(load_space(space), resolution)
    finally:
        if old is None:
            os.environ.pop("HWNAS_HOME", None)
        else:
            os.environ["HWNAS_HOME"] = old
    return src if have == total else None


def main() -> None:
    a = parse_args()
    home = Path(a.home or tempfile.mkdtemp(prefix="hwnas-retrain-bench-")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    t0 = time.time()
    from hwnas.paths import REFERENCE_DEVICE

    if a.device:
        device = a.device
    elif (src := reference_table(a.space, a.resolution)) is not None:
        device = REFERENCE_DEVICE
        dst = home / "latency_tables" / device
        if not dst.exists():
            shutil.copytree(src, dst)
        if not (dst / "device.json").is_file():
            hw(home, "device", "add", device, "--target", "local", log=log)
    else:
        device = "bench-local"
        if not (home / "latency_tables" / device / "device.json").is_file():
            hw(home, "device", "add", device, "--target", "local", "--threads", "1", log=log)
        hw(home, "profile", "--device", device, "--space", a.space, "-r", str(a.resolution),
           "--networks", str(a.networks), *(["--quick"] if a.quick_profile else []), log=log)
    run = f"bench-{a.space}-r{a.resolution}"
    hw(home, "search", "--space", a.space, "--device", device, "--name", run, "--data", a.data,
       "--resolution", str(a.resolution), "--trials", str(a.trials), "-q", log=log)
    args = ["retrain", run, "--top", str(a.top), "--epochs", str(a.epochs), "--seeds", a.seeds,
            "--baselines", a.baselines, "--data", a.data]
    if a.threads:
        args += ["--threads", str(a.threads)]

    out = hw(home, *args, log=log)
    took = time.time() - t0
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    text = "\n".join([
        f"### retrain_bench {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} "
        f"(shared machine), {took / 60:.0f} min",
        f"home {home}, device {device}", "", "```", *log, "", out.rstrip(), "```", ""])
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
