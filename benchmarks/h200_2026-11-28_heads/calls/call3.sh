#!/usr/bin/env bash
# Session 13, device call 3 (the machine of call 2, its Inductor cache warm with MLLA-T's UperNet backbone): the
# UperNet train step, MLLA-T fast against Swin-T and ResNet-50 in one process, with the matmul-resize heads (the
# configs' own now), then with mmseg's heads.
source benchmarks/scripts/device_call.sh && require_warm_machine
D=$OUT/c3; mkdir -p $D
UP="--level model --shape 512 512 --batch 8 --precision fp16 --adamw config --no-infer --warmup 10 --iters 50"
printf "_base_ = '%s/configs/segmentation/upernet_mlla_t.py'\nmodel = dict(decode_head=dict(type='UPerHead'), auxiliary_head=dict(type='FCNHead'))\n" "$PWD" > /tmp/upernet_stock_heads.py
bench_until 300 $D upernet_matmul_heads $UP --config configs/segmentation/upernet_mlla_t.py --peers mlla swin_t resnet50 --attn-impl fast
bench_until 540 $D upernet_mmseg_heads $UP --config /tmp/upernet_stock_heads.py --peers mlla swin_t --attn-impl fast
echo "end at $(elapsed) s"
