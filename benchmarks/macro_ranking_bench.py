"""How well MACs, params and the learned accuracy predictor rank NAS-Bench-Macro's networks.

For K = 20, 50, 100, 200 training archs drawn at random (5 draws each, seeds 0..4) the
accuracy predictor (hwnas.accuracy_sources.AccuracyPredictor, its default model and
settings, fit on the K archs' mean test accuracy exactly as ``--accuracy predictor:FILE``
fits) ranks the other 6,561 - K archs; Kendall tau and Spearman against their mean test
accuracy, overall and within the top half (by true mean accuracy, of the held-out archs).
MACs and params rank all 6,561 (no training). Beside them the truth's own noise: the tau
between two seeds of the benchmark, averaged over the 3 seed pairs. Nothing is tuned on the
held-out archs.

    python benchmarks/macro_ranking_bench.py [--results FILE] [--draws 5] [--ks 20,50,100,200]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from itertools import combinations
from pathlib import Path

import numpy as np

TARGETS = {"overall": 0.85, "top half": 0.55}  # issue 21, at K = 50
DEFAULT_RESULTS = str(Path(__file__).resolve().parent.parent / "hwnas" / "resources" / "nas-bench-macro" / "cifar10.json")


def ranks(pred, y, top) -> tuple[float, float, float, float]:
    from scipy.stats import spearmanr

    from hwnas.accuracy_sources.regressor import kendall_tau

    pred, y = np.asarray(pred, float), np.asarray(y, float)
    return (kendall_tau(pred, y), float(spearmanr(pred, y).statistic),
            kendall_tau(pred[top], y[top]), float(spearmanr(pred[top], y[top]).statistic))


def main() -> None:
    import json

    import scipy
    import sklearn

    from hwnas import __version__
    from hwnas.accuracy_sources.predictor import AccuracyPredictor
    from hwnas.accuracy_sources.regressor import DEFAULT_MODEL
    from hwnas.accuracy_sources.results import Results, read_results
    from hwnas.costs import arch_costs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=DEFAULT_RESULTS)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--ks", default="20,50,100,200")
    args = ap.parse_args()
    t_start, load0 = time.perf_counter(), os.getloadavg()
    res = read_results(args.results)
    rows = res.rows
    archs = [res.archs[r.arch] for r in rows]
    y = np.array([r.accuracy for r in rows])
    n = len(y)
    seeds = None
    if res.kind == "nas-bench-macro":
        raw = json.loads(res.path.read_text())
        seeds = np.array([raw[r.spec.split(":", 1)[1]]["test_acc"] for r in rows])
    costs = np.array([arch_costs(a)[:2] for a in archs], float)
    table: list[tuple[str, list[tuple[float, ...]]]] = []
    top_all = y >= np.median(y)
    for j, name in enumerate(("params", "MACs")):
        table.append((name, [ranks(costs[:, j], y, top_all)]))
    if seeds is not None:
        pairs = [ranks(seeds[:, a], seeds[:, b], top_all) for a, b in combinations(range(3), 2)]
        table.append(("truth: seed vs seed", pairs))
    fit_s = {}
    for k in (int(x) for x in args.ks.split(",")):
        got, t0 = [], time.perf_counter()
        for d in range(args.draws):
            rng = np.random.default_rng(d)
            tr = rng.choice(n, k, replace=False)
            te = np.setdiff1d(np.arange(n), tr)
            sub = Results(res.path, res.kind, res.sha256, [rows[i] for i in tr],
                          {rows[i].arch: archs[i] for i in tr})
            pred = AccuracyPredictor(sub, random_state=d)
            p = pred.predict([archs[i] for i in te])
            got.append(ranks(p, y[te], y[te] >= np.median(y[te])))
        fit_s[k] = (time.perf_counter() - t0) / args.draws
        table.append((f"predictor K={k}", got))
    load1 = os.getloadavg()
    print(f"NAS-Bench-Macro ranking ({n} archs of {res.path.name}, sha256 {res.sha256[:12]})")
    print(f"measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.node()} "
          f"({platform.machine()}, {os.cpu_count()} cpus), load average {load0[0]:.1f} -> "
          f"{load1[0]:.1f}; Python {platform.python_version()}, hwnas {__version__}, numpy "
          f"{np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}")
    print(f"predictor: {DEFAULT_MODEL} (hwnas.accuracy_sources defaults), K random training "
          f"archs, {args.draws} draws (seeds 0..{args.draws - 1}), evaluated on the other "
          f"{n} - K; mean ± std over draws (seed pairs for the truth)")
    hdr = f"{'ranker':<22}{'tau':>14}{'spearman':>14}{'tau top½':>14}{'spearman top½':>16}"
    print(hdr)
    print("-" * len(hdr))
    for name, vals in table:
        v = np.array(vals)
        m, s = v.mean(0), v.std(0)
        cells = [f"{m[i]:.3f} ±{s[i]:.3f}" if len(vals) > 1 else f"{m[i]:.3f}" for i in range(4)]
        print(f"{name:<22}{cells[0]:>14}{cells[1]:>14}{cells[2]:>14}{cells[3]:>16}")
    print(f"targets at K=50: tau >= {TARGETS['overall']} overall, >= {TARGETS['top half']} "
          "within the top half")
    k50 = dict(table).get("predictor K=50")
    if k50 is not None:
        m = np.array(k50).mean(0)
        for label, val, tgt in (("overall", m[0], TARGETS["overall"]),
                                ("top half", m[2], TARGETS["top half"])):
            verdict = "met" if val >= tgt else f"missed by {tgt - val:.3f}"
            print(f"  K=50 {label}: {val:.3f} vs {tgt}: {verdict}")
    print("fit + predict per draw: " + ", ".join(f"K={k} {s:.1f} s" for k, s in fit_s.items())
          + f"; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
