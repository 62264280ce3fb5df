#!/usr/bin/env bash
# Next session, device call 3 (right after call 2, warm cache): inference rows, MLLA-T fast with compile_stages
# on (per-block inference) and all (compiled stages), against ConvNeXt-T. Each fast variant needs well over 80 s
# even with a warm cache (2026-11-27): limits of about 180 s per process.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { echo "FRESH MACHINE: stop"; exit 1; }
R=/tmp/r3; mkdir -p $R
F='jit.script_method|^ +warnings.warn'
bench() { local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"; }
I="--level backbone --arch tiny --attn-impl fast --compile-stages on all --peers mlla convnext_t --no-train --warmup 10 --iters 50"
bench infer_1x800x1344_bf16 170 $I --batch 1 --shape 800 1344 --precision bf16
bench infer_1x512x512_bf16 330 $I --batch 1 --shape 512 512 --precision bf16
bench infer_128x224x224_fp16 470 $I --batch 128 --shape 224 224 --precision fp16
tar czf $OUT/results3.tgz -C /tmp r3
