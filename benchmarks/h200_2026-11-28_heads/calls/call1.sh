#!/usr/bin/env bash
# Session 13, device call 1 (nvidia-h200, one GPU): UperNet's heads in NCHW and channels-last (Swin-T, ResNet-50,
# eager: no compile), a profile of Swin-T's step each way, then the compiled-path GPU tests until the call's end.
source benchmarks/scripts/device_call.sh && install_or_reuse_stack
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
D=$OUT/c1; mkdir -p $D
UP="--level model --config configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8 --precision fp16 --adamw config"
bench_until 140 $D upernet_nchw $UP --peers swin_t resnet50 --no-infer --warmup 10 --iters 30
bench_until 230 $D upernet_cl $UP --peers swin_t resnet50 --no-infer --warmup 10 --iters 30 --channels-last
for cl in "" "--channels-last"; do
  timeout "$(left 330)" python3 benchmarks/scripts/profile_step.py $UP --peers swin_t --warmup 5 --iters 5 $cl \
    --json $D/profile${cl:+_cl}.json 2>&1 | grep -v -E "$NOISE|warn" > $D/profile${cl:+_cl}.log
  head -40 $D/profile${cl:+_cl}.log | cut -c1-160; echo "  (profile $cl done at $(elapsed) s)"
done
A="test_compiled_fast_block_matches_plain or test_triton_dwconv_matches_conv2d"
MLLA_FAST_STRICT=1 MLLA_GPU_FAILURES=$D/failures_b.txt timeout "$(left 575)" python3 -m pytest tests/gpu -n 6 -v -rA \
  -k "not ($A)" -p no:cacheprovider > $D/gpu_tests_b.log 2>&1; echo "tests exit $? at $(elapsed) s" >> $D/gpu_tests_b.log
grep -c PASSED $D/gpu_tests_b.log; grep -E "FAILED|ERROR" $D/gpu_tests_b.log | head; tail -3 $D/gpu_tests_b.log
