#!/usr/bin/env bash
# Session 9, device call E (right after D, warm cache): inference rows against ConvNeXt-T, fp16 backbone train with
# compile_stages against ConvNeXt-T, UperNet fp16 train with compile_stages against Swin-T; each group one process.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { echo "FRESH MACHINE: stop"; exit 1; }
R=/tmp/re; mkdir -p $R
F='jit.script_method|^ +warnings.warn'
bench() { local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"; }
I="--level backbone --arch tiny --attn-impl fast --peers mlla convnext_t --no-train --warmup 10 --iters 50"
bench infer_1x800x1344_bf16 80 $I --batch 1 --shape 800 1344 --precision bf16
bench infer_1x512x512_bf16 160 $I --batch 1 --shape 512 512 --precision bf16
bench infer_128x224x224_fp16 240 $I --batch 128 --shape 224 224 --precision fp16
bench backbone_2x800x1344_fp16_train 360 --level backbone --arch tiny --peers mlla convnext_t --shape 800 1344 \
  --batch 2 --attn-impl fast --compile-stages on --precision fp16 --adamw foreach fused --warmup 5 --iters 30
bench upernet_8x512x512_fp16 585 --level model --config configs/segmentation/upernet_mlla_t.py --shape 512 512 \
  --batch 8 --precision fp16 --attn-impl fast --compile-stages on --peers mlla swin_t --adamw fused --warmup 5 --iters 20
tar czf $OUT/resultsE.tgz -C /tmp re
