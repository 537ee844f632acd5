#!/usr/bin/env python3
"""Latency predictor benchmark: held-out accuracy of four predictors, and speed.

1. **Accuracy** (``hwnas predictor eval``): the device's whole-network measurements of
   the spaces are split into K folds (KFold, shuffled, seed 0); each fold is predicted by
   models fitted on the other folds. Baseline networks (MobileNetV2 widths,
   MobileNetV3-small, at any resolution) are predicted by models fitted on all space
   networks. Four predictors side by side: MACs-linear (least-squares line on MACs), LUT
   sum, block-model sum, full predictor. RMSE, MAPE, share within +-5 % / +-10 %, Kendall
   tau, per group (space@resolution, baselines).
2. **Targets** (issue 4): held-out random mobilenetv2 networks at 224: >= 99 % within
   +-10 %, >= 90 % within +-5 %, Kendall tau >= 0.95; baselines: >= 90 % within +-10 %;
   at most 1,000 device measurements (the space's blocks at that resolution + networks).
3. **Repeatability floor** (``--repeat N``, local devices only): N networks of the table
   are measured again now with the profiling protocol, and the new values are scored as
   if they were predictions of the table's values. No predictor can agree with the table
   better than a re-measurement does; on a shared machine this is what bounds the figures.
4. **Speed**: ``LatencyPredictor.predict`` on 10,000 random Archs per space at a measured
   resolution (first call: per-piece cache empty; second call: other Archs, warm cache),
   the time to fit on the table (``for_device``) and to load + refit a saved predictor.

Usage::

    python benchmarks/predictor_bench.py                          # the reference device
    python benchmarks/predictor_bench.py --device pi4 --repeat 40 --out bench.md
    HWNAS_HOME=/tmp/h python benchmarks/predictor_bench.py --device dev

Prints a markdown table (also written to --out) with the date, the machine and the load
average before and after, since timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    from hwnas.paths import REFERENCE_DEVICE

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=REFERENCE_DEVICE, help=f"[{REFERENCE_DEVICE}]")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--statistic", choices=("min", "p10", "median"))
    ap.add_argument("--repeat", type=int, default=0, metavar="N",
                    help="re-measure N networks per group for the repeatability floor [0: skip]")
    ap.add_argument("--speed", type=int, default=10000, metavar="N",
                    help="Archs per predict() call in the speed test [10000]")
    ap.add_argument("--out", help="also write the markdown to this file")
    return ap.parse_args()


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def fmt(r: dict) -> str:
    if not r["n"]:
        return "0 | n/a | n/a | n/a | n/a | n/a"
    return (f"{r['n']} | {r['rmse_ms']:.4f} | {r['mape_pct']:.2f} | {r['within5_pct']:.1f} | "
            f"{r['within10_pct']:.1f} | {r['kendall_tau']:.3f}")


def bench_accuracy(args, dev, spaces) -> tuple[list[str], object, dict]:
    from hwnas.predictor import PREDICTOR_NAMES, evaluate, network_groups

    settings = dev.predictor_settings()
    stat = args.statistic or settings.get("statistic") or dev.table.statistic
    settings["statistic"] = stat
    blocks, nets = dev.table.latencies(stat)
    groups = network_groups(nets, spaces)
    t = time.perf_counter()
    ev = evaluate(blocks, nets, groups, folds=args.folds, settings=settings)
    took = time.perf_counter() - t
    rows = [f"Held-out accuracy: {args.folds}-fold over the space networks, baselines held out "
            f"(statistic {stat}; {took:.0f} s)", "",
            "| group | predictor | n | RMSE ms | MAPE % | within ±5 % | within ±10 % | Kendall τ |",
            "|---|---|---|---|---|---|---|---|"]
    for r in ev.rows:
        rows.append(f"| {r['group']} | {PREDICTOR_NAMES[r['predictor']]} | {fmt(r)} |")
    args.statistic = stat
    return rows, ev, groups


def bench_targets(table, ev, groups, spaces) -> list[str]:
    by = {(r["group"], r["predictor"]): r for r in ev.rows}
    rows = ["Targets (full predictor, held out)", "",
            "| what | target | reached |", "|---|---|---|"]
    g = "mobilenetv2@224"
    if (g, "full") in by:
        r = by[(g, "full")]
        sp = next(s for s in spaces if s.name == "mobilenetv2")
        have, _ = table.coverage(sp, 224)
        n_nets = sum(v == g for v in groups.values())
        rows += [f"| {g}: within ±10 % | >= 99 % | {r['within10_pct']:.1f} % |",
                 f"| {g}: within ±5 % | >= 90 % | {r['within5_pct']:.1f} % |",
                 f"| {g}: Kendall τ | >= 0.95 | {r['kendall_tau']:.3f} |",
                 f"| {g}: device measurements | <= 1,000 | {have} blocks + {n_nets} networks "
                 f"= {have + n_nets} |"]
    else:
        rows.append(f"| {g} | (no networks of mobilenetv2 at 224 in this table) | |")
    if ("baselines", "full") in by:
        r = by[("baselines", "full")]
        rows.append(f"| baselines ({r['n']}): within ±10 % | >= 90 % | {r['within10_pct']:.1f} % |")
    return rows


def bench_repeat(args, dev, ev) -> list[str]:
    from hwnas.arch import parse_string
    from hwnas.predictor import latency_metrics
    from hwnas.profiling.measure import measure_archs
    from hwnas.profiling.profile import make_protocol

    cfg, table = dev.config, dev.table
    if not cfg.is_local:
        return [f"(repeatability floor skipped: device '{args.device}' is not local)"]
    stat = args.statistic
    by_group: dict[str, list[str]] = {}
    for s, p in ev.predictions.items():
        by_group.setdefault(p["group"], []).append(s)
    rows = [f"Repeatability floor: {args.repeat} networks per group measured again now "
            f"(profiling protocol, {cfg.threads} thread(s)), scored against the table", "",
            "| group | 'predictor' | n | RMSE ms | MAPE % | within ±5 % | within ±10 % | Kendall τ |",
            "|---|---|---|---|---|---|---|---|"]
    for g, members in sorted(by_group.items()):
        pick = random.Random(0).sample(sorted(members), min(args.repeat, len(members)))
        archs = [parse_string(s) for s in pick]
        t = time.monotonic()
        st = measure_archs(dev, archs, protocol=make_protocol(cfg.threads),
                           progress=False)
        print(f"re-measured {len(pick)} networks of {g} in {time.monotonic() - t:.0f} s",
              file=sys.stderr, flush=True)
        m = latency_metrics([table.networks[s].value(stat) for s in pick],
                            [st[s].value(stat) for s in pick])
        rows.append(f"| {g} | re-measurement | {fmt(m)} |")
    return rows


def bench_speed(args, spaces) -> list[str]:
    from hwnas.predictor import LatencyPredictor

    t = time.perf_counter()
    pred = LatencyPredictor.for_device(args.device, args.statistic)
    fit_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = pred.save(Path(tmp) / "predictor.json")
        t = time.perf_counter()
        LatencyPredictor.load(path, check_device=False)
        load_s = time.perf_counter() - t
    rows = [f"Speed (fit on {len(pred.blocks_)} blocks + {len(pred.networks_)} networks: "
            f"{fit_s:.2f} s; load a saved predictor and refit: {load_s:.2f} s)", "",
            "| space @ resolution | Archs | first call (cold cache) Archs/s | "
            "second call (warm) Archs/s |", "|---|---|---|---|"]
    lo, hi = pred.resolutions_[0], pred.resolutions_[-1]
    for sp in spaces:
        res = [r for r in sp.resolutions if r in pred.resolutions_]
        if not res:
            continue
        try:
            archs = sp.sample(seed=7, n=2 * args.speed, resolution=res[0])
            pred.predict(archs[:1])
        except Exception as e:  # e.g. an operator the table never measured
            rows.append(f"| {sp.name} @ {res[0]} | - | {str(e)[:80]} | |")
            continue
        t = time.perf_counter()
        pred.predict(archs[:args.speed])
        cold = args.speed / (time.perf_counter() - t)
        t = time.perf_counter()
        pred.predict(archs[args.speed:])
        warm = args.speed / (time.perf_counter() - t)
        rows.append(f"| {sp.name} @ {res[0]} | {args.speed} | {cold:,.0f} | {warm:,.0f} |")
    rows.append(f"(resolutions measured: {lo}..{hi})")
    return rows


def main() -> int:
    args = parse_args()
    from hwnas.context import Device
    from hwnas.onboard.bench import provenance
    from hwnas.space import load_spaces

    dev = Device.load(args.device)
    table = dev.table
    pv = table.provenance
    here = provenance()
    spaces = load_spaces()
    head = [f"Latency predictor benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}",
            f"table: {args.device} ({len(table.blocks)} blocks, {len(table.networks)} networks; "
            f"measured on {pv.get('cpu_model')}, {pv.get('machine')}, onnxruntime "
            f"{pv.get('onnxruntime')}, {pv.get('threads')} thread(s), {pv.get('date')})",
            f"predictor run on: {here['cpu_model']}, {here['cores']} cores, Python "
            f"{here['python']}",
            f"load average at start: {load()}", ""]
    body: list[str] = []
    acc, ev, groups = bench_accuracy(args, dev, spaces)
    body += acc + [""] + bench_targets(table, ev, groups, spaces) + [""]
    if args.repeat:
        body += bench_repeat(args, dev, ev) + [""]
    body += bench_speed(args, spaces) + [""]
    text = "\n".join(head + body + [f"load average at end: {load()}"]) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
