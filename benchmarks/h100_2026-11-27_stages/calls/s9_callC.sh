#!/usr/bin/env bash
# Session 9, device call C (warm machine after B): inference-only rows, MLLA fast against ConvNeXt-T.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { echo "FRESH MACHINE: stop"; exit 1; }
R=/tmp/rc; mkdir -p $R
F='jit.script_method|^ +warnings.warn'
for s in "1 800 1344 bf16" "1 512 512 bf16" "128 224 224 fp16"; do set -- $s
  timeout $(left 270) python3 tools/analysis/benchmark.py --json $R/infer_${1}x${2}x${3}_$4.json --level backbone \
    --arch tiny --attn-impl fast --peers mlla convnext_t --no-train --batch $1 --shape $2 $3 --precision $4 \
    --warmup 10 --iters 50 2>&1 | grep -v -E "$F" > $R/infer_${1}x${2}x${3}_$4.log
  grep -E "^mlla|^convnext|rror" $R/infer_${1}x${2}x${3}_$4.log; echo "  (done at $(( $(date +%s) - t0 )) s)"
done
tar czf $OUT/resultsC.tgz -C /tmp rc
