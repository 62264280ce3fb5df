#!/usr/bin/env bash
# Sixth session, device call 2 (warm machine), as run (one line in the device call; wrapped here). It replaced the
# prepared .gpu/s14_call2.sh: call 1's cold compile of the whole-backbone bf16 train graphs had not finished in
# 550 s, so this call gave that one process all its time.
source benchmarks/scripts/device_call.sh; require_warm_machine; R=/tmp/r2; mkdir -p $R
bench_until 575 $R backbone_2x800x1344_bf16_train_whole --level backbone --arch tiny --attn-impl fast \
  --compile-stages backbone --peers convnext_t mlla --shape 800 1344 --batch 2 --precision bf16 \
  --adamw none fused --warmup 5 --iters 30
tail -30 $R/backbone_2x800x1344_bf16_train_whole.log | cut -c1-250; tar czf $OUT/results2.tgz -C /tmp r2
