#!/usr/bin/env python3
"""Profiler benchmark: how long profiling a space takes, and how repeatable the statistics are.

1. **Profile**: for each resolution, the distinct blocks of SPACE, the networks added for
   the predictor, and the wall time of ``hwnas profile`` on a local device (this machine,
   onnxruntime single-threaded unless --threads), split into ONNX export and measurement.
   Runs in a throw-away HWNAS_HOME, so the shipped tables are not touched.
2. **Repeatability**: the same N networks (and N blocks) of SPACE at the first resolution,
   measured in R separate runs (separate processes, each a fresh results file) with the
   profiling protocol. For each recorded statistic (min, p10, median) and each model, the
   spread is (largest - smallest of the R values) / (median of the R values), in %; the
   table gives the median and the largest spread over the models.

Targets (issue 3): <= 1,000 measurements and <= 5 minutes for one space at one resolution;
repeatability of the chosen statistic <= 3 % (median over networks).

Usage::

    python benchmarks/profile_bench.py                 # full: mobilenetv2 at 96 and 224
    python benchmarks/profile_bench.py --quick         # a fast smoke run (quick protocol)
    python benchmarks/profile_bench.py --skip-profile  # repeatability only
    python benchmarks/profile_bench.py --passes 20 --min-time 0.2   # try another protocol

Prints a markdown table (also written to --out if given) with the date, the machine and
the load average before and after, since timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: quick protocol, resolution 96 only, 10 networks, 5 models x 3 runs")
    ap.add_argument("--space", default="mobilenetv2")
    ap.add_argument("--resolutions", default=None, help="comma-separated [96,224]")
    ap.add_argument("--networks", type=int, default=None, help="networks per profile [150]")
    ap.add_argument("--repeat-models", type=int, default=None,
                    help="networks (and as many blocks) in the repeatability test [20]")
    ap.add_argument("--runs", type=int, default=3, help="separate runs for repeatability [3]")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-profile", action="store_true")
    ap.add_argument("--skip-repeat", action="store_true")
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--min-repeats", type=int)
    ap.add_argument("--min-time", type=float)
    ap.add_argument("--passes", type=int)
    ap.add_argument("--burst-warmup", type=int)
    ap.add_argument("--sample-ms", type=float)
    ap.add_argument("--out", help="also write the markdown table to this file")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temp folder)")
    return ap.parse_args()


def machine() -> str:
    from hwnas.onboard.bench import provenance

    pv = provenance()
    return (f"{pv['cpu_model']}, {pv['cores']} cores, {pv['machine']}, {pv['os']}, "
            f"Python {pv['python']}, onnxruntime {pv['onnxruntime']}")


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _timed(fn, spent: dict):
    """``fn`` that adds its wall time to ``spent["export"]``."""
    def wrapper(*a, **kw):
        t = time.monotonic()
        try:
            return fn(*a, **kw)
        finally:
            spent["export"] += time.monotonic() - t
    return wrapper


def bench_profile(args, protocol, work: Path) -> list[str]:
    import hwnas.profiling.profile as prof
    from hwnas.profiling.hosts import DeviceConfig, save_device
    from hwnas.space import load_space

    rows = ["| space | resolution | distinct blocks | networks | measurements | export s | "
            "measure s | total wall s |", "|---|---|---|---|---|---|---|---|"]
    space = load_space(args.space)
    real_build = prof.build_bundle
    for res in args.resolutions:
        home = work / f"profile-{res}"
        os.environ["HWNAS_HOME"] = str(home)
        save_device(DeviceConfig(name="bench", target="local", threads=args.threads))
        spent = {"export": 0.0}
        prof.build_bundle = _timed(real_build, spent)
        t0 = time.monotonic()
        try:
            rep = prof.profile("bench", space, res, networks=args.networks, protocol=protocol)
        finally:
            prof.build_bundle = real_build
        total = time.monotonic() - t0
        n = rep.blocks_total + rep.networks_total
        rows.append(f"| {space.name} | {res} | {rep.blocks_total} | {rep.networks_total} | {n} | "
                    f"{spent['export']:.0f} | {total - spent['export']:.0f} | {total:.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def bench_repeat(args, protocol, work: Path) -> list[str]:
    import random

    from hwnas.onboard.runner import read_records
    from hwnas.profiling.profile import block_entry, build_bundle, network_entry, sample_networks
    from hwnas.space import load_space

    space = load_space(args.space)
    res = args.resolutions[0]
    n = args.repeat_models
    nets = [network_entry(a) for a in sample_networks(space, res, n, seed=123)]
    pieces = space.pieces(res)
    blocks = [block_entry(p) for p in random.Random(123).sample(pieces, min(n, len(pieces)))]
    entries = nets + blocks
    random.Random(0).shuffle(entries)
    bundle = build_bundle(work / "repeat", entries, protocol, progress=False)
    runs = []
    for i in range(args.runs):
        out = bundle / f"run{i}.jsonl"
        out.unlink(missing_ok=True)
        t = time.monotonic()
        r = subprocess.run([sys.executable, "run.py", "--results", out.name], cwd=bundle,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"run {i} failed: {r.stderr.strip()}")
        print(f"repeatability run {i + 1}/{args.runs}: {time.monotonic() - t:.0f} s",
              file=sys.stderr, flush=True)
        runs.append({x["id"]: x for x in read_records(str(out)) if x["type"] == "result"})
    rows = ["| models | statistic | median spread % | largest spread % |", "|---|---|---|---|"]
    kinds = {e.id: e.kind for e in entries}
    for kind, label in (("network", f"{len(nets)} networks"), ("block", f"{len(blocks)} blocks")):
        ids = [i for i in runs[0] if kinds[i] == kind]
        for stat in ("min", "p10", "median"):
            spreads = []
            for i in ids:
                vals = [run[i][f"{stat}_ms"] for run in runs]
                spreads.append(100.0 * (max(vals) - min(vals)) / statistics.median(vals))
            rows.append(f"| {label} | {stat} | {statistics.median(spreads):.1f} | "
                        f"{max(spreads):.1f} |")
    return rows


def main() -> int:
    args = parse_args()
    from hwnas.profiling.profile import DEFAULT_NETWORKS, make_protocol

    if args.resolutions is None:
        args.resolutions = [96] if args.quick else [96, 224]
    else:
        args.resolutions = [int(x) for x in args.resolutions.split(",")]
    if args.networks is None:
        args.networks = 10 if args.quick else DEFAULT_NETWORKS
    if args.repeat_models is None:
        args.repeat_models = 5 if args.quick else 20
    protocol = make_protocol(args.threads, quick=args.quick, warmup=args.warmup,
                             min_repeats=args.min_repeats, min_time_s=args.min_time,
                             passes=args.passes, burst_warmup=args.burst_warmup,
                             sample_ms=args.sample_ms)
    head = [f"Profiler benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}{' (--quick)' if args.quick else ''}",
            f"machine: {machine()}",
            f"protocol: {json.dumps(protocol.to_dict())}",
            f"load average at start: {load()}", ""]
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        body: list[str] = []
        if not args.skip_profile:
            body += bench_profile(args, protocol, work) + [""]
        if not args.skip_repeat:
            body += [f"Repeatability: {args.space} at {args.resolutions[0]}, {args.runs} separate "
                     f"runs; spread = (max - min) / median of the runs' values", ""]
            body += bench_repeat(args, protocol, work) + [""]
    text = "\n".join(head + body + [f"load average at end: {load()}"]) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
