#!/usr/bin/env bash
# Sixth session, device call 3 (warm machine), as run (one line in the device call; wrapped here).
source benchmarks/scripts/device_call.sh; require_warm_machine; R=/tmp/r3; mkdir -p $R
timeout $(left 230) python3 benchmarks/scripts/breakdown.py --impl fast --dtype fp16 --infer --shape 224 224 \
  --batch 128 > $R/breakdown_224_fp16_infer.log 2>&1
echo "breakdown exit $? at $(elapsed) s"
grep -v -E "$NOISE|pow_by_natural" $R/breakdown_224_fp16_infer.log | tail -50 | cut -c1-200
bench_until 530 $R backbone_2x800x1344_bf16_train_whole_vs_all --level backbone --arch tiny --attn-impl fast \
  --compile-stages backbone all --peers convnext_t mlla --shape 800 1344 --batch 2 --precision bf16 --adamw none \
  --warmup 5 --iters 30
tar czf $OUT/results3.tgz -C /tmp r3
