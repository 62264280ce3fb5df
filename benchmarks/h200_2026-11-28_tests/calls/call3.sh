#!/usr/bin/env bash
# Session 14, device call 3 (the machine of call 2): heads with a float32 output and backward (as F.interpolate's
# under autocast): GPU tests; UperNet step MLLA-T fast vs Swin-T and ResNet-50; Swin-T with HEAD's heads.
source benchmarks/scripts/device_call.sh && install_or_reuse_stack
D=$OUT/c3; mkdir -p $D /tmp/s24
( timeout "$(left 300)" python3 benchmarks/scripts/warm_backbone.py configs/segmentation/upernet_mlla_t.py \
    --shape 512 512 --batch 8 --precision fp16 > $D/warm.log 2>&1; echo "warm exit $? at $(elapsed) s" >> $D/warm.log ) &
timeout "$(left 60)" python3 -m pytest tests/gpu/test_matmul_resize_heads_gpu.py -v -rA -p no:cacheprovider \
  > $D/heads_gpu_tests.log 2>&1; echo "heads tests exit $? at $(elapsed) s"
grep -E "Assertion|passed|failed" $D/heads_gpu_tests.log | cut -c1-200 | tail -6
wait; tail -2 $D/warm.log
UP="--level model --shape 512 512 --batch 8 --precision fp16 --adamw config --no-infer"
bench_until 450 $D upernet_fp32_out $UP --warmup 10 --iters 50 --config configs/segmentation/upernet_mlla_t.py \
  --peers mlla swin_t resnet50 --attn-impl fast
cp mlla_mm/models/decode_heads/matmul_resize.py /tmp/s24/fp32_out.py
cp .gpu/matmul_resize_head_version.py mlla_mm/models/decode_heads/matmul_resize.py
bench_until 560 $D upernet_head_heads $UP --warmup 10 --iters 50 --config configs/segmentation/upernet_mlla_t.py \
  --peers swin_t
cp /tmp/s24/fp32_out.py mlla_mm/models/decode_heads/matmul_resize.py
echo "end at $(elapsed) s"
