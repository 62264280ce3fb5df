#!/usr/bin/env bash
# Next session, device call 2 (right after call 1, warm cache; run it within 30 s of call 1's end): bf16 backbone
# train (default compile_stages; AdamW foreach and fused) against ConvNeXt-T; Mask R-CNN fp16 train with the
# config's optimizer, MLLA-T fast against Swin-T. A warm cache still costs a minute or more per fast variant.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { echo "FRESH MACHINE: stop"; exit 1; }
R=/tmp/r2; mkdir -p $R
F='jit.script_method|^ +warnings.warn'
bench() { local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"; }
bench backbone_2x800x1344_bf16_train 240 --level backbone --arch tiny --peers mlla convnext_t --shape 800 1344 \
  --batch 2 --attn-impl fast --precision bf16 --adamw none foreach fused --warmup 5 --iters 30
bench mask_rcnn_2x800x1344_fp16 585 --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 \
  --batch 2 --precision fp16 --attn-impl fast --peers mlla swin_t --adamw config --warmup 5 --iters 20
tar czf $OUT/results2.tgz -C /tmp r2
