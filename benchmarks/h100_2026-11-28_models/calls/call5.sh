#!/usr/bin/env bash
# Session 10, device call 5: UperNet 8x512x512 fp16 train-step phases (step_phases.py), Swin-T and MLLA-T's plain
# path (nothing to compile), one process: do the neck and heads cost more behind MLLA-T's feature maps?
set -u
t0=$(date +%s)
export PYTHONUNBUFFERED=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed in $(( $(date +%s) - t0 )) s"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 170 python3 benchmarks/scripts/step_phases.py --level model --config configs/segmentation/upernet_mlla_t.py \
  --shape 512 512 --batch 8 --precision fp16 --adamw config --peers swin_t mlla --attn-impl plain --warmup 3 \
  --iters 10 --json $OUT/upernet_phases_plain.json 2>&1 | grep -v -E 'jit.script_method|^ +warnings.warn|paramwise' \
  > $OUT/upernet_phases_plain.log
echo "exit ${PIPESTATUS[0]} at $(( $(date +%s) - t0 )) s"
grep -A8 "medians of" $OUT/upernet_phases_plain.log
