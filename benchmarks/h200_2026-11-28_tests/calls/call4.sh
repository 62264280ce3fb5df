#!/usr/bin/env bash
# Session 14, device call 4 (the machine of call 3, cache warm): the UperNet step, MLLA-T fast vs Swin-T, with HEAD's
# heads (fp16 resize) and again with the float32-output heads, same machine, one process each.
source benchmarks/scripts/device_call.sh && require_warm_machine
D=$OUT/c4; mkdir -p $D
UP="--level model --shape 512 512 --batch 8 --precision fp16 --adamw config --no-infer --warmup 10 --iters 50"
cp .gpu/matmul_resize_head_version.py mlla_mm/models/decode_heads/matmul_resize.py
bench_until 240 $D upernet_head_heads $UP --config configs/segmentation/upernet_mlla_t.py --peers mlla swin_t --attn-impl fast
cp /tmp/s24/fp32_out.py mlla_mm/models/decode_heads/matmul_resize.py
bench_until 480 $D upernet_fp32_out $UP --config configs/segmentation/upernet_mlla_t.py --peers mlla swin_t --attn-impl fast
echo "end at $(elapsed) s"
