#!/usr/bin/env python3
"""int8 co-design benchmark (issue 12): does searching with int8 latency beat searching in
fp32 and quantizing afterwards?

Same space, trials, sampler seed, budget and accuracy estimator for both searches:

(a) ``hwnas search --precision fp32``, then its winners quantized (``retrain --int8``);
(b) ``hwnas search --precision int8`` (every trial's latency predicted as int8).

The space (default ``benchmarks/spaces/mobilenetv3-c10.yaml``: MobileNetV3-like, SE and
relu/hswish per stage, where int8's gain depends most on the architecture) is profiled on
the device in both precisions (``profile --precision fp32,int8``, networks calibrated on
dataset images). Each run's winners (``--top K``) and the baselines are retrained with one
recipe (``retrain --int8``: test accuracy of the fp32 and int8 ONNX models with
onnxruntime), then **all int8 models of both runs are timed side by side in one
interleaved measurement** (``hwnas.profiling.measure``, the profile protocol, the table's
sentinels). Reported:

* the int8 fronts (measured int8 latency, int8 test accuracy) of (a) and (b);
* for each (a) model, the fastest (b) model with int8 accuracy >= it (strict) and within
  the seeds' noise: the speed-up (a ms / b ms). Target: >= 1.2x at equal int8 accuracy;
* the accuracy cost of int8 for every retrained model (target: within 1 pp).

Every step is a separate hwnas command and resumable: rerunning skips what is done
(profile: complete table; search: an existing run; retrain: its checkpoints).

Usage::

    python benchmarks/codesign_int8.py --home /work/bench/i8home           # ~1.5 h here
    python benchmarks/codesign_int8.py --home /tmp/cd --quick              # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPACE_FILE = ROOT / "benchmarks" / "spaces" / "mobilenetv3-c10.yaml"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="HWNAS_HOME for the benchmark")
    ap.add_argument("--device", default="cd-local", help="a local device made if missing")
    ap.add_argument("--space", type=Path, default=SPACE_FILE)
    ap.add_argument("-r", "--resolution", type=int, default=32)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--networks", type=int, default=60, help="sampled networks profiled")
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--accuracy", default="zero-cost", help="search estimator (both runs)")
    ap.add_argument("--budget", default=None, help="latency budget for both searches")
    ap.add_argument("--top", type=int, default=4, help="winners retrained per run")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--subset", type=int, default=10000)
    ap.add_argument("--seeds", default="2", help="a count or a comma list (see retrain)")
    ap.add_argument("--baselines", default="mbv2-0.35,mbv3-small")
    ap.add_argument("--fronts-only", action="store_true",
                    help="no retraining: the two searches' whole Pareto fronts exported "
                    "(random weights), quantized and timed in int8 side by side, compared at "
                    "equal estimator score (e.g. at a resolution too costly to train at here)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny everything")
    a = ap.parse_args()
    if a.quick:
        a.networks, a.trials, a.top, a.epochs, a.subset, a.seeds = 20, 12, 2, 1, 600, "1"
        a.baselines = "mbv3-small"
    return a


def hw(home: Path, *args: str, log: list[str]) -> str:
    """Run ``hwnas ARGS`` with HWNAS_HOME=home; stderr (progress) passes through."""
    log.append("hwnas " + " ".join(shlex.quote(x) for x in args))
    print(f"$ {log[-1]}", file=sys.stderr, flush=True)
    r = subprocess.run([sys.executable, "-m", "hwnas", *args], stdout=subprocess.PIPE,
                       env={**os.environ, "HWNAS_HOME": str(home)}, cwd=home, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {log[-1]}")
    return r.stdout


def rows_of(path: Path) -> list[dict]:
    """A run's CSV file, typed (hwnas.runs.read_rows); exits naming it when missing."""
    from hwnas.runs import read_rows

    rows = read_rows(path)
    if rows is None:
        sys.exit(f"{path}: missing")
    return rows


def front(models: list[dict]) -> list[dict]:
    """The (int8 ms, int8 accuracy) Pareto front, by latency."""
    out, best = [], -1.0
    for m in sorted(models, key=lambda m: (m["ms"], -m["acc"])):
        if m["acc"] > best:
            out.append(m)
            best = m["acc"]
    return out


def fronts_only(a, home: Path, runs: dict, log: list[str], load0, t0: float) -> None:
    """Both runs' Pareto fronts in int8, measured side by side; compared at equal score."""
    import tempfile

    os.environ["HWNAS_HOME"] = str(home)
    from hwnas.arch import Arch
    from hwnas.export import export_arch
    from hwnas.profiling.measure import measure, measurement_protocol
    from hwnas.profiling.quantize import Calibration, quantize_model

    pts, files = [], []
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-codesign-"))
    from hwnas.runs import load_run

    for key, (name, _) in runs.items():
        run = load_run(home / "runs" / name)  # old runs' "accuracy" read as the score column
        col = run.score  # the run's score column (naswot_score, ...)
        for i, r in enumerate(sorted(run.pareto,
                                     key=lambda r: float(r["latency_ms"]))):
            arch = Arch.from_string(r["arch"])
            f32 = tmp / f"{key}{i}.onnx"
            export_arch(arch, f32)
            f8 = tmp / f"{key}{i}.int8.onnx"
            quantize_model(f32, f8, Calibration(None, samples=8))
            pts.append({"run": key, "name": f"{key.upper()}{i + 1}", "score": float(r[col]),
                        "pred_ms": float(r["latency_ms"]), "f32": f32, "f8": f8,
                        "hswish": sum(b.act == "hswish" for b in arch.blocks),
                        "se": sum(b.se > 0 for b in arch.blocks), "blocks": len(arch.blocks)})
            files += [f32, f8]
    proto = measurement_protocol(a.device, quick=a.quick)
    res = measure(a.device, files=files, protocol=proto, progress=False,
                  what="co-design fronts measurement")
    for m in pts:
        m["ms8"], m["ms32"] = (res.stats[str(m["f8"])].value("min"),
                               res.stats[str(m["f32"])].value("min"))
    load1 = os.getloadavg()
    print(f"\n## int8 co-design, search fronts only: {a.space.stem} at {a.resolution} px "
          f"({time.strftime('%Y-%m-%d')}, load {load0[0]:.2f} -> {load1[0]:.2f}, "
          f"{(time.time() - t0) / 60:.0f} min)\n")
    print(f"searches: {a.trials} trials, nsga2 seed 0, estimator {a.accuracy} on {a.data} "
          f"(the score stands in for accuracy: no training); every front arch exported with "
          f"random weights, quantized (random calibration), fp32 and int8 timed in one "
          f"interleaved run ({len(files)} files, min of >= {proto.min_repeats} samples, "
          f"{proto.passes} passes" + (f", drift {res.drift.median:.3f}" if res.drift else "")
          + ")\n")
    print("| model | score | blocks (hswish, SE) | predicted ms (its precision) | fp32 ms | "
          "int8 ms | int8 speed-up |")
    print("|---|---|---|---|---|---|---|")
    for m in pts:
        print(f"| {m['name']} | {m['score']:.1f} | {m['blocks']} ({m['hswish']}, {m['se']}) | "
              f"{m['pred_ms']:.3f} | {m['ms32']:.3f} | {m['ms8']:.3f} | "
              f"{m['ms32'] / m['ms8']:.2f}x |")
    wa = [m for m in pts if m["run"] == "a"]
    wb = [m for m in pts if m["run"] == "b"]
    sp = []
    for m in wa:
        ok = [b for b in wb if b["score"] >= m["score"]]
        if ok:
            b = min(ok, key=lambda b: b["ms8"])
            sp.append(m["ms8"] / b["ms8"])
    sp.sort()
    print(f"\n(a) front points with a (b) point of equal or higher score: {len(sp)} of "
          f"{len(wa)}; int8 speed-up of the fastest such (b) point (a ms / b ms): "
          + (f"median {sp[len(sp) // 2]:.2f}x, range {sp[0]:.2f}..{sp[-1]:.2f}x" if sp else "-")
          + " (target >= 1.2x)")
    print(f"commands: {'; '.join(log)}")


def main() -> None:
    a = parse_args()
    home = a.home.resolve()
    (home / "search_spaces").mkdir(parents=True, exist_ok=True)
    shutil.copy(a.space, home / "search_spaces" / a.space.name)
    space = a.space.stem
    log: list[str] = []
    load0, t0 = os.getloadavg(), time.time()
    if not (home / "latency_tables" / a.device).is_dir():
        hw(home, "device", "add", a.device, "--target", "local", "--threads", "1", log=log)
    quick = ["--quick"] if a.quick else []
    hw(home, "profile", "--device", a.device, "--space", space, "-r", str(a.resolution),
       "--networks", str(a.networks), "--precision", "fp32,int8", "--data", a.data, *quick,
       log=log)
    budget = ["--latency-budget", a.budget] if a.budget else []
    sfx = "" if a.resolution == 32 else f"-r{a.resolution}"
    runs = {"a": (f"cd-fp32{sfx}", "fp32"), "b": (f"cd-int8{sfx}", "int8")}
    for name, prec in runs.values():
        if not (home / "runs" / name / "pareto.csv").is_file():
            hw(home, "search", "--space", space, "--device", a.device, "--name", name,
               "-r", str(a.resolution), "--trials", str(a.trials), "--accuracy", a.accuracy,
               "--data", a.data, "--precision", prec, "--seed", "0", *budget, "-q", log=log)
    if a.fronts_only:
        return fronts_only(a, home, runs, log, load0, t0)
    recipe = ["--data", a.data, "--epochs", str(a.epochs), "--subset", str(a.subset),
              "--seeds", a.seeds, "--threads", "1", "--int8", "--top", str(a.top), *quick, "-q"]
    for key, (name, _) in runs.items():
        hw(home, "retrain", name, *recipe, "--baselines", a.baselines if key == "a" else "none",
           log=log)

    # all int8 (and fp32) files of both runs, timed side by side in one interleaved run
    os.environ["HWNAS_HOME"] = str(home)
    from hwnas.profiling.measure import measure, measurement_protocol

    models = []
    for key, (name, _) in runs.items():
        run = home / "runs" / name
        for r in rows_of(run / "retrain.csv"):
            if key == "b" and r["kind"] == "baseline":
                continue
            from hwnas.arch import Arch

            arch = Arch.from_string(r["arch"])
            n = sum(m["run"] == key and m["kind"] == "winner" for m in models) + 1
            models.append({"run": key, "name": r["name"] if r["kind"] == "baseline" else
                           f"{key.upper()}{n}", "arch": r["arch"], "kind": r["kind"],
                           "blocks": len(arch.blocks),
                           "hswish": sum(b.act == "hswish" for b in arch.blocks),
                           "se": sum(b.se > 0 for b in arch.blocks),
                           "precision": r.get("precision") or "", "int8": run / r["onnx_int8"],
                           "fp32": run / r["onnx"], "acc": float(r["acc_int8"]),
                           "acc32": float(r["acc_onnx_fp32"]),
                           "acc_mean": float(r["acc_mean"]), "std": float(r["acc_std"] or 0)})
    proto = measurement_protocol(a.device, quick=a.quick)
    files = [m[p] for m in models for p in ("int8", "fp32")]
    res = measure(a.device, files=files, protocol=proto, progress=False,
                  what="co-design measurement")
    stat = "min"
    for m in models:
        m["ms"] = res.stats[str(m["int8"])].value(stat)
        m["ms32"] = res.stats[str(m["fp32"])].value(stat)
    load1 = os.getloadavg()

    print(f"\n## int8 co-design, {space} at {a.resolution} px on {a.data} "
          f"({time.strftime('%Y-%m-%d')}, load {load0[0]:.2f} -> {load1[0]:.2f}, "
          f"{(time.time() - t0) / 60:.0f} min)\n")
    print(f"searches: {a.trials} trials, nsga2 seed 0, estimator {a.accuracy} on {a.data}, "
          f"budget {a.budget or 'none'}; retrain: {a.epochs} epochs, subset {a.subset}, "
          f"seeds {a.seeds}; int8 = static QDQ calibrated on 64 training images; latency = "
          f"{stat} of the profile protocol ({proto.passes} passes, >= {proto.min_repeats} "
          f"samples), all {len(files)} files in one interleaved run with "
          f"{len(res.drift.sentinels) if res.drift else 0} sentinels"
          + (f" (drift {res.drift.median:.3f})" if res.drift else "") + "\n")
    print("| run | model | blocks (hswish, SE) | int8 acc | fp32 acc | int8-fp32 | int8 ms "
          "| fp32 ms | int8 speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in sorted(models, key=lambda m: (m["run"], m["ms"])):
        print(f"| {m['run']} | {m['name']} | {m['blocks']} ({m['hswish']}, {m['se']}) | "
              f"{m['acc']:.4f} | "
              f"{m['acc32']:.4f} | {100 * (m['acc'] - m['acc32']):+.2f} pp | {m['ms']:.3f} | "
              f"{m['ms32']:.3f} | {m['ms32'] / m['ms']:.2f}x |")
    wa = [m for m in models if m["run"] == "a" and m["kind"] == "winner"]
    wb = [m for m in models if m["run"] == "b"]
    print("\n(a) winner vs the fastest (b) winner at equal int8 accuracy (strict: >=; "
          "noise: >= minus the seeds' std combined):\n")
    print("| (a) model | int8 ms | int8 acc | (b) strict | speed-up | (b) within noise "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|")
    best = []
    for m in sorted(wa, key=lambda m: m["ms"]):
        cells = []
        for noise in (False, True):
            ok = [b for b in wb
                  if b["acc"] >= m["acc"] - (math.hypot(m["std"], b["std"]) if noise else 0)]
            b = min(ok, key=lambda b: b["ms"]) if ok else None
            cells += ([f"{b['name']} ({b['ms']:.3f} ms, {b['acc']:.4f})",
                       f"{m['ms'] / b['ms']:.2f}x"] if b else ["none", "-"])
            if b and not noise:
                best.append(m["ms"] / b["ms"])
        print(f"| {m['name']} | {m['ms']:.3f} | {m['acc']:.4f} | " + " | ".join(cells) + " |")
    fa, fb = front([m for m in models if m["run"] == "a"]), front(wb)
    print(f"\nint8 fronts: (a) {[(round(m['ms'], 3), round(m['acc'], 4)) for m in fa]}; "
          f"(b) {[(round(m['ms'], 3), round(m['acc'], 4)) for m in fb]}")
    if best:
        print(f"speed-up of (b) over (a) at equal or better int8 accuracy: median "
              f"{sorted(best)[len(best) // 2]:.2f}x, max {max(best):.2f}x (target >= 1.2x)")
    cost = [100 * (m["acc"] - m["acc32"]) for m in models]
    print(f"accuracy cost of int8 over {len(cost)} retrained models: "
          f"{min(cost):+.2f} ... {max(cost):+.2f} pp, mean {sum(cost) / len(cost):+.2f} pp; "
          f"{sum(abs(c) <= 1 for c in cost)}/{len(cost)} within 1 pp (target: all)")
    out = home / "codesign_int8.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "commands": log,
                               "models": [{k: (str(v) if isinstance(v, Path) else v)
                                           for k, v in m.items()} for m in models],
                               "load": [load0, load1]}, indent=1))
    print("\n" + "\n".join(f"{m['name']} = {m['arch']}" for m in models if m["kind"] == "winner"))
    print(f"\ncommands: {'; '.join(log)}\nraw: {out}")


if __name__ == "__main__":
    main()
