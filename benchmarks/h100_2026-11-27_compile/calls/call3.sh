#!/usr/bin/env bash
# Session 9, device call 3 (a fresh machine): the fp16 backbone train step at 2x3x800x1344 (forward and backward)
# in one process: ConvNeXt-T first, then MLLA-T's plain path and its fast path (whole backbone, 32x32 tiles).
set -u
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout $(( t0 + 580 - $(date +%s) )) python3 tools/analysis/benchmark.py --level backbone --arch tiny \
  --peers convnext_t mlla --attn-impl plain fast --shape 800 1344 --batch 2 --precision fp16 --adamw none \
  --no-infer --warmup 5 --iters 30 --json $OUT/backbone_2x800x1344_fp16_train.json > $OUT/backbone_2x800x1344_fp16_train.log 2>&1
echo "exit $? at $(( $(date +%s) - t0 )) s"
grep -E "^mlla|^convnext|rror|compiling" $OUT/backbone_2x800x1344_fp16_train.log | cut -c1-220
