#!/usr/bin/env bash
# The small-scale study of the paper's test protocol (Tables 3 to 6) on Fashion-MNIST:
# VGG-A (width 1/4) trained once at a fixed scale S = 32 and once with S jittered in
# [32, 48] (crops of 32 either way), each evaluated single- and multi-scale by a
# central crop, dense, multi-crop (5x5 grid x 2 flips) and dense + multi-crop, and the
# two nets fused.  The paper's offset of 32 pixels at S = 256 becomes --scale-step 8 here.
#
#   bash benchmarks/evaluation_study.sh [RUNS_DIR] [TEST_IMAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/study}
images=${2:-2000}
python examples/train_vgg_a.py --scale 32 --out "$runs/fixed" --no-progress
python examples/train_vgg_a.py --scale 32,48 --out "$runs/jitter" --no-progress
python examples/evaluate_vgg.py "$runs/fixed/checkpoint.npz" "$runs/jitter/checkpoint.npz" \
    --limit "$images" --scale-step 8 --out "$runs/evaluation.json"
