#!/usr/bin/env bash
# Sixth session, device call 4 (warm machine), as run (one line in the device call; wrapped here).
source benchmarks/scripts/device_call.sh; require_warm_machine; R=/tmp/r4; mkdir -p $R
bench_until 270 $R infer_128x224_fp16_whole --level backbone --arch tiny --attn-impl fast \
  --compile-stages backbone all --peers convnext_t mlla --no-train --batch 128 --shape 224 224 --precision fp16 \
  --warmup 10 --iters 30
tar czf $OUT/results4.tgz -C /tmp r4
