#!/usr/bin/env bash
# Session 13, device call 2 (nvidia-h200, one GPU, held from call 1 or fresh): the two GPU tests call 1's limit cut,
# while warm_backbone.py compiles MLLA-T's UperNet backbone (fast path) for call 3; then Swin-T's UperNet step with
# mmseg's heads and with the matmul-resize heads, eager, and their profiles.
source benchmarks/scripts/device_call.sh && install_or_reuse_stack
D=$OUT/c2; mkdir -p $D
T="tests/gpu/test_fast_path_gpu.py::test_gradient_accumulation_through_cuda_graphs[False-False] tests/gpu/test_triton_dwconv_gpu.py::test_operator_runs_triton_only_when_asked"
( MLLA_FAST_STRICT=1 MLLA_GPU_FAILURES=$D/failures.txt timeout "$(left 560)" python3 -m pytest $T -n 2 -v -rA \
    -p no:cacheprovider > $D/gpu_tests.log 2>&1; echo "tests exit $? at $(elapsed) s" >> $D/gpu_tests.log ) &
( timeout "$(left 565)" python3 benchmarks/scripts/warm_backbone.py configs/segmentation/upernet_mlla_t.py \
    --shape 512 512 --batch 8 --precision fp16 > $D/warm.log 2>&1; echo "warm exit $? at $(elapsed) s" >> $D/warm.log ) &
UP="--level model --shape 512 512 --batch 8 --precision fp16 --adamw config"
printf "_base_ = '%s/configs/segmentation/upernet_mlla_t.py'\nmodel = dict(decode_head=dict(type='UPerHead'), auxiliary_head=dict(type='FCNHead'))\n" "$PWD" > /tmp/upernet_stock_heads.py
sleep 150  # let the tests and the compile take the CPU first; the eager runs after them only read timings
bench_until 330 $D swin_stock $UP --config /tmp/upernet_stock_heads.py --peers swin_t --no-infer --warmup 10 --iters 30
bench_until 420 $D swin_matmul $UP --config configs/segmentation/upernet_mlla_t.py --peers swin_t --no-infer --warmup 10 --iters 30
timeout "$(left 500)" python3 benchmarks/scripts/profile_step.py $UP --config configs/segmentation/upernet_mlla_t.py \
  --peers swin_t --warmup 5 --iters 5 --json $D/profile_matmul.json 2>&1 | grep -v -E "$NOISE|warn|paramwise" > $D/profile_matmul.log
head -30 $D/profile_matmul.log
wait; tail -4 $D/gpu_tests.log; tail -5 $D/warm.log; du -sh .inductor_cache 2>/dev/null; echo "end at $(elapsed) s"
