#!/usr/bin/env bash
# Reproduce the shipped models from ../shared/data/ccic (2-core CPU: ~10 min MobileNetV2, ~15 min CNN).
# Usage: scripts/train_shipped.sh [mobilenetv2|cnn|all]   (run from the repository root)
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
DATA=${CCIC:-../shared/data/ccic}
WEIGHTS=${CRACKDESK_MOBILENET_WEIGHTS:-../shared/weights/mobilenet_v2_imagenet.pth}
which=${1:-all}
if [[ $which == mobilenetv2 || $which == all ]]; then
  $PY -m training "$DATA" --arch mobilenetv2 --out models/mobilenetv2.onnx --weights "$WEIGHTS" \
      --seed 0 --name mobilenetv2 --version 1.0.0
fi
if [[ $which == cnn || $which == all ]]; then
  $PY -m training "$DATA" --arch cnn --out models/cnn.onnx --seed 0 --name cnn --version 1.0.0
fi
