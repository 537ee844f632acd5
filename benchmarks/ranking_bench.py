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
    from hwnas.baselines import resolve_arch
    from hwnas.space import load_space

    space = load_space(space_name)
    out = [(f"rand{i:02d}", a) for i, a in enumerate(space.sample(seed, n, resolution))]
    out += [(w, resolve_arch(f"{w}@{resolution}")) for w in
            ("mbv2-0.35", "mbv2-0.5", "mbv2-0.75", "mbv2-1.0")]
    return [(label, replace(a, classes=10)) for label, a in out]


def _tagged(name: str, tag: str) -> str:
    """``winners.json`` -> ``winners-TAG.json``: each supernet's outcome keeps its own files."""
    stem, dot, ext = name.partition(".")
    return f"{stem}-{tag}{dot}{ext}" if tag else name


def winner_archs(out: Path, tag: str = ""):
    """(label, Arch) of the outcome search's winners (``outcome-pick`` wrote them)."""
    from hwnas.arch import parse_string

    f = out / _tagged("winners.json", tag)
    return [(w["label"], parse_string(w["arch"])) for w in json.loads(f.read_text())] \
        if f.exists() else []


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
    if args.winners:
        archs = winner_archs(args.out, args.tag) + [x for x in archs if x[0].startswith("mbv2")]
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


def _timed(est, archs):
    """Scores and seconds per arch; None for an arch the estimator refuses (the supernet
    scores only archs of its space: MobileNetV2 below width 1.0 has a narrower stem)."""
    from hwnas.errors import HwnasError

    scores, secs = [], []
    for a in archs:
        t0 = time.perf_counter()
        try:
            scores.append(est.score([a])[0])
        except HwnasError:
            scores.append(None)
        secs.append(time.perf_counter() - t0)
    return scores, secs


def estimate(args) -> None:
    """Score every bench arch with each estimator; predicted latency from the device."""
    import torch

    from hwnas.accuracy import make_estimator
    from hwnas.predictor import LatencyPredictor
    from hwnas.search import arch_costs_fast

    torch.set_num_threads(args.threads)
    archs = bench_archs(args.space, args.n, args.resolution)
    f = args.out / "estimates.json"
    res = json.loads(f.read_text()) if f.exists() else {}
    pred = LatencyPredictor.for_device(args.device)
    lat = pred.predict([a for _, a in archs])
    for (label, a), ms in zip(archs, lat, strict=True):
        params, macs, _ = arch_costs_fast(a)
        res.setdefault(label, {}).update(arch=a.to_string(), latency_ms=float(ms),
                                         params=params, macs=macs)
    kinds = {"zero-cost": ("zero-cost", {}, 0)}
    if args.supernet_space:  # what the search uses (2,000 validation images), and all of them
        sn = {"space": args.supernet_space, "supernet": args.supernet or None}
        base = _tagged("supernet", args.tag)
        kinds[base] = ("supernet", sn, 0)
        if not args.tag:
            kinds["supernet-allval"] = ("supernet", {**sn, "val_images": None}, 0)
        # the estimator's own repeatability: seed 1 draws other BN-recalibration and
        # validation images; and the log-likelihood metric (--supernet-metric loglik)
        kinds[base + "-seed1"] = ("supernet", sn, 1)
        kinds[base + "-loglik"] = ("supernet", {**sn, "metric": "loglik"}, 0)
        kinds[base + "-loglik-seed1"] = ("supernet", {**sn, "metric": "loglik"}, 1)
    for kind, (est_kind, kw, seed) in kinds.items():
        if all(kind in res[label] for label, _ in archs):
            continue
        est = make_estimator(est_kind, args.data, args.resolution, seed=seed, **kw)
        scores, secs = _timed(est, [a for _, a in archs])
        for (label, _), sc, t in zip(archs, scores, secs, strict=True):
            res[label][kind] = sc
            if sc is not None:
                res[label][kind + "_s"] = t
        ok = sorted(t for sc, t in zip(scores, secs, strict=True) if sc is not None)
        print(f"{kind}: {len(ok)} of {len(archs)} archs scored, median {ok[len(ok) // 2]:.2f} s "
              "per arch", flush=True)
        _write(f, res)
    _write(f, res)


def _pairs_tau(x, y, lat, band: float) -> tuple[float, int]:
    """Kendall-style (concordant - discordant) / pairs over the pairs whose predicted
    latencies are within ``band`` (relative) of each other."""
    c = d = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if abs(lat[i] / lat[j] - 1) > band:
                continue
            s = (x[i] - x[j]) * (y[i] - y[j])
            c, d = c + (s > 0), d + (s < 0)
    return ((c - d) / (c + d) if c + d else float("nan")), c + d


def report(args) -> None:
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    truth_acc = read_truth(args.out, args.epochs, args.subset)
    est = json.loads((args.out / "estimates.json").read_text())
    labels = [la for la, _ in bench_archs(args.space, args.n, args.resolution)
              if la in truth_acc and la in est]
    seeds = sorted({s for v in truth_acc.values() for s in v})
    full = [la for la in labels if seeds[0] in truth_acc[la]]  # every arch with the first seed
    both = [la for la in full if len(truth_acc[la]) >= 2]
    # truth: the mean over the seeds an arch has (some have 2, the rest 1: CPU time ran out)
    t = np.array([np.mean(list(truth_acc[la].values())) for la in full])
    loads = [json.loads(f.read_text())["load"] for f in (args.out / "truth").glob("*.json")]
    print(f"# ranking on {args.data} at {args.resolution} px, {args.space}: {len(full)} archs "
          f"({args.n} random + MobileNetV2 widths); {len(both)} of them with 2 seeds "
          f"({seeds[0]}, {seeds[1] if len(seeds) > 1 else '-'}), the others with seed {seeds[0]}")
    print(f"# truth: stand-alone training, {args.epochs} epochs on a stratified {args.subset}-image "
          f"subset of the training split minus a {VAL_FRACTION:.0%} validation carve, test "
          f"accuracy on the official 10,000 test images; mean over seeds; 1 torch thread; "
          f"load average while training {min(loads):.1f}-{max(loads):.1f} (2-core shared VM)")
    print(f"# truth accuracy: {t.min():.4f} .. {t.max():.4f}")
    if both:
        d = [abs(truth_acc[la][seeds[0]] - truth_acc[la][seeds[1]]) for la in both]
        print(f"# seed-to-seed |diff| over the {len(both)} archs with 2 seeds: mean {np.mean(d):.4f}, "
              f"max {max(d):.4f}")
        a0 = [truth_acc[la][seeds[0]] for la in both]
        a1 = [truth_acc[la][seeds[1]] for la in both]
        lat2 = [est[la]["latency_ms"] for la in both]
        kt, sr = kendalltau(a0, a1).statistic, spearmanr(a0, a1).statistic
        pt, n = _pairs_tau(a0, a1, lat2, 0.15)
        seed_row = (f"truth seed {seeds[0]} vs {seeds[1]} ({len(both)})", kt, sr, pt, n)
    else:
        seed_row = None
    if seed_row:  # the truth's own repeatability
        print(f"# {seed_row[0]}: tau {seed_row[1]:.3f}, rho {seed_row[2]:.3f}")
    truth_of = dict(zip(full, t, strict=True))
    # every estimator on the archs the supernet can score (its space), then on all
    sn_keys = sorted({k for la in full for k in est[la] if k.startswith("supernet")
                      and not k.endswith("_s")})
    common = [la for la in full if all(est[la].get(k) is not None for k in sn_keys)] or full
    names = [(f"supernet {k[len('supernet-'):]} (2,000 val images)" if k != "supernet-allval"
              else "supernet (12,000 val images)", k) for k in sn_keys if k != "supernet"]
    for group, members in ((f"{len(common)} archs of the space", common),
                           (f"all {len(full)} archs", full)):
        if group.startswith("all") and members == common:
            continue
        print()
        print(f"{group + ': estimator vs truth':<44} {'tau':>6} {'rho':>6} {'tau@lat+-15%':>13} "
              f"{'pairs':>6}")
        for name, key in (("supernet (2,000 val images)", "supernet"), *names,
                          ("NASWOT (zero-cost)", "zero-cost"),
                          ("#params", "params"), ("MACs", "macs")):
            if any(est[la].get(key) is None for la in members):
                continue
            x = [est[la][key] for la in members]
            y = [truth_of[la] for la in members]
            lat_m = [est[la]["latency_ms"] for la in members]
            kt, sr = kendalltau(x, y).statistic, spearmanr(x, y).statistic
            pt, n = _pairs_tau(x, y, lat_m, 0.15)
            print(f"{name:<44} {kt:>6.3f} {sr:>6.3f} {pt:>13.3f} {n:>6}")
    print()
    for key in sn_keys:  # the estimator against itself: other BN and validation images
        if key + "-seed1" in sn_keys:
            both = [la for la in common if est[la].get(key) is not None
                    and est[la].get(key + "-seed1") is not None]
            kt = kendalltau([est[la][key] for la in both],
                            [est[la][key + "-seed1"] for la in both]).statistic
            print(f"# {key} vs itself with other BN/validation images ({len(both)} archs): "
                  f"tau {kt:.3f}")
    for key in (*sn_keys, "zero-cost"):
        secs = [est[la].get(key + "_s") for la in full if key + "_s" in est[la]]
        if secs:
            print(f"# {key}: median {sorted(secs)[len(secs) // 2]:.2f} s per scored arch")


def outcome_pick(args) -> None:
    """The winners of the outcome search: --top archs spread along its front (retrain's rule)."""
    from hwnas.runs import load_run
    from hwnas.search.pareto import spread_indices

    run = load_run(args.run)
    front = sorted(run.pareto, key=lambda r: r["latency_ms"])
    picks = [front[i] for i in spread_indices(len(front), args.top)]
    prefix = f"{args.tag}-W" if args.tag else "W"
    ws = [{"label": f"{prefix}{i + 1}", "arch": r["arch"], "search_score": r[run.score], "search_metric": run.score,
           "predicted_ms": r["latency_ms"]} for i, r in enumerate(sorted(picks, key=lambda r: r["latency_ms"]))]
    _write(args.out / _tagged("winners.json", args.tag), ws)
    for w in ws:
        print(f"{w['label']}: {w['search_metric']} {w['search_score']:.4f}, predicted {w['predicted_ms']:.3f} ms")


def outcome(args) -> None:
    """Winners vs MobileNetV2 widths: stand-alone accuracy (same recipe, seeds) and latency
    measured side by side on the device in one interleaved run."""
    import numpy as np

    from hwnas.profiling.measure import measure_archs

    truth_acc = read_truth(args.out, args.epochs, args.subset)
    winners = winner_archs(args.out, args.tag)
    wl = {label for label, _ in winners}
    models = winners + [x for x in bench_archs(args.space, 0, args.resolution)]
    f = args.out / _tagged("outcome_measured.json", args.tag)
    if not f.exists():
        stats = measure_archs(args.device, [a for _, a in models])
        _write(f, {"load": os.getloadavg()[0], "date": datetime.datetime.now().isoformat(),
                   "stats": {k: {f: getattr(v, f) for f in ("min_ms", "median_ms", "iqr_ms", "n")}
                             for k, v in stats.items()}})
    meas = json.loads(f.read_text())
    print(f"# outcome on {args.data} at {args.resolution} px: winners of the supernet-guided search "
          f"vs MobileNetV2 widths; accuracy = stand-alone training ({args.epochs} epochs, "
          f"{args.subset}-image subset, test split), mean +- std over seeds; latency = min of "
          f"the interleaved measurement on {args.device} (load {meas['load']:.1f})")
    print(f"{'model':<10} {'acc':>7} {'std':>6} {'seeds':>5} {'min ms':>8} {'median':>8}")
    rows = {}
    for label, a in models:
        accs = list(truth_acc.get(label, {}).values())
        st = meas["stats"][a.to_string()]
        if not accs:
            continue
        rows[label] = (float(np.mean(accs)), float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                       st["min_ms"])
        print(f"{label:<10} {rows[label][0]:>7.4f} {rows[label][1]:>6.4f} {len(accs):>5} "
              f"{st['min_ms']:>8.3f} {st['median_ms']:>8.3f}")
    print()
    for b in [la for la in rows if la.startswith("mbv2")]:
        ba, bs, bms = rows[b]
        ok = [(w, rows[w]) for w in rows if w in wl and rows[w][0] >= ba]
        noise = [(w, rows[w]) for w in rows if w in wl
                 and rows[w][0] >= ba - (rows[w][1] ** 2 + bs ** 2) ** 0.5]
        best = min(ok, key=lambda x: x[1][2]) if ok else None
        bn = min(noise, key=lambda x: x[1][2]) if noise else None
        print(f"vs {b:<9}: " + (f"{best[0]} {bms / best[1][2]:.2f}x faster at {best[1][0] - ba:+.4f} acc"
                                if best else "no winner as accurate")
              + (f"; within noise: {bn[0]} {bms / bn[1][2]:.2f}x" if bn else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=("truth", "estimate", "report", "outcome-pick", "outcome"))
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
    ap.add_argument("--device", default="bench-local", help="latency predictor's device")
    ap.add_argument("--supernet-space", default="", help="space file of the trained supernet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--supernet", default="", help="estimate: the supernet id (default: the newest)")
    ap.add_argument("--tag", default="",
                    help="name of this supernet's estimates, winners and outcome files (e.g. e16r4)")
    ap.add_argument("--winners", action="store_true",
                    help="truth: train the outcome winners (and the MobileNetV2 widths) only")
    ap.add_argument("--run", default="outcome", help="outcome-pick: the search run")
    ap.add_argument("--top", type=int, default=3, help="outcome-pick: winners")
    args = ap.parse_args()
    if args.phase == "truth":
        truth(args)
    else:
        {"estimate": estimate, "report": report, "outcome-pick": outcome_pick,
         "outcome": outcome}[args.phase](args)
    print(f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
