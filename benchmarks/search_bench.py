#!/usr/bin/env python3
"""Search benchmark: hypervolume against trials per sampler, and the search's own overhead.

1. **Hypervolume**: accuracy (max) x latency (min) on SPACE at one resolution. Each sampler
   (nsga2, tpe, random by default) runs TRIALS trials for every seed, with the same
   objective (the hwnas search objective: seeds enqueued, every trial the same parameters);
   at checkpoints the hypervolume of its trials' front is given as a share of the
   hypervolume of the front of REFERENCE uniformly random samples of the space. The
   hypervolume reference point is the nadir of those random samples (their lowest accuracy,
   highest latency), so the share is independent of units; it exceeds 100 % when a
   search finds points the random front lacks.
2. **Overhead**: trials per second of the search loop (sampler + storage + objective
   bookkeeping) with the journal file in a run folder and with Optuna's in-memory storage,
   NSGA-II, estimators cached (the cost the search adds to each trial), next to the
   estimators' own cost per Arch (predictor, zero-cost proxy on the dataset).

Latency is the device's predictor (--device, default the reference device of this
machine); without a predictor (no table yet) a MACs-based stand-in, said in the caption.
Accuracy for the hypervolume part is, by default, a deterministic **stand-in** (see
:func:`standin_accuracy`): the zero-cost proxy costs ~0.1-0.5 s per Arch on 2 cores, so
20,000 reference samples plus 3 samplers x seeds x 1,000 trials would take hours. With
``--accuracy zero-cost`` the real proxy is used (cached per Arch in --cache); then pick a
smaller --reference and say so.

Target (issue 5): >= 98 % of the reference hypervolume within 1,000 trials; the search's
own overhead small beside the estimator's cost.

Usage::

    python benchmarks/search_bench.py                      # 1000 trials, seeds 0,1,2, ref 20000
    python benchmarks/search_bench.py --quick              # 200 trials, 1 seed, ref 3000
    python benchmarks/search_bench.py --samplers nsga2,tpe,random,nsga3,gp --trials 500
    python benchmarks/search_bench.py --accuracy zero-cost --reference 2000 --trials 300

Prints markdown tables (also written to --out if given) with the date, the machine and
the load average, since timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HWNAS_HOME", str(ROOT))  # the shipped latency tables


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 200 trials, seed 0, 3000 reference samples, 100-trial overhead")
    ap.add_argument("--space", default="mobilenetv2")
    ap.add_argument("--device", default=None, help="device whose predictor gives latency "
                    "[the reference device]")
    ap.add_argument("--resolution", type=int, default=None,
                    help="[the resolution the device's table covers best]")
    ap.add_argument("--samplers", default="nsga2,tpe,random")
    ap.add_argument("--trials", type=int, default=None, help="trials per search [1000]")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds [0,1,2]")
    ap.add_argument("--reference", type=int, default=None, help="random reference samples [20000]")
    ap.add_argument("--population", type=int, default=None, help="NSGA population [trials/10 in 10..50]")
    ap.add_argument("--accuracy", choices=("standin", "zero-cost"), default="standin")
    ap.add_argument("--data", default="digits", help="dataset of the zero-cost proxy [digits]")
    ap.add_argument("--overhead-trials", type=int, default=None, help="trials per overhead run [300]")
    ap.add_argument("--cache", default=None, help="accuracy cache file for --accuracy zero-cost")
    ap.add_argument("--skip-hv", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--out", help="also write the tables to this markdown file")
    a = ap.parse_args()
    q = a.quick
    a.trials = a.trials or (200 if q else 1000)
    a.seeds = [int(s) for s in (a.seeds or ("0" if q else "0,1,2")).split(",")]
    a.reference = a.reference or (3000 if q else 20000)
    a.overhead_trials = a.overhead_trials or (100 if q else 300)
    a.samplers = a.samplers.split(",")
    return a


# ---- objectives --------------------------------------------------------------------------------

def standin_accuracy(archs) -> list[float]:
    """A deterministic accuracy-like landscape, cheap enough for 20,000 samples.

    Capacity saturates in MACs and params (log scale); large kernels help at low spatial
    resolution (<= 12 px) and cost a little at high resolution; expansion 6 helps late
    stages more than early ones; depth beyond the minimum has diminishing returns. Values
    ~0.5-0.9. It is *not* an accuracy estimate: it gives the samplers a landscape with the
    same parameters and interactions a real one has, so that hypervolumes can be compared.
    """
    from hwnas.search import arch_costs_fast

    out = []
    for a in archs:
        params, macs, _ = arch_costs_fast(a)
        cap = 0.25 * (1 - math.exp(-macs / 40e6)) + 0.06 * math.tanh(math.log(params / 5e5))
        local = 0.0
        for _, h, c, b in a.stages():
            k = (b.kernel - 3) / 4  # 0, 0.5, 1
            local += (0.006 if h <= 12 else -0.002) * k
            local += 0.004 * (b.expand / 6) * (c / 160)
        out.append(0.55 + cap + local - 0.01 * max(0, len(a.blocks) - 14) ** 0.5)
    return out


def macs_latency(archs) -> np.ndarray:
    """Stand-in latency when the device has no predictor yet: 1 ms per 20 M MACs plus 0.05 ms
    per block."""
    from hwnas.search import arch_costs_fast

    return np.array([arch_costs_fast(a)[1] / 20e6 + 0.05 * len(a.blocks) for a in archs])


class Cached:
    """Memoise an archs -> values function per canonical string (as the search's caches do)."""

    def __init__(self, fn):
        self.fn, self.memo, self.calls, self.seconds = fn, {}, 0, 0.0

    def __call__(self, archs):
        keys = [a.to_string() for a in archs]
        todo = [(k, a) for k, a in zip(keys, archs, strict=True) if k not in self.memo]
        if todo:
            t = time.perf_counter()
            vals = np.asarray(self.fn([a for _, a in todo]), dtype=float).reshape(-1)
            self.seconds += time.perf_counter() - t
            self.calls += len(todo)
            self.memo.update({k: float(v) for (k, _), v in zip(todo, vals, strict=True)})
        return np.array([self.memo[k] for k in keys])


def setup(args):
    from hwnas.paths import REFERENCE_DEVICE
    from hwnas.search import default_resolution
    from hwnas.space import load_space

    device = args.device or REFERENCE_DEVICE
    space = load_space(args.space)
    res = args.resolution or default_resolution(space, device)
    notes = []
    try:
        from hwnas.predictor import LatencyPredictor

        pred = LatencyPredictor.for_device(device)
        latency, lat_name = pred.predict, f"predictor of {device}"
    except Exception as e:  # no table / predictor yet
        latency, lat_name = macs_latency, "MACs stand-in (1 ms / 20 M MACs + 0.05 ms / block)"
        notes.append(f"latency: no predictor for {device} ({str(e).splitlines()[0][:80]})")
    from hwnas.data import load_dataset

    classes = load_dataset(args.data, res, 0).classes  # the searched Archs' class count
    if args.accuracy == "zero-cost":
        from hwnas.accuracy import make_estimator

        cache = Path(args.cache) if args.cache else Path(tempfile.gettempdir()) / "hwnas-bench-zc.json"
        est = make_estimator("zero-cost", args.data, res, seed=0, cache_path=cache)
        accuracy, acc_name = est.score, f"zero-cost proxy ({getattr(est, 'name', '')}, {args.data})"
    else:
        accuracy, acc_name = standin_accuracy, "deterministic stand-in (standin_accuracy)"
    return space, res, classes, Cached(latency), Cached(accuracy), lat_name, acc_name, notes


# ---- hypervolume part ----------------------------------------------------------------------------

def reference_front(space, res, classes, lat, acc, n: int, seed: int = 12345):
    archs = [replace(a, classes=classes) for a in space.sample(seed, n, res)]
    pts = np.column_stack([acc(archs), lat(archs)])
    return pts


def run_sampler(space, res, classes, lat, acc, sampler: str, seed: int, trials: int,
                population: int | None):
    """One search with in-memory storage; returns the (accuracy, latency) of every trial in
    order and the seconds spent outside the estimators."""
    import optuna

    from hwnas.search import SearchSettings, make_sampler, optimize, seed_study

    s = SearchSettings(space=space.name, device="bench", name="bench", trials=trials,
                       sampler=sampler, seed=seed, resolution=res, population=population)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler, seed, s.population_size()))
    seed_study(study, space)
    t0, e0 = time.perf_counter(), lat.seconds + acc.seconds
    optimize(study, space, s, lat, acc, classes=classes)
    wall = time.perf_counter() - t0 - (lat.seconds + acc.seconds - e0)
    vals = np.array([t.values for t in study.trials if t.values is not None])
    return vals, wall


def hv_share(points: np.ndarray, ref_hv: float, nadir) -> float:
    from hwnas.search import hypervolume

    return hypervolume(points, ["maximize", "minimize"], nadir) / ref_hv


# ---- overhead part -------------------------------------------------------------------------------

def overhead(space, res, classes, lat, acc, trials: int, storage_kind: str) -> float:
    """Trials per second of NSGA-II with the estimators' answers cached.

    A first in-memory study fills the caches; the timed study (same sampler seed, so the
    same Archs) then measures sampler + storage + objective bookkeeping + params/MACs/memory.
    """
    import optuna

    from hwnas.search import SearchSettings, make_sampler, open_storage, optimize

    s = SearchSettings(space=space.name, device="bench", name="bench", trials=trials,
                       sampler="nsga2", seed=7, resolution=res)

    def study(storage=None):
        return optuna.create_study(directions=["maximize", "minimize"], storage=storage,
                                   sampler=make_sampler("nsga2", 7, s.population_size()))

    optimize(study(), space, s, lat, acc, classes=classes)  # warm the caches
    with tempfile.TemporaryDirectory() as d:
        st = study(open_storage(None, Path(d)) if storage_kind == "journal" else None)
        t = time.perf_counter()
        optimize(st, space, s, lat, acc, classes=classes)
        return trials / (time.perf_counter() - t)


def estimator_cost(space, res, classes, fn, n: int = 20) -> float:
    """Seconds per Arch of ``fn`` on fresh Archs (batch of one, as the search calls it)."""
    archs = [replace(a, classes=classes) for a in space.sample(999, n, res)]
    fn([archs[0]])  # warm-up (model build, dataset load)
    t = time.perf_counter()
    for a in archs[1:]:
        fn([a])
    return (time.perf_counter() - t) / (n - 1)


# ---- main ----------------------------------------------------------------------------------------

def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    args = parse_args()
    space, res, classes, lat, acc, lat_name, acc_name, notes = setup(args)
    load0 = os.getloadavg()
    out = [f"### Search benchmark ({time.strftime('%Y-%m-%d')})", "",
           f"Machine: {platform.machine()}, {os.cpu_count()} cores ({platform.processor() or platform.platform()}), "
           f"Python {platform.python_version()}, optuna {optuna.__version__}; load average "
           f"{load0[0]:.2f} at start. Space {space.name} at {res} px, {classes} classes. "
           f"Latency: {lat_name}. Accuracy: {acc_name}.", ""]
    out += [f"Note: {n}" for n in notes]
    print("\n".join(out), flush=True)

    if not args.skip_hv:
        t = time.perf_counter()
        ref = reference_front(space, res, classes, lat, acc, args.reference)
        nadir = [float(ref[:, 0].min()), float(ref[:, 1].max())]
        from hwnas.search import hypervolume, pareto_mask

        ref_hv = hypervolume(ref, ["maximize", "minimize"], nadir)
        n_front = int(pareto_mask(ref, ["maximize", "minimize"]).sum())
        print(f"reference: {args.reference} random samples, front {n_front} points, "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        checkpoints = [c for c in (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 5000)
                       if c < args.trials] + [args.trials]
        rows = {}
        for sampler in args.samplers:
            shares, walls, reach = [], [], []
            for seed in args.seeds:
                t = time.perf_counter()
                vals, wall = run_sampler(space, res, classes, lat, acc, sampler, seed, args.trials,
                                         args.population)
                curve = [hv_share(vals[:c], ref_hv, nadir) for c in checkpoints]
                full = [hv_share(vals[:k], ref_hv, nadir) for k in range(10, len(vals) + 1, 10)]
                hit = next((10 * (i + 1) for i, v in enumerate(full) if v >= 0.98), None)
                shares.append(curve)
                walls.append(wall / max(1, len(vals)))
                reach.append(hit)
                print(f"{sampler} seed {seed}: {curve[-1] * 100:.1f} % at {args.trials} trials, "
                      f"98 % at {hit or '-'}; {time.perf_counter() - t:.0f} s", file=sys.stderr,
                      flush=True)
            rows[sampler] = (np.array(shares), walls, reach)
        hdr = "| sampler | " + " | ".join(f"{c} trials" for c in checkpoints) + \
              " | trials to 98 % | sampler ms/trial |"
        lines = ["", f"Hypervolume share of the front of {args.reference:,} random samples "
                 f"(mean over seeds {','.join(map(str, args.seeds))}; min in brackets); "
                 f"reference point = the samples' nadir. Accuracy: {acc_name}. Latency: {lat_name}.",
                 "", hdr, "|" + "---|" * (len(checkpoints) + 3)]
        for sampler, (sh, walls, reach) in rows.items():
            cells = [f"{m * 100:.1f} % ({lo * 100:.1f})" for m, lo in zip(sh.mean(0), sh.min(0), strict=True)]
            r = [x for x in reach if x is not None]
            reach_txt = (f"{int(np.median(r))} ({len(r)}/{len(reach)} seeds)" if r else
                         f"not reached (0/{len(reach)})")
            lines.append(f"| {sampler} | " + " | ".join(cells) +
                         f" | {reach_txt} | {np.mean(walls) * 1e3:.1f} |")
        print("\n".join(lines), flush=True)
        out += lines

    if not args.skip_overhead:
        rates = {k: overhead(space, res, classes, lat, acc, args.overhead_trials, k)
                 for k in ("memory", "journal")}
        pred_s = estimator_cost(space, res, classes, lat.fn)
        lines = ["", f"Search overhead: NSGA-II, {args.overhead_trials} trials, estimators "
                 "cached (timed on a second study repeating the same Archs); estimator costs on "
                 "19 fresh Archs, one per call.", "",
                 "| what | trials/s | ms per trial |", "|---|---|---|",
                 f"| search loop, in-memory storage | {rates['memory']:.1f} | {1e3 / rates['memory']:.1f} |",
                 f"| search loop, journal file (fsync per write) | {rates['journal']:.1f} | "
                 f"{1e3 / rates['journal']:.1f} |",
                 f"| latency: {lat_name} | {1 / pred_s:.0f} | {pred_s * 1e3:.2f} |"]
        try:
            from hwnas.accuracy import make_estimator

            with tempfile.TemporaryDirectory() as d:
                est = make_estimator("zero-cost", args.data, res, seed=0,
                                     cache_path=Path(d) / "c.json")
                zc = estimator_cost(space, res, classes, est.score)
            lines.append(f"| accuracy: zero-cost proxy ({args.data}) | {1 / zc:.1f} | {zc * 1e3:.0f} |")
        except Exception as e:
            lines.append(f"| accuracy: zero-cost proxy | n/a ({str(e).splitlines()[0][:60]}) | |")
        print("\n".join(lines), flush=True)
        out += lines

    load1 = os.getloadavg()
    tail = f"\nLoad average at the end: {load1[0]:.2f}."
    print(tail)
    out.append(tail)
    if args.out:
        Path(args.out).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
