"""The co-design loop against the true front, on NAS-Bench-Macro.

Truth: all 6,561 networks of the benchmark as (mean CIFAR-10 test accuracy over its 3
seeds, latency predicted for this machine by hwnas's latency predictor fitted on a table
profiled here at 32 px). Each method searches the space with the benchmark's results as the
oracle: one lookup of a network not seen before counts as one training (a repeat proposal
costs nothing and is not counted). Score: the hypervolume of the front of the networks
"trained" so far / the true front's, after 25, 50, 100 (--budget) trainings; reference point
(the space's lowest mean accuracy, 1.01 x its highest latency), as the issue states.

Methods: Optuna's random, NSGA-II, TPE and GP samplers through hwnas's own space encoding
(``SearchSpace.suggest``) and sampler settings (``hwnas.trials.storage.make_sampler``), and
the train-predict-search loop (``hwnas.search.loop``) with hwnas's accuracy predictor.
``--seeds`` seeds each; random subsets of the space (20 draws) beside them. Resumable:
finished (method, seed) results are kept in ``--out`` (JSON, atomic) and skipped next time.

    HWNAS_HOME=DIR python benchmarks/macro_codesign_bench.py --device bench-local
    (profile first: hwnas profile --device bench-local --space nas-bench-macro -r 32)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.search.loop import LoopSettings, pareto_mask, run_loop  # noqa: E402

CHECKPOINTS = (25, 50, 100)


def truth(device: str):
    from hwnas.context import Device
    from hwnas.macro import benchmark_results, macro_arch

    res = benchmark_results()
    codes = sorted(res)
    archs = [macro_arch(c) for c in codes]
    acc = np.array([res[c]["mean_acc"] for c in codes], float)
    pred = Device(device).predictor()
    lat = np.asarray(pred.predict(archs), float)
    return codes, archs, acc, lat, pred


def hv_ratio(idx, acc, lat, ref, true_hv) -> float:
    import moocore

    idx = np.asarray(sorted(set(idx)))
    if not len(idx):
        return 0.0
    pts = np.c_[-acc[idx], lat[idx]]
    return float(moocore.hypervolume(pts, ref=ref)) / true_hv


def run_sampler(name: str, seed: int, budget: int, codes, acc, lat) -> list[int]:
    """Indices in the order the sampler first proposed them, up to ``budget`` distinct."""
    import optuna

    from hwnas.macro import macro_code
    from hwnas.space import load_space
    from hwnas.trials.storage import make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space("nas-bench-macro")
    where = {c: i for i, c in enumerate(codes)}
    seen: list[int] = []
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(name, seed))
    for _ in range(20 * budget):
        if len(seen) >= budget:
            break
        t = study.ask()
        i = where[macro_code(space.suggest(t, 32))]
        if i not in seen:
            seen.append(i)
        study.tell(t, [float(acc[i]), float(lat[i])])
    return seen


def run_predictor_loop(seed: int, budget: int, archs, acc, lat, rounds: int) -> list[int]:
    from hwnas.accuracy_sources.features import ArchEncoder
    from hwnas.accuracy_sources.regressor import AccuracyRegressor

    X = ArchEncoder().fit_transform(archs)

    def fit(idx, y):
        m = AccuracyRegressor(random_state=seed).fit(X[idx], np.asarray(y))
        return lambda j: m.predict(X[j], return_std=True)

    r = run_loop(lat, lambda p: acc[p], fit, LoopSettings(budget, rounds=rounds, seed=seed))
    return r.trained


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="bench-local")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=LoopSettings(2).rounds)
    ap.add_argument("--methods", default="random,nsga2,tpe,gp,loop")
    ap.add_argument("--out", default="benchmarks/results/macro_codesign.json")
    args = ap.parse_args()
    t0 = time.time()
    codes, archs, acc, lat, pred = truth(args.device)
    ref = np.array([-acc.min(), 1.01 * lat.max()])
    true_hv = hv_ratio(range(len(codes)), acc, lat, ref, 1.0)
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.is_file() else {}
    key = f"{args.device}/{args.budget}/{args.rounds}"
    done = done if done.get("key") == key else {"key": key, "runs": {}}
    for method in args.methods.split(","):
        for seed in range(args.seeds):
            k = f"{method}/{seed}"
            if k in done["runs"]:
                continue
            t = time.time()
            idx = (run_predictor_loop(seed, args.budget, archs, acc, lat, args.rounds)
                   if method == "loop" else run_sampler(method, seed, args.budget, codes, acc, lat))
            done["runs"][k] = {"order": idx, "seconds": round(time.time() - t, 1)}
            atomic_write_json(out, done)
            print(f"  {k}: {hv_ratio(idx, acc, lat, ref, true_hv):.4f} at {len(idx)} "
                  f"({time.time() - t:.0f} s)", flush=True)
    rng = np.random.default_rng(0)
    subsets = [rng.choice(len(codes), args.budget, replace=False) for _ in range(20)]

    import onnxruntime
    import optuna
    import sklearn

    print(f"\nNAS-Bench-Macro co-design loop vs the true front; {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end; "
          f"optuna {optuna.__version__}, scikit-learn {sklearn.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    print(f"truth: {len(codes)} networks, mean accuracy {acc.min():.2f}-{acc.max():.2f} %, latency "
          f"predicted for '{args.device}' {lat.min():.3f}-{lat.max():.3f} ms; true front "
          f"{int(pareto_mask(acc, lat).sum())} "
          f"networks; reference ({acc.min():.2f} %, {1.01 * lat.max():.3f} ms)")
    cps = [c for c in CHECKPOINTS if c <= args.budget] or [args.budget]
    print(f"hypervolume / true, median [min, max] over {args.seeds} seeds, after N trainings\n")
    print(f"{'method':<10}" + "".join(f"{'N=' + str(c):>24}" for c in cps) + "   s/run")
    for method in args.methods.split(","):
        runs = [done["runs"][f"{method}/{s}"] for s in range(args.seeds)
                if f"{method}/{s}" in done["runs"]]
        row = f"{method:<10}"
        for c in cps:
            v = [hv_ratio(r["order"][:c], acc, lat, ref, true_hv) for r in runs]
            row += f"{np.median(v):>9.4f} [{min(v):.4f}, {max(v):.4f}]"
        print(row + f"   {np.mean([r['seconds'] for r in runs]):.0f}")
    row = f"{'subsets':<10}"
    for c in cps:
        v = [hv_ratio(s[:c], acc, lat, ref, true_hv) for s in subsets]
        row += f"{np.median(v):>9.4f} [{min(v):.4f}, {max(v):.4f}]"
    print(row + "   (20 random subsets)")
    print(f"\ntarget: >= 0.99 of the true hypervolume within 100 trainings; wall {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
