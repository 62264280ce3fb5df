#!/usr/bin/env bash
# Session 10, device call 2 (call 1's machine if still warm, with its Inductor cache): Mask R-CNN fp16 train step,
# then UperNet's, against Swin-T, each one process.
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed"; }
ls /tmp/torchinductor_root 2>/dev/null | head -3
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
bench() { # name, time limit, arguments
  local name=$1 limit=$2; shift 2
  echo "== $name (limit $limit s) at $(el) s"
  timeout $limit python3 tools/analysis/benchmark.py --level model --precision fp16 --adamw config --no-infer \
    --peers swin_t mlla --attn-impl fast --warmup 5 --iters 20 --json $OUT/$name.json "$@" \
    2>&1 | grep -v -E 'jit.script_method|^ +warnings.warn' > $OUT/$name.log
  echo "exit ${PIPESTATUS[0]} at $(el) s"
  grep -E "^mlla|^swin|rror|compil" $OUT/$name.log | cut -c1-220
}
bench mask_rcnn_2x800x1344_fp16 300 --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2
bench upernet_8x512x512_fp16 $(( 585 - $(el) )) --config configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8
