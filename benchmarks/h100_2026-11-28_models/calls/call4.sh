#!/usr/bin/env bash
# Session 10, device call 4 (call 3's machine, warm, with call 2's Inductor cache): the MLLA-T backbones of the
# UperNet and Mask R-CNN configs alone (forward and backward, fp16, no optimizer), at those models' inputs.
set -u
export PYTHONUNBUFFERED=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1; echo fresh; }
timeout 150 python3 benchmarks/scripts/warm_backbone.py configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8 \
  --precision fp16 --iters 20 2>&1 | tail -1 | tee $OUT/upernet_backbone_8x512x512_fp16.json | cut -c1-200
timeout 150 python3 benchmarks/scripts/warm_backbone.py configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2 \
  --precision fp16 --iters 20 2>&1 | tail -1 | tee $OUT/mask_rcnn_backbone_2x800x1344_fp16.json | cut -c1-200
