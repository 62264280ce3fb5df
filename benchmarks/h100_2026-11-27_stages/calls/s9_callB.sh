#!/usr/bin/env bash
# Session 9, device call B (right after A, warm cache): compile_stages off/on and AdamW foreach/fused against
# ConvNeXt-T (backbone train) and Swin-T (Mask R-CNN train); each group one process.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { bash .gpu/device_setup.sh > /tmp/setupB.log 2>&1 || { cat /tmp/setupB.log; exit 1; }; echo "FRESH MACHINE"; }
[ -d .inductor_cache ] && echo "cache kept: $(du -sh .inductor_cache)" || echo "COLD CACHE"
R=/tmp/rb; mkdir -p $R
F='jit.script_method|^ +warnings.warn'
bench() { local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"; }
BB="--level backbone --arch tiny --peers mlla convnext_t --shape 800 1344 --batch 2 --attn-impl fast --compile-stages off on --warmup 5 --iters 30"
bench backbone_2x800x1344_bf16_train 250 $BB --precision bf16 --adamw foreach fused
bench backbone_2x800x1344_fp16_train 400 $BB --precision fp16 --adamw fused
bench mask_rcnn_2x800x1344_fp16 585 --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 \
  --batch 2 --precision fp16 --attn-impl fast --compile-stages off on --peers mlla swin_t --adamw fused --warmup 5 --iters 20
tar czf $OUT/resultsB.tgz -C /tmp rb
