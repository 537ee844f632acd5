"""Deployed from the supernet vs trained stand-alone (issue 22's benchmark).

One supernet (``hwnas supernet train``: --space, --data, -r, --epochs, --subset,
--random-subnets, --lr; resumable) and 8 archs of its space spread across its MACs range
(the MACs quantiles of 400 seeded random archs; MACs stand in for latency so the benchmark
needs no device table). Each arch is

* **deployed** (hwnas.retrain.deploy: the subnet extracted as a plain Net, BatchNorm recalibrated on
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
        return {"space": args.space, "data": "digits", "epochs": 1,
                "resolution": 16 if "cifar" in args.space else 32,
                "subset": 400, "random_subnets": 1, "lr": 0.01, "standalone_epochs": 1,
                "seeds": [0], "finetune": [0, 1], "archs": 3}
    return {"space": args.space, "data": args.data, "resolution": args.resolution,
            "epochs": args.epochs, "subset": args.subset, "random_subnets": args.random_subnets,
            "lr": args.lr, "standalone_epochs": args.epochs_standalone,
            "seeds": list(range(args.seeds)), "finetune": list(FINETUNE), "archs": args.archs}


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


def estimates(s: dict, archs, out: Path, supernet: Path) -> None:
    """What the search could rank the archs by, per arch: MACs, params, NASWOT and the
    supernet's score (the search's estimator: 2,000 validation images of its carve)."""
    from hwnas.accuracy import make_estimator
    from hwnas.costs import arch_costs

    f = out / "estimates.json"
    if f.is_file():
        return
    res = [{"arch": a.to_string(), "macs": arch_costs(a).macs, "params": arch_costs(a).params}
           for a in archs]
    for kind, kw in (("zero-cost", {}), ("supernet", {"space": s["space"], "supernet": str(supernet)})):
        est = make_estimator(kind, s["data"], s["resolution"], seed=0, **kw)
        t0 = time.perf_counter()
        for r, score in zip(res, est.score(archs), strict=True):
            r[kind] = float(score)
        print(f"{kind}: {len(archs)} archs scored in {time.perf_counter() - t0:.0f} s", flush=True)
    atomic_write_json(f, res)


def claim(path: Path) -> bool:
    """Take the item of claim file ``path`` for this process: False while another live
    process holds it (a dead holder's claim, e.g. after kill -9, is taken over)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(path.read_text() or 0), 0)
            return False
        except (ProcessLookupError, ValueError):
            path.write_text(str(os.getpid()))
            return True
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    return True


def run(args) -> None:
    import torch

    from hwnas.data import load_dataset
    from hwnas.retrain.deploy import BN_IMAGES
    from hwnas.space import load_space
    from hwnas.supernet import load_supernet, open_store
    from hwnas.train import Recipe, evaluate, recalibrate_bn, train_arch

    torch.set_num_threads(1)
    k = int(args.worker)
    s = settings(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if k == 0:
        atomic_write_json(out / "settings.json", s)
    data = load_dataset(s["data"], s["resolution"], 0)
    if s["subset"]:
        data = data.subset(s["subset"], seed=0)
    space = load_space(s["space"])
    archs = pick_archs(space, s["archs"], s["resolution"], len(set(data.test_y.tolist())))
    recipe = Recipe()
    if k == 0:  # the supernet, the estimates and the deployed models: worker 0 only
        sid = train_supernet(s, out / "home")
        sn_dir = out / "home" / "runs" / "supernets" / sid
        net, meta = load_supernet(open_store(str(sn_dir)), "cpu")
        atomic_write_json(out / "supernet.json", {"id": sid, "meta": meta})
        estimates(s, archs, out, sn_dir)
        for i, arch in enumerate(archs):
            lrs = [(1, recipe.lr / 10)] if args.lr_ablation else []
            for ft, lr in [(ft, recipe.lr) for ft in s["finetune"]] + lrs:
                tag = f"ft{ft}" + ("" if lr == recipe.lr else f"-lr{lr:g}")
                f = out / f"deploy-a{i}-{tag}.json"
                if f.is_file():
                    continue
                t0 = time.perf_counter()
                sub = net.extract(arch)
                recalibrate_bn(sub, data, BN_IMAGES, arch.resolution, 0)
                if ft:
                    res = train_arch(arch, data, replace(recipe, epochs=ft, lr=lr), seed=0,
                                     progress=False, init=sub.state_dict())
                    acc = res.test_acc
                else:
                    acc = evaluate(sub, data)
                atomic_write_json(f, {"arch": arch.to_string(), "finetune": ft, "lr": lr,
                                      "test_acc": acc, "seconds": time.perf_counter() - t0,
                                      "load": os.getloadavg()[0]})
                print(f"deploy a{i} {tag}: {acc:.4f}", flush=True)
    # stand-alone: every arch at the first seed before any arch at the next
    items = [(seed, i, a) for seed in s["seeds"] for i, a in enumerate(archs)]
    for seed, i, arch in items:
        f = out / f"standalone-a{i}-s{seed}.json"
        if f.is_file() or not claim(f.with_suffix(".claim")):
            continue
        t0 = time.perf_counter()
        res = train_arch(arch, data, replace(recipe, epochs=s["standalone_epochs"]),
                         seed=seed, progress=False)
        atomic_write_json(f, {"arch": arch.to_string(), "seed": seed,
                              "test_acc": res.test_acc, "seconds": time.perf_counter() - t0,
                              "load": os.getloadavg()[0]})
        print(f"stand-alone a{i} seed {seed}: {res.test_acc:.4f}", flush=True)


def _loo_predictor(archs: list, y: list[float]) -> list[float]:
    """Leave-one-out predictions of hwnas's accuracy predictor (its default model), fit on
    the other archs' stand-alone accuracies each time."""
    from hwnas.accuracy_sources import AccuracyPredictor, Results, Row
    from hwnas.arch import Arch

    parsed = [Arch.from_string(a) for a in archs]
    got = []
    for i in range(len(archs)):
        rows = [Row(a, a, acc) for j, (a, acc) in enumerate(zip(archs, y, strict=True)) if j != i]
        res = Results(Path("loo"), "csv", "", rows, {a: parsed[j] for j, a in enumerate(archs) if j != i})
        got.append(float(AccuracyPredictor(res, random_state=0).predict([parsed[i]])[0]))
    return got


def report(args) -> None:
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    out = Path(args.out)
    s = json.loads((out / "settings.json").read_text())
    sn = json.loads((out / "supernet.json").read_text())
    est = {r["arch"]: r for r in json.loads((out / "estimates.json").read_text())} \
        if (out / "estimates.json").is_file() else {}
    dep: dict[str, dict[str, dict]] = {}
    sa: dict[str, dict[int, dict]] = {}
    for f in sorted(out.glob("*.json")):
        d = json.loads(f.read_text()) if f.name.startswith(("deploy-", "standalone-")) else None
        if d and f.name.startswith("deploy-"):
            dep.setdefault(d["arch"], {})[f.name.split("-", 2)[2][:-5]] = d
        elif d:
            sa.setdefault(d["arch"], {})[d["seed"]] = d
    meta = sn["meta"]
    tags = [f"ft{ft}" for ft in s["finetune"]]
    tags += sorted({t for v in dep.values() for t in v} - set(tags))
    loads = [d["load"] for v in dep.values() for d in v.values()] + \
        [d["load"] for v in sa.values() for d in v.values()]
    print(f"deployed vs stand-alone on {s['data']} at {s['resolution']} px, space {s['space']}, "
          f"{s['subset']} training images; supernet {sn['id']}: {s['epochs']} epochs, "
          f"{s['random_subnets']} random subnets + sandwich, lr {s['lr']}, "
          f"{meta.get('wall_seconds', 0) / 60:.1f} min; deployed = extracted + BN recalibrated "
          f"(+ N fine-tune epochs of the recipe, lr 0.05 cosine, or 0.005 where named); "
          f"stand-alone {s['standalone_epochs']} epochs x {len(s['seeds'])} seeds; test accuracy "
          f"on the dataset's official test split; 1 torch thread; reported "
          f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()} {os.cpu_count()} cores, load "
          f"while measuring {min(loads, default=0):.1f}-{max(loads, default=0):.1f}\n")
    print(f"{'arch':<5}{'MMACs':>7}" + "".join(f"{t:>17}" for t in tags)
          + f"{'stand-alone':>24}" + "".join(f"{t + '-sa':>16}" for t in tags))
    archs, truth, cols, secs = [], [], {t: [] for t in tags}, {t: [] for t in tags + ["sa"]}
    for i, (arch, d) in enumerate(dep.items()):
        runs = sa.get(arch, {})
        if not runs:
            continue
        accs = np.array([r["test_acc"] for r in runs.values()])
        line = f"a{i:<4}{est.get(arch, {}).get('macs', 0) / 1e6:>7.1f}"
        for t in tags:
            x = d.get(t)
            line += f"{100 * x['test_acc']:>9.2f} ({x['seconds']:>4.0f}s)" if x else f"{'-':>17}"
            cols[t].append(x["test_acc"] if x else float("nan"))
            if x:
                secs[t].append(x["seconds"] / np.mean([r["seconds"] for r in runs.values()]))
        line += f"{100 * accs.mean():>9.2f} +-{100 * accs.std():.2f} n{len(accs)} " \
                f"({np.mean([r['seconds'] for r in runs.values()]):>4.0f}s)"
        line += "".join(f"{100 * (cols[t][-1] - accs.mean()):>+16.2f}" for t in tags)
        print(line)
        archs.append(arch)
        truth.append(float(accs.mean()))
    if not archs:
        return
    truth_a = np.array(truth)
    print()
    for t in tags:
        diff = 100 * (np.array(cols[t]) - truth_a)
        ft = int(t[2])
        print(f"{t:<12} deployed - stand-alone: mean {np.nanmean(diff):+.2f} pp (min "
              f"{np.nanmin(diff):+.2f}, max {np.nanmax(diff):+.2f}); wall time per model "
              f"{np.median(secs[t]):.3f} of stand-alone (median); training epochs {ft} of "
              f"{s['standalone_epochs']} = {ft / s['standalone_epochs']:.2f}")
    seeds = sorted({sd for v in sa.values() for sd in v})
    full = [a for a in archs if all(sd in sa[a] for sd in seeds)]
    spread = [100 * np.std([sa[a][sd]["test_acc"] for sd in seeds]) for a in full]
    if len(seeds) > 1 and len(full) > 2:
        taus = [kendalltau([sa[a][x]["test_acc"] for a in full], [sa[a][y]["test_acc"] for a in full])[0]
                for j, x in enumerate(seeds) for y in seeds[j + 1:]]
        print(f"stand-alone seeds' spread: std {np.mean(spread):.2f} pp (mean over {len(full)} "
              f"archs, max {np.max(spread):.2f}); seed-vs-seed Kendall tau {np.mean(taus):.2f} "
              f"(mean of {len(taus)} pairs)")
    print(f"\nranking the {len(archs)} archs' stand-alone accuracy (mean over seeds): "
          "Kendall tau / Spearman rho")
    ranks = {"MACs": [est[a]["macs"] for a in archs] if est else None,
             "params": [est[a]["params"] for a in archs] if est else None,
             "NASWOT (zero-cost)": [est[a]["zero-cost"] for a in archs] if est else None,
             "supernet score (the search's estimate)": [est[a]["supernet"] for a in archs] if est else None,
             **{f"deployed {t}": cols[t] for t in tags},
             "accuracy predictor, leave-one-out": _loo_predictor(archs, truth) if len(archs) >= 6 else None}
    for name, x in ranks.items():
        if x is not None and not np.isnan(x).any():
            print(f"  {name:<40}{kendalltau(x, truth)[0]:>7.2f}{spearmanr(x, truth)[0]:>7.2f}")
    if est:
        sc = [est[a]["supernet"] for a in archs]
        print("\nestimate vs deployed: Kendall tau between the supernet score and the deployed "
              "test accuracy: " + ", ".join(f"{t} {kendalltau(sc, cols[t])[0]:.2f}" for t in tags))
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
    ap.add_argument("--archs", type=int, default=8, help="archs across the MACs range")
    ap.add_argument("--lr-ablation", action="store_true",
                    help="also fine-tune 1 epoch at a tenth of the recipe's lr")
    ap.add_argument("--worker", default="0", help="0 trains the supernet, deploys, then takes "
                    "stand-alone items; any other number only takes stand-alone items (start "
                    "several: each claims the next free item)")
    ap.add_argument("--tiny", action="store_true", help="a smoke test: digits, 16 px, 1 epoch")
    ap.add_argument("--out", default="runs/bench-deploy")
    args = ap.parse_args()
    (run if args.phase == "run" else report)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
