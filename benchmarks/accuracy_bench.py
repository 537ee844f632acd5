"""Accuracy estimators on digits: NASWOT zero-cost proxy vs short training.

Samples N random Archs of a space at a small resolution, scores each with the zero-cost
proxy (NASWOT, one minibatch, no training) and with short training (the project's recipe
for a few epochs; accuracy on a held-out fifth of the training split), and prints the rank
correlation between them (Kendall tau, Spearman rho; #params as a naive reference proxy)
and the seconds per Arch of each estimator. Then times the zero-cost proxy alone at a few
resolutions and batch sizes (the search calls it once per trial).

    python benchmarks/accuracy_bench.py [--n 24] [--resolution 32] [--epochs 3] [--threads 1]

Timings are wall-clock per Arch (model construction included), one process, the given
torch thread count; on a shared machine they vary with the load, which is printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch
from scipy.stats import kendalltau, spearmanr

from hwnas.accuracy import make_estimator
from hwnas.model import build, count_params
from hwnas.space import load_space


def timed_scores(est, archs):
    scores, secs = [], []
    for a in archs:
        t0 = time.perf_counter()
        scores.append(est.score([a])[0])
        secs.append(time.perf_counter() - t0)
    return scores, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobilenetv2")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64, help="zero-cost minibatch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    space = load_space(args.space)
    archs = space.sample(args.seed, args.n, args.resolution)
    zc = make_estimator("zero-cost", "digits", args.resolution, seed=args.seed,
                        batch_size=args.batch_size, threads=args.threads)
    tr = make_estimator("train", "digits", args.resolution, seed=args.seed, epochs=args.epochs,
                        threads=args.threads)
    zc.minibatch(args.resolution)  # loaded once, outside the timing (as in a search)
    zc_scores, zc_secs = timed_scores(zc, archs)
    tr_scores, tr_secs = timed_scores(tr, archs)
    params = [count_params(build(zc.adapt(a))) for a in archs]

    print(f"# accuracy estimators on digits ({len(tr.val_data.train_y)} train / "
          f"{len(tr.val_data.test_y)} held-out images), {args.n} random {args.space} archs at "
          f"{args.resolution}x{args.resolution}, seed {args.seed}")
    print(f"# {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {args.threads} thread(s), load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} (shared machine)")
    print(f"# short training: {args.epochs} epochs of the recipe, score = held-out accuracy; "
          f"zero-cost: NASWOT on {args.batch_size} real images")
    print()
    print(f"{'#':>3} {'params':>9} {'NASWOT':>9} {'s':>6} {'short-train acc':>16} {'s':>7}")
    for i, (p, z, zs, t, ts) in enumerate(zip(params, zc_scores, zc_secs, tr_scores, tr_secs,
                                              strict=True)):
        print(f"{i:>3} {p:>9,} {z:>9.2f} {zs:>6.2f} {t:>16.3f} {ts:>7.1f}")
    print()
    print(f"{'proxy vs short-train accuracy':<32} {'Kendall tau':>11} {'Spearman rho':>12}")
    for name, xs in (("NASWOT (zero-cost)", zc_scores), ("#params (naive reference)", params)):
        kt, sr = kendalltau(xs, tr_scores).statistic, spearmanr(xs, tr_scores).statistic
        print(f"{name:<32} {kt:>11.3f} {sr:>12.3f}")
    print()
    med = sorted(zc_secs)[len(zc_secs) // 2], sorted(tr_secs)[len(tr_secs) // 2]
    print(f"{'seconds per arch':<32} {'median':>8} {'mean':>8}")
    print(f"{'zero-cost (NASWOT)':<32} {med[0]:>8.3f} {sum(zc_secs) / len(zc_secs):>8.3f}")
    print(f"{f'short training ({args.epochs} epochs)':<32} {med[1]:>8.2f} "
          f"{sum(tr_secs) / len(tr_secs):>8.2f}")

    print()
    print("# zero-cost proxy alone: seconds per arch (median of 5 archs)")
    print(f"{'resolution':>10} {'batch':>6} {'s/arch':>8}")
    few = space.sample(args.seed + 1, 5, 96)
    for res in (32, 64, 96):
        for bs in (32, 64):
            e = make_estimator("zero-cost", "digits", res, seed=args.seed, batch_size=bs,
                               threads=args.threads)
            e.minibatch(res)
            _, secs = timed_scores(e, few)
            print(f"{res:>10} {bs:>6} {sorted(secs)[len(secs) // 2]:>8.3f}")


if __name__ == "__main__":
    main()
