#!/usr/bin/env bash
# Session 8, device call 3 (warm machine): the bf16 backbone train step at HEAD against ConvNeXt-T (call 2 ran out
# of time in MLLA's compile); the Inductor cache of calls 1-2 may hold part of it.
source benchmarks/scripts/device_call.sh
require_warm_machine
R=/tmp/r3; mkdir -p $R
bench_until 560 $R backbone_2x800x1344_bf16_train_head --level backbone --arch tiny --attn-impl fast \
  --peers mlla convnext_t --shape 800 1344 --batch 2 --precision bf16 --adamw none fused --warmup 5 --iters 30
tar czf $OUT/results3.tgz -C /tmp r3
