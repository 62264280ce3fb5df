#!/usr/bin/env bash
# Session 14, device call 1 (nvidia-h200, one GPU): the per-block compiled fast path and Triton depthwise GPU tests
# (39) at HEAD; outcomes also kept in /tmp/s24 for call 2 to rerun what the limit cut.
source benchmarks/scripts/device_call.sh && install_or_reuse_stack
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git log --oneline -1 2>/dev/null || true
D=$OUT/c1; mkdir -p $D /tmp/s24
MLLA_FAST_STRICT=1 MLLA_GPU_FAILURES=$D/failures_a.txt timeout "$(left 575)" python3 -m pytest $(cat .gpu/s24_ids_a.txt) \
  -n 6 -v -rA -p no:cacheprovider > $D/gpu_tests_a.log 2>&1; echo "tests exit $? at $(elapsed) s" >> $D/gpu_tests_a.log
cp $D/gpu_tests_a.log /tmp/s24/
grep -c PASSED $D/gpu_tests_a.log; grep -E "FAILED|ERROR" $D/gpu_tests_a.log | head; tail -3 $D/gpu_tests_a.log
