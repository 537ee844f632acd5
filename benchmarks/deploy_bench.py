"""Deployed from the supernet vs trained stand-alone (issue 22's benchmark).

One supernet (``hwnas supernet train``: --space, --data, -r, --epochs, --subset,
--random-subnets, --lr; resumable) and 8 archs of its space spread across its MACs range
(the MACs quantiles of 400 seeded random archs; MACs stand in for latency so the benchmark
needs no device table). Each arch is

* **deployed** (hwnas.deploy: the subnet extracted as a plain Net, BatchNorm recalibrated on
  2,000 training images) with 0, 1 and 3 fine-tune epochs of the training recipe, and
* **trained stand-alone** with the same recipe for --epochs-standalone epochs, --seeds seeds,

all evaluated on the official test split; each result is one JSON file under --out (kill it
and run it again: finished items are kept). ``report`` prints accuracy and wall time of both,
the deployed - stand-alone difference against the seeds' spread, the compute ratio, and the
Kendall tau between the supernet's validation score (the search's estimate) and the deployed
test accuracy. The target: deployed within 1 pp of stand-alone, or better, at <= 1/5 of its
compute per model.

    python benchmarks/deploy_bench.py run [--data fashion-mnist] [--space mobilenetv2-cifar]
    python benchmarks/deploy_bench.py report
    (--tiny: digits, 16 px, 1 epoch, a few hundred images: a smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.io import atomic_write_json  # noqa: E402

FINETUNE = (0, 1, 3)


def settings(args) -> dict:
    if args.tiny:
        return {"space": args.space, "data": "digits", "resolution": 16, "epochs": 1,
                "subset": 400, "random_subnets": 1, "lr": 0.01, "standalone_epochs": 1,
                "seeds": [0], "finetune": [0, 1], "archs": 3}
    return {"space": args.space, "data": args.data, "resolution": args.resolution,
            "epochs": args.epochs, "subset": args.subset, "random_subnets": args.random_subnets,
            "lr": args.lr, "standalone_epochs": args.epochs_standalone,
            "seeds": list(range(args.seeds)), "finetune": list(FINETUNE), "archs": 8}


def pick_archs(space, n: int, resolution: int, classes: int):
    from hwnas.costs import arch_costs

    pool = {a.to_string(): replace(a, classes=classes)
            for a in space.sample(0, 400, resolution)}
    archs = sorted(pool.values(), key=lambda a: arch_costs(a).macs)
    return [archs[round(i * (len(archs) - 1) / (n - 1))] for i in range(n)]


def train_supernet(s: dict, home: Path) -> str:
    cmd = [sys.executable, "-m", "hwnas", "supernet", "train", "--space", s["space"],
           "--data", s["data"], "-r", str(s["resolution"]), "--epochs", str(s["epochs"]),
           "--subset", str(s["subset"]), "--random-subnets", str(s["random_subnets"]),
           "--lr", str(s["lr"])]
    print("supernet:", " ".join(cmd[3:]), flush=True)
    r = subprocess.run(cmd, env={**os.environ, "HWNAS_HOME": str(home)}, text=True,
                       stdout=subprocess.PIPE)
    if r.returncode:
        raise SystemExit(f"supernet training failed (exit {r.returncode})")
    ids = sorted((home / "runs" / "supernets").iterdir(), key=lambda p: p.stat().st_mtime)
    return ids[-1].name


def run(args) -> None:
    import torch

    from hwnas.data import load_dataset
    from hwnas.deploy import BN_IMAGES
    from hwnas.space import load_space
    from hwnas.supernet import load_supernet, open_store
    from hwnas.train import Recipe, evaluate, recalibrate_bn, train_arch

    torch.set_num_threads(1)
    s = settings(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "settings.json", s)
    sid = train_supernet(s, out / "home")
    store = open_store(str(out / "home" / "runs" / "supernets" / sid))
    net, meta = load_supernet(store, "cpu")
    data = load_dataset(s["data"], s["resolution"], 0)
    if s["subset"]:
        data = data.subset(s["subset"], seed=0)
    space = load_space(s["space"])
    archs = pick_archs(space, s["archs"], s["resolution"], len(set(data.test_y.tolist())))
    recipe = Recipe()
    for i, arch in enumerate(archs):
        for ft in s["finetune"]:
            f = out / f"deploy-a{i}-ft{ft}.json"
            if f.is_file():
                continue
            t0 = time.perf_counter()
            sub = net.extract(arch)
            recalibrate_bn(sub, data, BN_IMAGES, arch.resolution, 0)
            if ft:
                res = train_arch(arch, data, replace(recipe, epochs=ft), seed=0, progress=False,
                                 init=sub.state_dict())
                acc = res.test_acc
            else:
                acc = evaluate(sub, data)
            atomic_write_json(f, {"arch": arch.to_string(), "finetune": ft, "test_acc": acc,
                                  "seconds": time.perf_counter() - t0,
                                  "load": os.getloadavg()[0]})
            print(f"deploy a{i} ft{ft}: {acc:.4f}", flush=True)
        for seed in s["seeds"]:
            f = out / f"standalone-a{i}-s{seed}.json"
            if f.is_file():
                continue
            t0 = time.perf_counter()
            res = train_arch(arch, data, replace(recipe, epochs=s["standalone_epochs"]),
                             seed=seed, progress=False)
            atomic_write_json(f, {"arch": arch.to_string(), "seed": seed,
                                  "test_acc": res.test_acc, "seconds": time.perf_counter() - t0,
                                  "load": os.getloadavg()[0]})
            print(f"stand-alone a{i} seed {seed}: {res.test_acc:.4f}", flush=True)
    atomic_write_json(out / "supernet.json", {"id": sid, "meta": meta})


def report(args) -> None:
    import numpy as np
    from scipy.stats import kendalltau

    out = Path(args.out)
    s = json.loads((out / "settings.json").read_text())
    sn = json.loads((out / "supernet.json").read_text())
    rows = {}
    for f in sorted(out.glob("*.json")):
        if f.name.startswith(("deploy-", "standalone-")):
            d = json.loads(f.read_text())
            rows.setdefault(d["arch"], []).append((f.name, d))
    meta = sn["meta"]
    print(f"deployed vs stand-alone on {s['data']} at {s['resolution']} px, space {s['space']}; "
          f"supernet {sn['id']}: {s['epochs']} epochs on {s['subset']} images, "
          f"{s['random_subnets']} random subnets + sandwich, lr {s['lr']}, "
          f"{meta.get('wall_seconds', 0) / 60:.1f} min; stand-alone {s['standalone_epochs']} "
          f"epochs x {len(s['seeds'])} seeds; {time.strftime('%Y-%m-%d')}, {platform.machine()} "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} now\n")
    print(f"{'arch':<6}" + "".join(f"{'ft' + str(ft):>16}" for ft in s["finetune"])
          + f"{'stand-alone':>22}{'diff pp (ft0)':>15}")
    dep0, sa_means, diffs, ratios = [], [], [], []
    for i, items in enumerate(rows.values()):
        dep = {d["finetune"]: d for n, d in items if n.startswith("deploy-")}
        sa = [d for n, d in items if n.startswith("standalone-")]
        if not sa or not dep:
            continue
        accs = np.array([d["test_acc"] for d in sa])
        line = f"a{i:<5}" + "".join(
            f"{100 * dep[ft]['test_acc']:>8.2f} ({dep[ft]['seconds']:>4.0f}s)" if ft in dep
            else f"{'-':>16}" for ft in s["finetune"])
        sa_s = np.mean([d["seconds"] for d in sa])
        line += f"{100 * accs.mean():>10.2f} +-{100 * accs.std():.2f} ({sa_s:>4.0f}s)"
        if 0 in dep:
            diffs.append(100 * (dep[0]["test_acc"] - accs.mean()))
            ratios.append(dep[0]["seconds"] / sa_s)
            dep0.append(dep[0]["test_acc"])
            sa_means.append(accs.mean())
            line += f"{diffs[-1]:>+15.2f}"
        print(line)
    if diffs:
        print(f"\nmean deployed (ft0) - stand-alone: {np.mean(diffs):+.2f} pp; compute per model "
              f"deployed / stand-alone: {np.median(ratios):.3f} (median; the supernet's own "
              "training is shared by every model and not in it)")
        if len(dep0) > 2:
            print(f"Kendall tau, deployed vs stand-alone accuracy: {kendalltau(dep0, sa_means)[0]:.2f}")
    print("target: deployed within 1 pp of stand-alone, or better, at <= 1/5 of its compute")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("phase", choices=("run", "report"))
    ap.add_argument("--space", default="mobilenetv2-cifar")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--resolution", "-r", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=30, help="supernet epochs")
    ap.add_argument("--subset", type=int, default=20000)
    ap.add_argument("--random-subnets", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--epochs-standalone", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="a smoke test: digits, 16 px, 1 epoch")
    ap.add_argument("--out", default="runs/bench-deploy")
    args = ap.parse_args()
    (run if args.phase == "run" else report)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
