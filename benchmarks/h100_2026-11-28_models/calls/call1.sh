#!/usr/bin/env bash
# Session 10, device call 1 (a fresh machine): mmcv's CUDA ops build in the background while the Inductor cache fills
# with the fp16 training graphs of the Mask R-CNN and UperNet configs' backbones (warm_backbone.py, no mmcv needed);
# then, with mmcv, the Mask R-CNN fp16 train step against Swin-T, then UperNet's, each one process.
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
work=$(mktemp -d)
tar xzf .gpu/wheels/mmcv-2.1.0.tar.gz -C "$work"
(cd "$work"/mmcv-2.1.0 && MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 \
   python3 setup.py bdist_wheel > $OUT/mmcv_build.log 2>&1; echo "mmcv build exit $? at $(el) s") &
build=$!
timeout 440 python3 benchmarks/scripts/warm_backbone.py configs/detection/mask_rcnn_mlla_t.py \
  --shape 800 1344 --batch 2 --precision fp16 > $OUT/warm_mask_rcnn.log 2>&1 &
det=$!
timeout 440 python3 benchmarks/scripts/warm_backbone.py configs/segmentation/upernet_mlla_t.py \
  --shape 512 512 --batch 8 --precision fp16 > $OUT/warm_upernet.log 2>&1 &
seg=$!
wait $build
wheel=$(ls "$work"/mmcv-2.1.0/dist/*.whl 2>/dev/null | head -n 1)
[ -n "$wheel" ] || { tail -n 30 $OUT/mmcv_build.log; exit 1; }
split -b 15M "$wheel" "$OUT/$(basename "$wheel").part-"
python3 -m pip install -q --no-deps "$wheel" && echo "mmcv installed at $(el) s"
wait $det; echo "warm mask_rcnn exit $? at $(el) s"
wait $seg; echo "warm upernet exit $? at $(el) s"
tail -c 600 $OUT/warm_mask_rcnn.log; echo; tail -c 600 $OUT/warm_upernet.log; echo
bench() { # name, time limit, arguments
  local name=$1 limit=$2; shift 2
  echo "== $name (limit $limit s) at $(el) s"
  timeout $limit python3 tools/analysis/benchmark.py --level model --precision fp16 --adamw config --no-infer \
    --peers swin_t mlla --attn-impl fast --warmup 5 --iters 20 --json $OUT/$name.json "$@" \
    2>&1 | grep -v -E 'jit.script_method|^ +warnings.warn' > $OUT/$name.log
  echo "exit ${PIPESTATUS[0]} at $(el) s"
  grep -E "^mlla|^swin|rror|compil" $OUT/$name.log | cut -c1-220
}
bench mask_rcnn_2x800x1344_fp16 $(( 470 - $(el) )) --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2
bench upernet_8x512x512_fp16 $(( 585 - $(el) )) --config configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8
