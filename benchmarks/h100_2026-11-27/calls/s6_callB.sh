#!/usr/bin/env bash
# Session 6, device call B (right after A on the warm machine, Inductor cache kept): timed rows, one process each,
# on a quiet GPU: backbone against ConvNeXt-T (kernels off and on), Mask R-CNN and UperNet against Swin-T.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { bash .gpu/device_setup.sh > /tmp/setupB.log 2>&1 || { cat /tmp/setupB.log; exit 1; }; echo "FRESH MACHINE"; }
[ -d .inductor_cache ] && echo "cache kept: $(du -sh .inductor_cache)" || echo "COLD CACHE"
R=/tmp/rb; mkdir -p $R/backbone $R/model
F='jit.script_method|^ +warnings.warn'
bench() { # name, time limit (s, from t0), benchmark.py arguments
  local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"
}
BB="--level backbone --arch tiny --peers mlla convnext_t"
bench backbone/backbone_2x800x1344_bf16_train 150 $BB --shape 800 1344 --batch 2 --precision bf16 \
  --attn-impl plain fast --fast-kernels off on --warmup 5 --iters 20
bench backbone/backbone_2x800x1344_fp16_train 230 $BB --shape 800 1344 --batch 2 --precision fp16 \
  --attn-impl plain fast --warmup 5 --iters 20
bench model/mask_rcnn_2x800x1344_fp16 350 --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 \
  --batch 2 --precision fp16 --attn-impl plain fast --peers mlla swin_t --warmup 5 --iters 20
bench model/upernet_8x512x512_fp16 460 --level model --config configs/segmentation/upernet_mlla_t.py --shape 512 512 \
  --batch 8 --precision fp16 --attn-impl plain fast --peers mlla swin_t --warmup 5 --iters 20
bench backbone/backbone_128x224_fp16_infer 505 $BB --shape 224 224 --batch 128 --precision fp16 --attn-impl plain fast \
  --no-train --warmup 5 --iters 20
bench backbone/backbone_1x800x1344_bf16_infer 540 $BB --shape 800 1344 --batch 1 --precision bf16 --attn-impl plain fast --no-train
bench backbone/backbone_1x512x512_bf16_infer 570 $BB --shape 512 512 --batch 1 --precision bf16 --attn-impl plain fast --no-train
tar czf $OUT/resultsB.tgz -C /tmp rb
