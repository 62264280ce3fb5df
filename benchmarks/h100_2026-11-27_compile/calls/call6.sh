#!/usr/bin/env bash
# Session 9, device call 6: the 7 GPU tests of the whole compiled backbone (compile_backbone), with the images cut
# into 32x32 tiles; each failure's report kept as it happens (MLLA_GPU_FAILURES).
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > /tmp/setup.log 2>&1
export MLLA_FAST_STRICT=1 MLLA_GPU_FAILURES=$OUT/gpu_failures.log PYTHONUNBUFFERED=1
timeout -s INT 470 python3 -m pytest -n 7 -p no:cacheprovider -rfE -v --durations=10 \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_auto_uses_fast_path_and_agrees[dtype0-all-True]" \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_auto_uses_fast_path_and_agrees[dtype1-all-True]" \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_auto_uses_fast_path_and_agrees[dtype2-all-True]" \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_train_steps_with_cuda_graphs_match_plain[-1-False-True-True]" \
  "tests/gpu/test_fast_path_gpu.py::test_backbone_train_steps_with_cuda_graphs_match_plain[1-False-True-True]" \
  "tests/gpu/test_fast_path_gpu.py::test_compiled_stem_and_merging_keep_batchnorm_statistics[True]" \
  "tests/gpu/test_fast_path_gpu.py::test_gradient_accumulation_through_cuda_graphs[True-True]" \
  > $OUT/gpu_tests_whole.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $OUT/gpu_tests_whole.log
grep -E " PASSED| FAILED| ERROR" $OUT/gpu_tests_whole.log | grep "::" | cut -c1-200; tail -3 $OUT/gpu_tests_whole.log | cut -c1-300
