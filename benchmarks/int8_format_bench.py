"""int8 formats on this CPU: speed of one network quantized as u8s8, u8s8-rr (7-bit weights,
onnxruntime's reduce_range) and u8u8 beside fp32, timed interleaved (15 rounds x 5 runs, 1
thread; min and median of the rounds' means), with the probe conv's error per format in output
steps vs exact integer arithmetic (hwnas.onboard.qdq.error_steps).

    python benchmarks/int8_format_bench.py [ARCH] [-r PX]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hwnas.baselines import resolve_arch
from hwnas.export import export_arch
from hwnas.onboard.isa import FORMATS, describe, detect
from hwnas.onboard.qdq import error_steps
from hwnas.profiling.quantize import Calibration, quantize_model

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("arch", nargs="?", default="mbv2-0.5")
ap.add_argument("-r", "--resolution", type=int, default=96)
args = ap.parse_args()
a = resolve_arch(args.arch).with_resolution(args.resolution)
tmp = Path(tempfile.mkdtemp(prefix="hwnas-fmt-"))
export_arch(a, tmp / "m.onnx")
files = {"fp32": tmp / "m.onnx"}
for f in FORMATS:
    quantize_model(tmp / "m.onnx", tmp / f"m.{f}.onnx", Calibration(samples=8, format=f))
    files[f] = tmp / f"m.{f}.onnx"
so = ort.SessionOptions()
so.intra_op_num_threads = 1
S = {k: ort.InferenceSession(str(v), so, providers=["CPUExecutionProvider"]) for k, v in files.items()}
x = np.random.default_rng(0).standard_normal((1, 3, a.resolution, a.resolution), dtype=np.float32)
name = S["fp32"].get_inputs()[0].name
load0 = os.getloadavg()[0]
times = {k: [] for k in S}
for _ in range(15):
    for k, s in S.items():
        t = time.perf_counter()
        for _ in range(5):
            s.run(None, {name: x})
        times[k].append((time.perf_counter() - t) * 200)
print(f"{args.arch} at {a.resolution} px, onnxruntime {ort.__version__}, 1 thread; this CPU: "
      f"{describe(detect())}; {time.strftime('%Y-%m-%d %H:%M')}, load {load0:.1f} -> "
      f"{os.getloadavg()[0]:.1f}")
f32 = np.median(times["fp32"])
print(f"{'format':<9}{'min ms':>9}{'median ms':>11}{'fp32/x (median)':>17}{'probe error steps':>19}")
for k, v in times.items():
    v = np.array(v)
    err = "-" if k == "fp32" else f"{error_steps(k):g}"
    print(f"{k:<9}{v.min():>9.3f}{np.median(v):>11.3f}{f32 / np.median(v):>17.2f}{err:>19}")
