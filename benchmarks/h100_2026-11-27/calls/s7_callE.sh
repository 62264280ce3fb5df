#!/usr/bin/env bash
# (Recorded as it ran at a39cd2c. The benchmarks/h100_2026-11-27/upernet_mlla_t_demo_gpu_aug.py it names became
# configs/demo/upernet_mlla_t_demo_gpu.py after this run; the run it calls "demo pipeline" is now
# benchmarks/h100_2026-11-27/upernet_mlla_t_demo_gpu_demo_pipeline.py.)
# Session 7, call E: the segmentation GPU demo to the end (40 epochs, plain path, fp16 AMP), demo pipeline and
# ADE20K augmentation side by side on the one GPU (so each run's time is with the other beside it).
set -u
t0=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHON=python3
python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" || { bash .gpu/device_setup.sh > /tmp/setupE.log 2>&1 || { cat /tmp/setupE.log; exit 1; }; echo "FRESH MACHINE"; }
L=/tmp/seg; mkdir -p $L
python3 tools/make_demo_data.py > $L/make_data.log 2>&1; echo "data at $(( $(date +%s) - t0 )) s"
( s=$(date +%s); timeout $(( 550 - $(date +%s) + t0 )) python3 tools/train.py configs/demo/upernet_mlla_t_demo_gpu.py --amp --work-dir /tmp/s1 > $L/seg_gpu_demo.log 2>&1
  echo "demo pipeline: exit $? in $(( $(date +%s) - s )) s" ) &
( s=$(date +%s); timeout $(( 550 - $(date +%s) + t0 )) python3 tools/train.py benchmarks/h100_2026-11-27/upernet_mlla_t_demo_gpu_aug.py --amp --work-dir /tmp/s2 > $L/seg_gpu_demo_aug.log 2>&1
  echo "ADE20K augmentation: exit $? in $(( $(date +%s) - s )) s" ) &
wait
for f in $L/seg_*.log; do echo "== $f"; grep -E "Epoch\(val\)|Error|nan" $f | cut -c1-160 | tail -9; done
cp /tmp/s1/*/*.log $L/mmengine_demo.log 2>/dev/null; cp /tmp/s2/*/*.log $L/mmengine_demo_aug.log 2>/dev/null
tar czf $OUT/segE.tgz -C /tmp seg
