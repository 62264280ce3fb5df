#!/usr/bin/env bash
# Next session, device call 2 (right after call 1, warm cache for the fp16 train step): the backbone's fp16 train step
# against ConvNeXt-T (no optimizer, foreach, fused); then batch-1 inference with the optional kernels off and on
# (triton_dwconv + compile_convs: the eager stem and patch merging are what is left between the 4 stage graphs).
# Between them, breakdown.py --host: what the host-bound fp16 train step waits on.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { echo "FRESH MACHINE: stop"; exit 1; }
R=/tmp/r2; mkdir -p $R
F='jit.script_method|^ +warnings.warn'
bench() { local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"; }
bench backbone_2x800x1344_fp16_train 240 --level backbone --arch tiny --peers mlla convnext_t --shape 800 1344 \
  --batch 2 --attn-impl fast --precision fp16 --adamw none foreach fused --warmup 5 --iters 30
timeout $(left 330) python3 benchmarks/scripts/breakdown.py --impl fast --dtype fp16 --host 2>&1 | grep -v -E "$F" \
  > $R/breakdown_fp16_train_host.log; grep -E "step median|GPU kernel time|host time" $R/breakdown_fp16_train_host.log
I="--level backbone --arch tiny --attn-impl fast --fast-kernels off on --peers mlla convnext_t --no-train --warmup 10 --iters 50"
bench infer_1x800x1344_bf16_kernels 460 $I --batch 1 --shape 800 1344 --precision bf16
bench infer_128x224x224_fp16_kernels 580 $I --batch 128 --shape 224 224 --precision fp16
tar czf $OUT/results2.tgz -C /tmp r2
