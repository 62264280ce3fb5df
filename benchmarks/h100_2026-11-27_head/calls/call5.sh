#!/usr/bin/env bash
# Session 8, device call 5 (fresh machine): the two train-step cases that failed in call 4, whose report was lost
# when the call's deadline interrupted pytest; short tracebacks this time.
source benchmarks/scripts/device_call.sh
L=/tmp/l5; setup_fresh_machine $L
MLLA_FAST_STRICT=1 timeout -s INT $(left 235) python3 -m pytest -n 2 -p no:cacheprovider -rfE --tb=short -q \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_train_steps_with_cuda_graphs_match_plain[-1-False-False-False]" \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_train_steps_with_cuda_graphs_match_plain[-1-False-True-False]" \
  2>&1 | grep -v -E "$NOISE" | tee $OUT/gpu_tests_failed.log | grep -E "^E |assert|passed|failed" | head -40
