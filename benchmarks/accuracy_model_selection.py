"""Which regressor the accuracy predictor uses, chosen by measurement on NAS-Bench-Macro.

For K = 20, 50, 100 training archs drawn at random (5 draws, seeds 0..4), every candidate of
hwnas.accuracy_sources.MODELS is fit on the K archs' mean accuracy with the predictor's own
features (ArchEncoder) and ranks the other 6,561 - K archs: Kendall tau, mean +- std over the
draws. Nothing is tuned on the held-out archs. Also ridge on the raw accuracies and on the
one-hot layer choices only (the issue's reference), MACs and params.

    python benchmarks/accuracy_model_selection.py [--results FILE] [--draws 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import sklearn

    from hwnas.accuracy_sources.features import ArchEncoder
    from hwnas.accuracy_sources.regressor import MODELS, AccuracyRegressor, kendall_tau
    from hwnas.accuracy_sources.results import read_results
    from hwnas.costs import arch_costs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(Path(__file__).resolve().parent.parent / "hwnas"
                                             / "resources" / "nas-bench-macro" / "cifar10.json"))
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--ks", default="20,50,100")
    args = ap.parse_args()
    res = read_results(args.results)
    archs = [res.archs[r.arch] for r in res.rows]
    y = np.array([r.accuracy for r in res.rows])
    enc = ArchEncoder().fit(archs)
    X = enc.transform(archs)
    names = list(enc.get_feature_names_out())
    onehot = [i for i, n in enumerate(names) if n.startswith("l") and "=" in n]
    costs = np.array([arch_costs(a)[:2] for a in archs], float)
    n = len(y)
    ks = [int(k) for k in args.ks.split(",")]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()} ({os.cpu_count()} cpus, load "
          f"{os.getloadavg()[0]:.1f}), scikit-learn {sklearn.__version__}; {n} archs of "
          f"{res.path.name}, {args.draws} draws per K; Kendall tau on the rest")
    print(f"{'model':<22}" + "".join(f"{'K=' + str(k):>16}" for k in ks) + f"{'fit s':>8}")
    # (name, model, feature columns or None for all, target)
    cands = [(m, m, None, "rank") for m in MODELS] + [
        ("ridge, raw target", "ridge", None, "raw"),
        ("ridge one-hot, rank", "ridge", onehot, "rank"),
        ("ridge one-hot, raw", "ridge", onehot, "raw")]  # the reference
    for name, model, cols, target in cands:
        line, t0 = f"{name:<22}", time.perf_counter()
        for k in ks:
            taus = []
            for d in range(args.draws):
                rng = np.random.default_rng(d)
                tr = rng.choice(n, k, replace=False)
                te = np.setdiff1d(np.arange(n), tr)
                F = X if cols is None else X[:, cols]
                m = AccuracyRegressor(model, random_state=d, target=target)
                m.fit(F[tr], y[tr])
                taus.append(kendall_tau(m.predict(F[te]), y[te]))
            line += f"{np.mean(taus):>10.3f} ±{np.std(taus):.3f}"
        print(line + f"{time.perf_counter() - t0:>8.1f}", flush=True)
    for j, name in enumerate(("params", "MACs")):
        print(f"{name + ' (no training)':<22}{kendall_tau(costs[:, j], y):>10.3f}")


if __name__ == "__main__":
    main()
