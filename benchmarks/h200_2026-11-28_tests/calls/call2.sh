#!/usr/bin/env bash
# Session 14, device call 2 (the machine of call 1): the per-block tests call 1's limit cut (if any) and
# warm_backbone.py (MLLA-T's UperNet backbone, for call 3) in the background; the heads' GPU test with the float32
# backward (loss scale 1 and 2^16); then Swin-T's UperNet step with the heads' float32 backward and with HEAD's
# (fp16 backward), eager.
source benchmarks/scripts/device_call.sh && require_warm_machine
D=$OUT/c2; mkdir -p $D
grep -oE "PASSED tests/gpu/[^ ]+" /tmp/s24/gpu_tests_a.log 2>/dev/null | sed 's/^PASSED //' | sort -u > /tmp/s24/passed.txt
REST=$(grep -v -x -F -f /tmp/s24/passed.txt .gpu/s24_ids_a.txt | tr '\n' ' '); echo "to rerun: $(echo $REST | wc -w)"
if [ -n "$REST" ]; then
  ( MLLA_FAST_STRICT=1 MLLA_GPU_FAILURES=$D/failures_rest.txt timeout "$(left 560)" python3 -m pytest $REST -n 4 -v \
      -rA -p no:cacheprovider > $D/gpu_tests_rest.log 2>&1; echo "tests exit $? at $(elapsed) s" >> $D/gpu_tests_rest.log ) &
fi
( timeout "$(left 565)" python3 benchmarks/scripts/warm_backbone.py configs/segmentation/upernet_mlla_t.py \
    --shape 512 512 --batch 8 --precision fp16 > $D/warm.log 2>&1; echo "warm exit $? at $(elapsed) s" >> $D/warm.log ) &
timeout "$(left 200)" python3 -m pytest tests/gpu/test_matmul_resize_heads_gpu.py -v -rA -p no:cacheprovider \
  > $D/heads_gpu_tests.log 2>&1; echo "heads tests exit $? at $(elapsed) s"
grep -E "PASSED|FAILED|Assertion|passed|failed" $D/heads_gpu_tests.log | cut -c1-200 | tail -12
UP="--level model --shape 512 512 --batch 8 --precision fp16 --adamw config --no-infer --warmup 10 --iters 30"
sleep $(( $(left 200) > 0 ? $(left 200) : 0 ))
bench_until 320 $D swin_fp32_backward $UP --config configs/segmentation/upernet_mlla_t.py --peers swin_t
cp mlla_mm/models/decode_heads/matmul_resize.py /tmp/s24/fp32_backward.py
cp .gpu/matmul_resize_head_version.py mlla_mm/models/decode_heads/matmul_resize.py
bench_until 440 $D swin_fp16_backward $UP --config configs/segmentation/upernet_mlla_t.py --peers swin_t
cp /tmp/s24/fp32_backward.py mlla_mm/models/decode_heads/matmul_resize.py
wait; tail -4 $D/gpu_tests_rest.log 2>/dev/null; grep -E "FAILED|ERROR" $D/gpu_tests_rest.log 2>/dev/null | head
tail -3 $D/warm.log; echo "end at $(elapsed) s"
