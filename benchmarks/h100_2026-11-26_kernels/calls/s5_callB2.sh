#!/usr/bin/env bash
# Session 5, device call B2 (chained right after A2 on the warm machine, Inductor cache kept): MLLA-T plain / fast
# against ConvNeXt-T (train 2x800x1344 bf16+fp16; 128x224 fp16 inference), Mask R-CNN plain / fast / Swin-T, then
# the bf16 train row with this session's changes off (Triton dwconv, compiled stem/merging).
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { bash .gpu/device_setup.sh > /tmp/setupB.log 2>&1 || { cat /tmp/setupB.log; exit 1; }; echo "FRESH MACHINE"; }
[ -d .inductor_cache ] && echo "cache kept: $(du -sh .inductor_cache)" || echo "COLD CACHE"
R=/tmp/rb; mkdir -p $R/backbone $R/model $R/ablation
F='jit.script_method|^ +warnings.warn'
bench() { # name, time limit (s, from t0), benchmark.py arguments
  local name=$1 limit=$2; shift 2
  timeout $(left $limit) python3 tools/analysis/benchmark.py --json $R/$name.json "$@" 2>&1 | grep -v -E "$F" > $R/$name.log
  grep -E "^mlla|^convnext|^swin|rror" $R/$name.log; echo "  ($name done at $(( $(date +%s) - t0 )) s)"
}
bench backbone/backbone_2x800x1344_train 230 --level backbone --arch tiny --shape 800 1344 --batch 2 --precision bf16 fp16 \
  --attn-impl plain fast --peers mlla convnext_t --warmup 5 --iters 20
bench backbone/backbone_128x224_fp16_infer 310 --level backbone --arch tiny --shape 224 224 --batch 128 --precision fp16 \
  --attn-impl plain fast --peers mlla convnext_t --no-train --warmup 5 --iters 20
bench model/mask_rcnn_2x800x1344_fp16 480 --level model --precision fp16 --attn-impl plain fast --peers mlla swin_t \
  --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2
export MLLA_TRITON_DWCONV=0 MLLA_FAST_CONVS=0
bench ablation/backbone_2x800x1344_bf16_train_triton_dwconv_0_fast_convs_0 555 --level backbone --arch tiny --shape 800 1344 \
  --batch 2 --precision bf16 --attn-impl fast --peers mlla convnext_t --warmup 5 --iters 20
tar czf $OUT/resultsB2.tgz -C /tmp rb
