#!/usr/bin/env bash
# Issue 22's outcome benchmark: a supernet-guided search on Fashion-MNIST at 32 px, its winners
# deployed from the supernet (+ fine-tune epochs), against the MobileNetV2 widths trained
# stand-alone with the same recipe (3 seeds), all timed in one interleaved run on DEVICE.
#
#   HWNAS_HOME=DIR SUPERNET=ID_OR_FOLDER benchmarks/deploy_outcome.sh
#
# SUPERNET: one of `hwnas supernet train --space mobilenetv2 --data fashion-mnist -r 32 ...`
# (deploy_bench.py run trains one). Env: DEVICE (bench-local), RUN (outcome), TRIALS (120),
# FINETUNE (3), EPOCHS (8), SUBSET (4000), WORKERS (2 processes sharing the retrain queue),
# METRIC (the supernet's score: accuracy, or loglik).
# Resumable: run it again after a kill and each step continues. Results: runs/RUN/retrain.csv
# and the table the retrain prints; docs/benchmarks.md#deployment-from-the-supernet.
set -euo pipefail
: "${HWNAS_HOME:?set HWNAS_HOME}" "${SUPERNET:?set SUPERNET (a supernet id or folder)}"
DEVICE=${DEVICE:-bench-local} RUN=${RUN:-outcome} TRIALS=${TRIALS:-120} FINETUNE=${FINETUNE:-3}
EPOCHS=${EPOCHS:-8} SUBSET=${SUBSET:-4000} WORKERS=${WORKERS:-2} METRIC=${METRIC:-accuracy}
log() { echo "== $* ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"; }
if [ -d "$SUPERNET" ]; then  # a folder: copy it where the search finds it
  mkdir -p "$HWNAS_HOME/runs/supernets"
  [ -e "$HWNAS_HOME/runs/supernets/$(basename "$SUPERNET")" ] || cp -r "$SUPERNET" "$HWNAS_HOME/runs/supernets/"
  SUPERNET=$(basename "$SUPERNET")
fi
[ -f "$HWNAS_HOME/latency_tables/$DEVICE/device.json" ] || hwnas device add "$DEVICE" --target local --threads 1
log profile
hwnas profile --device "$DEVICE" --space mobilenetv2 -r 32 --classes 10
log search
hwnas search --space mobilenetv2 --device "$DEVICE" --name "$RUN" -r 32 --data fashion-mnist \
  --accuracy supernet --supernet-metric "$METRIC" --trials "$TRIALS" --seed 0 --storage "sqlite:///$HWNAS_HOME/$RUN.db"
log retrain
opts=(--from-supernet "$SUPERNET" --finetune-epochs "$FINETUNE" --top 3 --epochs "$EPOCHS" --seeds 3
      --subset "$SUBSET" --threads 1 --baselines mbv2-0.35,mbv2-0.5,mbv2-0.75,mbv2-1.0)
for _ in $(seq 2 "$WORKERS"); do hwnas retrain "$RUN" "${opts[@]}" --train-only -q & done
hwnas retrain "$RUN" "${opts[@]}"
wait
log done
