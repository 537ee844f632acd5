#!/usr/bin/env python3
"""int8 benchmark: what static QDQ int8 gains over fp32 on this machine, per piece type and
for whole networks (issue 12).

Every model is exported to ONNX (fp32, random weights), quantized with the settings of
``hwnas quantize`` / ``hwnas profile --precision int8`` (:func:`hwnas.profiling.quantize.quantize_model`:
quant_pre_process, QDQ, per-channel int8 weights, uint8 activations, MinMax on 8 random
inputs), and both are timed with onnxruntime at 1 thread (intra and inter op), in one
process, **interleaved**: every round runs each model once, in a shuffled order, so fp32 and
int8 share the machine's load; after W warm-up rounds, N timed rounds; the latency is the
minimum over the N rounds (the statistic the tables use on this shared machine).

1. **Pieces**: MBConv blocks (expand 6, k3, stride 1, residual) by activation (relu6 vs
   hswish), squeeze-excite (0 vs 0.25) and width (channels) x resolution.
2. **Networks**: MobileNetV2 at widths 0.35/0.5/1.0, MobileNetV3-small, and networks sampled
   from the shipped spaces (mobilenetv2 at 96, mobilenetv3 at 224).

Usage::

    python benchmarks/int8_bench.py             # the README's tables (~10 min here)
    python benchmarks/int8_bench.py --quick     # a smoke run (few models, few rounds)

Prints markdown tables with the load average before and after (timings here are noisy).
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


def session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_interleaved(files: dict[str, Path], rounds: int, warmup: int, seed: int = 0
                     ) -> dict[str, float]:
    """Minimum latency (ms) of each model over ``rounds`` interleaved rounds."""
    import numpy as np

    sess, feeds = {}, {}
    for k, f in files.items():
        s = session(f)
        i = s.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        sess[k], feeds[k] = s, {i.name: np.random.default_rng(0).standard_normal(
            shape, dtype=np.float32)}
    best = {k: float("inf") for k in files}
    order = list(files)
    rng = random.Random(seed)
    for r in range(warmup + rounds):
        rng.shuffle(order)
        for k in order:
            t = time.perf_counter()
            sess[k].run(None, feeds[k])
            dt = time.perf_counter() - t
            if r >= warmup:
                best[k] = min(best[k], dt)
    return {k: 1e3 * v for k, v in best.items()}


def pair(name: str, fp32: bytes, d: Path) -> tuple[Path, Path]:
    from hwnas.profiling.quantize import Calibration, quantize_model

    a, b = d / f"{name}.onnx", d / f"{name}.int8.onnx"
    a.write_bytes(fp32)
    quantize_model(a, b, Calibration(samples=8))
    return a, b


def load() -> str:
    try:
        return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load ?"


def bench_pieces(d: Path, quick: bool, rounds: int, warmup: int) -> list[str]:
    from hwnas.export import export_piece
    from hwnas.pieces import Piece

    grid = [(16, 56), (32, 28), (64, 14), (96, 14)] if not quick else [(16, 28), (64, 14)]
    files, rows = {}, []
    for c, h in grid:
        for act in ("relu6", "hswish"):
            for se in (0, 0.25):
                p = Piece("mb", h, c, c, 3, 1, 6 * c, int(6 * c * se) if se else 0, act, True)
                name = f"c{c}_h{h}_{act}_se{se}"
                files[name], files[name + "@int8"] = pair(name, export_piece(p), d)
                rows.append((name, c, h, act, se))
    t = time_interleaved(files, rounds, warmup)
    out = ["| channels x res | act | SE | fp32 ms | int8 ms | int8/fp32 |", "|---|---|---|---|---|---|"]
    for name, c, h, act, se in rows:
        a, b = t[name], t[name + "@int8"]
        out.append(f"| {c} x {h} | {act} | {se:g} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    # summary per factor: geometric mean of the ratio
    import math

    def gm(sel):
        v = [t[n + "@int8"] / t[n] for n, *_ in rows if sel(n)]
        return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")

    out.append("")
    out.append(f"geometric mean int8/fp32: relu6 {gm(lambda n: 'relu6' in n):.2f}, hswish "
               f"{gm(lambda n: 'hswish' in n):.2f}; no SE {gm(lambda n: n.endswith('se0')):.2f}, "
               f"SE {gm(lambda n: n.endswith('se0.25')):.2f}")
    return out


def bench_networks(d: Path, quick: bool, rounds: int, warmup: int) -> list[str]:
    from hwnas.baselines import baseline
    from hwnas.export import export_piece
    from hwnas.profiling.bundle import compose_network
    from hwnas.space import load_space

    archs = [("mbv2-0.35@96", baseline("mbv2-0.35", 96)), ("mbv2-0.5@96", baseline("mbv2-0.5", 96))]
    if not quick:
        archs += [("mbv2-1.0@224", baseline("mbv2-1.0", 224)),
                  ("mbv3-small@224", baseline("mbv3-small", 224))]
    rng = random.Random(0)
    for sp_name, res, n in (("mobilenetv2", 96, 2), ("mobilenetv3", 224, 2 if not quick else 0)):
        sp = load_space(sp_name)
        for i in range(n):
            archs.append((f"{sp_name} #{i}@{res}", sp.arch_from_params(sp.sample_params(rng), res)))
    pieces = d / "pieces"
    pieces.mkdir(exist_ok=True)

    def piece_file(p):
        f = pieces / f"{p.key}.onnx"
        if not f.is_file():
            export_piece(p, f)
        return f

    files = {}
    for name, a in archs:
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)
        files[name], files[name + "@int8"] = pair(safe, compose_network(a, piece_file), d)
    t = time_interleaved(files, rounds, warmup)
    out = ["| network | fp32 ms | int8 ms | int8 speed-up |", "|---|---|---|---|"]
    for name, _ in archs:
        f, q = t[name], t[name + "@int8"]
        out.append(f"| {name} | {f:.3f} | {q:.3f} | {f / q:.2f}x |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, help="timed interleaved rounds [40; quick 5]")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    from hwnas.onboard.bench import cpu_model, dot_product_flags

    torch.set_num_threads(1)
    rounds = args.rounds or (5 if args.quick else 40)
    print(f"int8 benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()} "
          f"({' '.join(dot_product_flags()) or 'no int8 dot-product flags'}), onnxruntime "
          f"{ort.__version__}, 1 thread, min of {rounds} interleaved rounds; {load()} before")
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-bench-") as tmp:
        d = Path(tmp)
        print("\n#### Pieces (MBConv, expand 6, k3, stride 1, residual)\n")
        print("\n".join(bench_pieces(d, args.quick, rounds, args.warmup)))
        print(f"\n({load()})\n\n#### Networks\n")
        print("\n".join(bench_networks(d, args.quick, rounds, args.warmup)))
    print(f"\n({load()} after)")


if __name__ == "__main__":
    main()
