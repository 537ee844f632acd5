#!/usr/bin/env python3
"""Predictor coverage benchmark (issue 17): out-of-space networks, before and after --refine.

On a device whose table holds the spaces at one resolution R (e.g. ``hwnas profile`` of
mobilenetv2 and mobilenetv3 at 96), the out-of-space networks -- the baselines (MobileNetV2
x0.35-1.0, MobileNetV3-small) and the arch files of ``benchmarks/archs/`` (MnasNet-A1/-B1-,
ProxylessNAS-mobile-, FBNet-, EfficientNet-B0-, MobileNetV3-large-like), all at R -- are
timed in two interleaved rounds with the table's protocol (one before the refinement, one
after it); the truth is the minimum of the two rounds (the statistic is ``min``), and the
second round scored against the first is the repeatability floor. Figures, before and after
``refine(N)`` (``hwnas profile --device D --refine N``): the share predicted at all, the
share within +-10 %, MAPE and Kendall tau, and the same for the predictor before issue 17
(no activation transfer, unclipped network model). The out-of-space networks are never put in the
table (refine does not see them).

Usage (the refinement adds to the device's table: run it on a copy)::

    cp -r $HWNAS_HOME /tmp/copy && HWNAS_HOME=/tmp/copy python benchmarks/coverage_bench.py \\
        --device cov --refine 50 --out cov.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", required=True)
    ap.add_argument("--resolution", type=int, help="[the table's lowest]")
    ap.add_argument("--refine", type=int, default=50, metavar="N", help="[50]")
    ap.add_argument("--accept-drift", action="store_true",
                    help="merge refinement chunks beyond the drift threshold anyway")
    ap.add_argument("--out", help="also write the markdown to this file")
    return ap.parse_args()


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def out_of_space(r: int) -> dict[str, object]:
    from hwnas.arch import load_arch
    from hwnas.baselines import BASELINES, baseline

    nets = {n: baseline(n, r) for n in BASELINES}
    for f in sorted((ROOT / "benchmarks" / "archs").glob("*.yaml")):
        nets[f.stem] = load_arch(f).with_resolution(r)
    return nets


def predict_all(pred, nets) -> dict[str, float | None]:
    from hwnas.errors import HwnasError

    out = {}
    for name, a in nets.items():
        try:
            out[name] = float(pred.predict([a])[0])
        except HwnasError:
            out[name] = None
    return out


def before_issue(blocks, networks, nets) -> dict[str, float | None]:
    """What the predictor before issue 17 predicted: only networks whose every operator was
    measured on its own piece kind (no activation transfer), and an unclipped network model."""
    from hwnas.pieces import arch_pieces
    from hwnas.predictor import LatencyPredictor, NetworkModel, operator_of

    old = LatencyPredictor(network_model=NetworkModel(clip=False)).fit(blocks, networks)
    ops = set(old.block_model_.operators_)
    return {n: float(old.predict([a])[0]) if all(operator_of(p) in ops for p in arch_pieces(a))
            else None for n, a in nets.items()}


def row(label: str, truth: dict, got: dict) -> str:
    from hwnas.predictor import latency_metrics

    names = list(truth)
    ok = [n for n in names if got.get(n) is not None]
    m = latency_metrics([truth[n] for n in ok], [got[n] for n in ok])
    within = sum(abs(got[n] / truth[n] - 1) <= 0.10 for n in ok)
    return (f"| {label} | {len(ok)}/{len(names)} | {within}/{len(names)} "
            f"({100 * within / len(names):.0f} %) | {m['mape_pct']:.2f} | {m['kendall_tau']:.3f} |")


def main() -> int:
    import torch

    torch.set_num_threads(1)
    from hwnas.context import Device
    from hwnas.onboard.bench import Protocol
    from hwnas.pieces import Piece
    from hwnas.profiling.drift import DriftSettings
    from hwnas.profiling.measure import measure
    from hwnas.profiling.refine import refine

    args = parse_args()
    t0, load0, date0 = time.monotonic(), load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    dev = Device.load(args.device)
    table = dev.table
    res = sorted({Piece.from_key(k).h for k in table.blocks if k.startswith("stem_")})
    r = args.resolution or res[0]
    protocol = Protocol.from_dict(table.provenance.get("protocol") or {})
    nets = out_of_space(r)
    archs = list(nets.values())
    ids = {n: a.to_string() for n, a in nets.items()}
    if any(s in table.networks for s in ids.values()):
        print("warning: some out-of-space networks are in the table already", file=sys.stderr)

    rounds = [measure(dev, archs, protocol=protocol, progress=False)]
    pred = dev.predictor("min")
    before = predict_all(pred, nets)
    old = before_issue(*table.latencies("min"), nets)
    n_blocks, n_nets = len(table.blocks), len(table.networks)
    t = time.monotonic()
    # chunks whose sentinels drifted beyond the threshold are measured again (up to 3 times)
    # and otherwise left out: merged, they teach the predictor the load of that minute
    rep = refine(dev, args.refine, protocol=protocol, progress=False,
                 drift=DriftSettings(accept=args.accept_drift))
    refine_s = time.monotonic() - t
    after_dev = Device(args.device)
    after = predict_all(after_dev.predictor("min"), nets)
    rounds.append(measure(after_dev, archs, protocol=protocol, progress=False))
    first = {n: rounds[0].stats[ids[n]].value("min") for n in nets}
    second = {n: rounds[1].stats[ids[n]].value("min") for n in nets}
    truth = {n: min(first[n], second[n]) for n in nets}
    # the same, at the table's speed: each round divided by its sentinels' drift
    drifts = [m.drift.median if m.drift else 1.0 for m in rounds]
    first_c = {n: v / drifts[0] for n, v in first.items()}
    second_c = {n: v / drifts[1] for n, v in second.items()}
    truth_c = {n: min(first_c[n], second_c[n]) for n in nets}

    def results_table(old_label: str, truth: dict, first: dict, second: dict) -> list[str]:
        """The four predictors against ``truth``, and the repeatability floor."""
        return ["| predictor | predicted at all | within ±10 % | MAPE % | Kendall τ |",
                "|---|---|---|---|---|",
                row(old_label, truth, old), row("before refine", truth, before),
                row(f"after refine {args.refine}", truth, after),
                row("repeatability floor (round 2 vs round 1)", first, second)]

    lines = [
        f"`python benchmarks/coverage_bench.py --device {args.device} --refine {args.refine}` "
        f"({date0}, {time.monotonic() - t0:.0f} s; load average before {load0}, after {load()}; "
        f"onnxruntime {table.provenance.get('onnxruntime')}, {protocol.threads} thread; "
        f"statistic min). Table: {n_blocks} blocks + {n_nets} networks at {', '.join(map(str, res))}"
        f" px; protocol warmup {protocol.warmup}, {protocol.min_repeats} samples, "
        f"{protocol.passes} passes. {len(nets)} out-of-space networks at {r} px, timed in 2 "
        "rounds (before / after the refinement), truth = min of the rounds; refinement chunks beyond "
        f"the drift threshold {'merged anyway' if args.accept_drift else 're-measured or left out'}.",
        "",
        *results_table("before issue 17 (no activation transfer, unclipped network model)", truth,
                       first, second), "",
        f"Drift-corrected (each round divided by its sentinels' drift, x{drifts[0]:.3f} and "
        f"x{drifts[1]:.3f}: the truth at the speed the table was measured at):", "",
        *results_table("before issue 17", truth_c, first_c, second_c), "",
        f"Refinement: {rep.networks} networks + {rep.pieces} pieces measured in {refine_s:.0f} s "
        f"(whole step, with both cross-validations); held-out on the device's own networks: "
        + "; ".join(f"{k} {b:.2f} -> {a:.2f}" for k, (b, a) in rep.overall.items()), "",
        "| network | measured ms | before issue 17 % | before refine % | after refine % | "
        "round 2 vs 1 % |", "|---|---|---|---|---|---|"]
    for n in nets:
        def pct(v, n=n):
            return "n/a" if v is None else f"{100 * (v / truth[n] - 1):+.1f}"
        lines.append(f"| {n} | {truth[n]:.3f} | {pct(old[n])} | {pct(before[n])} | {pct(after[n])} | "
                     f"{100 * (second[n] / first[n] - 1):+.1f} |")
    lines += ["", "```", rep.summary(12), "```"]
    md = "\n".join(lines)
    print(md)
    if args.out:
        Path(args.out).write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
