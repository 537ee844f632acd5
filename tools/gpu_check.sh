#!/usr/bin/env bash
# The CUDA path end to end, timed: train a supernet, score archs with it, deploy winners from
# it (extract + BN recalibration) and retrain models stand-alone, all on one torch device;
# prints images/s and wall time per step of each phase.
#
#   tools/gpu_check.sh                        # one GPU: Fashion-MNIST (all 48,000 training
#                                             # images), 3 epochs, 200 archs, 3 deployed, 2
#                                             # retrained; under 8 minutes on one H100 (planned)
#   tools/gpu_check.sh --torch-device cpu     # the same on the CPU (with tiny settings below)
#
# Settings (environment): GPU_CHECK_DATA (fashion-mnist), GPU_CHECK_SPACE (mobilenetv2),
# GPU_CHECK_RES (32), GPU_CHECK_EPOCHS (3), GPU_CHECK_BATCH (256), GPU_CHECK_SUBSET (all),
# GPU_CHECK_ARCHS (200), GPU_CHECK_DEPLOY (3), GPU_CHECK_RETRAIN (2),
# GPU_CHECK_RETRAIN_EPOCHS (2), GPU_CHECK_BN_IMAGES (2000), GPU_CHECK_VAL_IMAGES (2000).
# It works in its own HWNAS_HOME (a temporary folder unless HWNAS_HOME is set), so nothing
# in runs/ is touched. Run it from the repository root.
set -euo pipefail

DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --torch-device) DEVICE="$2"; shift 2 ;;
    --torch-device=*) DEVICE="${1#*=}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

export HWNAS_HOME="${HWNAS_HOME:-$(mktemp -d)}"
export GPU_CHECK_DEVICE="$DEVICE"
PY="${PYTHON:-python}"
echo "gpu_check: torch device $DEVICE, HWNAS_HOME $HWNAS_HOME"
"$PY" - <<'EOF'
import os
import random
import time
from dataclasses import replace

import torch

from hwnas.accuracy import make_estimator
from hwnas.data import load_dataset
from hwnas.retrain.deploy import SupernetSource, extract_subnet
from hwnas.space import load_space
from hwnas.supernet import SupernetRecipe, load_supernet, train_supernet
from hwnas.train import Recipe, evaluate, resolve_torch_device, train_arch


def env(name, default):
    v = os.environ.get(f"GPU_CHECK_{name}", "")
    return type(default)(v) if v else default


dev = resolve_torch_device(os.environ["GPU_CHECK_DEVICE"])
data_spec, space_name = env("DATA", "fashion-mnist"), env("SPACE", "mobilenetv2")
res, epochs, batch = env("RES", 32), env("EPOCHS", 3), env("BATCH", 256)
subset = env("SUBSET", 0) or None
n_archs, n_deploy, n_retrain = env("ARCHS", 200), env("DEPLOY", 3), env("RETRAIN", 2)
bn, val_images = env("BN_IMAGES", 2000), env("VAL_IMAGES", 2000)
name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
print(f"device {dev} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
t_all = time.perf_counter()
data = load_dataset(data_spec, res, 0)
space = load_space(space_name)

# 1. the supernet
recipe = SupernetRecipe(epochs=epochs, batch_size=batch, subset=subset)
t0 = time.perf_counter()
r = train_supernet(space, data, data_spec, res, recipe, seed=0, device=dev, progress=False)
wall = time.perf_counter() - t0
m = r.meta
imgs = m["validation"]["train_images"]
steps = max(1, imgs // batch)
for h in m["history"]:
    print(f"supernet epoch {h['epoch']}: {imgs / h['seconds']:9.0f} images/s, "
          f"{1000 * h['seconds'] / steps:7.1f} ms/step ({2 + recipe.random_subnets} subnets, "
          f"batch {batch}), loss {h['train_loss']:.3f}")
print(f"supernet: {wall:.1f} s wall, largest {m['largest_val_acc']:.4f}, smallest "
      f"{m['smallest_val_acc']:.4f} (val acc.)")

# 2. scoring archs with it
est = make_estimator("supernet", data_spec, res, space=space, bn_images=bn,
                     val_images=val_images, torch_device=dev)
net, _ = load_supernet(r.store, "cpu")
rng = random.Random(0)
archs = [net.sample(rng, res) for _ in range(n_archs)]
t0 = time.perf_counter()
scores = est.score(archs)
wall = time.perf_counter() - t0
print(f"score {n_archs} archs: {wall:.1f} s, {1000 * wall / n_archs:.0f} ms/arch, "
      f"{n_archs * (bn + val_images) / wall:.0f} images/s (BN recalibration + validation)")

# 3. deploying the best-scored archs from it
best = sorted(range(n_archs), key=lambda i: -scores[i])[:max(n_deploy, n_retrain)]
src = SupernetSource(r.store, net, m)
for i in best[:n_deploy]:
    t0 = time.perf_counter()
    sub = extract_subnet(src, archs[i], data, 0).to(dev, memory_format=torch.channels_last)
    acc = evaluate(sub, data)
    print(f"deploy arch {i}: test acc. {acc:.4f} in {time.perf_counter() - t0:.2f} s "
          f"(supernet score {scores[i]:.4f})")

# 4. stand-alone retraining
rr = Recipe(epochs=env("RETRAIN_EPOCHS", 2), batch_size=batch, subset=subset)
for i in best[:n_retrain]:
    arch = replace(archs[i], resolution=res)
    t0 = time.perf_counter()
    tr = train_arch(arch, data, rr, seed=0, progress=False, device=dev)
    wall = time.perf_counter() - t0
    n = len(data.subset(subset, 0).train_y)
    print(f"retrain arch {i}: {rr.epochs} epochs, {n * rr.epochs / wall:.0f} images/s, "
          f"{1000 * wall / max(1, rr.epochs * (n // batch)):.1f} ms/step (incl. BN "
          f"recalibration and test), test acc. {tr.test_acc:.4f}")
print(f"gpu_check: done in {time.perf_counter() - t_all:.1f} s on {dev}")
EOF
