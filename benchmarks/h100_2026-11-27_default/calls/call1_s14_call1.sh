#!/usr/bin/env bash
# Next session, device call 1 (fresh machine): compile_backbone with the tiling-analysis fix. Its 7 GPU test cases
# (three pytest workers, strict) beside processes that compile (cold) what call 2 times: the bf16 backbone train
# step with compile_backbone and with compile_stages='all', and Mask R-CNN fp16 with compile_backbone.
source benchmarks/scripts/device_call.sh
L=/tmp/l1; setup_fresh_machine $L
W="--attn-impl fast --shape 800 1344 --batch 2 --warmup 1 --iters 1"
bench_until 550 $L warm_bf16_backbone --level backbone --compile-stages backbone --peers mlla --precision bf16 \
  --adamw none $W &
bench_until 550 $L warm_bf16_all --level backbone --compile-stages all --peers mlla --precision bf16 --adamw none $W &
bench_until 550 $L warm_maskrcnn_fp16_backbone --level model --config configs/detection/mask_rcnn_mlla_t.py \
  --compile-stages backbone --peers mlla --precision fp16 --adamw config $W &
T=tests/gpu/test_fast_path_gpu.py
MLLA_FAST_STRICT=1 timeout -s INT $(left 550) python3 -m pytest -n 3 -p no:cacheprovider -rfE -v --durations=10 \
  "$T::test_backbone_train_steps_with_cuda_graphs_match_plain[-1-False-True-True]" \
  "$T::test_backbone_train_steps_with_cuda_graphs_match_plain[1-False-True-True]" \
  "$T::test_compiled_stem_and_merging_keep_batchnorm_statistics[True]" \
  "$T::test_gradient_accumulation_through_cuda_graphs[True-True]" \
  "$T::test_backbone_auto_uses_fast_path_and_agrees[dtype0-all-True]" \
  "$T::test_backbone_auto_uses_fast_path_and_agrees[dtype1-all-True]" \
  "$T::test_backbone_auto_uses_fast_path_and_agrees[dtype2-all-True]" > $L/gpu_tests_whole.log 2>&1
echo "pytest exit $? at $(elapsed) s" | tee -a $L/gpu_tests_whole.log
wait
grep -E "PASSED|FAILED|ERROR|passed|failed" $L/gpu_tests_whole.log | tail -12 | cut -c1-300
tar czf $OUT/logs1.tgz -C /tmp l1
