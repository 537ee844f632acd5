"""Do the accuracy estimators rank architectures? Stand-alone training is the truth.

On Fashion-MNIST at 32 px (issue 11's benchmark), N random archs of a space plus the
MobileNetV2 widths are each trained stand-alone with the project's recipe (hwnas.train)
on a fixed stratified subset of the training split minus the search's validation carve,
for several seeds, and evaluated on the official 10,000-image test split. That accuracy
(mean over seeds) is the ground truth. Its own repeatability is reported first: the
Kendall tau between seed 0 and seed 1 over the same archs.

Then the estimators the search can use score the same archs and are compared with the
truth (Kendall tau, Spearman rho), overall and among pairs of archs of similar predicted
latency (the pairs a latency-constrained search must order):

* ``supernet``  -- weight sharing (hwnas supernet train, then inherited weights + BN
  recalibration, accuracy on the validation carve);
* ``zero-cost`` -- NASWOT;
* ``#params``, ``MACs`` -- naive references.

Phases (each resumable: results are one JSON file per item under --out):

    python benchmarks/ranking_bench.py truth  [--workers 2] [--epochs 5] [--subset 15000] [--seeds 0,1]
    python benchmarks/ranking_bench.py estimate [--supernet ID-or-path]
    python benchmarks/ranking_bench.py report

Training runs with 1 torch thread per worker process; wall times depend on the shared
machine's load, which is recorded with every item and printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

DEFAULT_OUT = Path("runs/bench-ranking")
VAL_FRACTION = 0.1  # the search's validation carve of the training split (never trained on)


def _load(args):
    from hwnas.data import load_dataset

    d = load_dataset(args.data, args.resolution)
    v = d.split_validation(VAL_FRACTION, seed=0)
    train = v.subset(args.subset, seed=0) if args.subset else v
    # train on the training part minus the validation carve; test on the official test split
    return replace(train, name=d.name, test_x=d.test_x, test_y=d.test_y)


def bench_archs(space_name: str, n: int, resolution: int, seed: int = 0):
    """(label, Arch) of N random archs of the space plus the MobileNetV2 widths, 10 classes."""
    from hwnas.arch import resolve_arch
    from hwnas.space import load_space

    space = load_space(space_name)
    out = [(f"rand{i:02d}", a) for i, a in enumerate(space.sample(seed, n, resolution))]
    out += [(w, resolve_arch(f"{w}@{resolution}")) for w in
            ("mbv2-0.35", "mbv2-0.5", "mbv2-0.75", "mbv2-1.0")]
    return [(label, replace(a, classes=10)) for label, a in out]


def _write(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def truth_worker(args) -> None:
    import torch

    from hwnas.train import Recipe, adapt_arch, train_arch

    torch.set_num_threads(1)
    k, w = map(int, args.worker.split("/"))
    out = args.out / "truth"
    out.mkdir(parents=True, exist_ok=True)
    archs = bench_archs(args.space, args.n, args.resolution)
    seeds = [int(s) for s in args.seeds.split(",")]
    items = [(s, label, a) for s in seeds for label, a in archs]  # all archs at seed 0 first
    data = None
    recipe = Recipe(epochs=args.epochs, threads=1)
    for i, (seed, label, arch) in enumerate(items):
        f = out / f"{label}-s{seed}-e{args.epochs}-n{args.subset}.json"
        if i % w != k or f.exists():
            continue
        data = data or _load(args)
        a = adapt_arch(arch, data, args.resolution)
        t0 = time.time()
        r = train_arch(a, data, recipe, seed=seed, progress=False)
        _write(f, {"label": label, "arch": a.to_string(), "seed": seed, "epochs": args.epochs,
                   "subset": args.subset, "test_acc": r.test_acc, "seconds": time.time() - t0,
                   "load": os.getloadavg()[0], "date": datetime.datetime.now().isoformat()})
        print(f"[{k}] {label} seed {seed}: {r.test_acc:.4f} in {time.time() - t0:.0f} s", flush=True)


def truth(args) -> None:
    if args.worker:
        return truth_worker(args)
    procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--worker", f"{k}/{args.workers}"])
             for k in range(args.workers)]
    sys.exit(max(p.wait() for p in procs))


def read_truth(out: Path, epochs: int, subset: int) -> dict[str, dict[int, float]]:
    acc: dict[str, dict[int, float]] = {}
    for f in sorted((out / "truth").glob(f"*-e{epochs}-n{subset}.json")):
        r = json.loads(f.read_text())
        acc.setdefault(r["label"], {})[r["seed"]] = r["test_acc"]
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=("truth", "estimate", "report"))
    ap.add_argument("--space", default="mobilenetv2")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--n", type=int, default=24, help="random archs (plus the 4 MobileNetV2 widths)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--subset", type=int, default=15000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if args.phase == "truth":
        truth(args)
    else:
        from ranking_report import estimate, report  # noqa: PLC0415 (written with the supernet)

        (estimate if args.phase == "estimate" else report)(args)
    print(f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
