#!/usr/bin/env bash
# Session 7, device call 2 (within 30 s of call 1, warm cache): 128x224 fp16 inference, HEAD against f2ff307 (the
# two kernel changes) and ConvNeXt-T; then the bf16 backbone train step at HEAD against ConvNeXt-T, then batch-1
# 800x1344 bf16 inference.
source benchmarks/scripts/device_call.sh
require_warm_machine
R=/tmp/r2; mkdir -p $R
I="--level backbone --arch tiny --attn-impl fast --no-train --batch 128 --shape 224 224 --precision fp16 --warmup 10 --iters 30"
bench_until 150 $R infer_128x224_fp16_head $I --peers convnext_t mlla
( cd .gpu/trees/f2ff307 && TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache timeout $(left 270) python3 \
    tools/analysis/benchmark.py $I --compile-stages backbone --peers convnext_t mlla \
    --json $R/infer_128x224_fp16_f2ff307.json 2>&1 | grep -v -E "$NOISE" > $R/infer_128x224_fp16_f2ff307.log )
grep -E "^mlla|^convnext" $R/infer_128x224_fp16_f2ff307.log; echo "  (f2ff307 done at $(elapsed) s)"
bench_until 430 $R backbone_2x800x1344_bf16_train_head --level backbone --arch tiny --attn-impl fast \
  --peers convnext_t mlla --shape 800 1344 --batch 2 --precision bf16 --adamw none fused --warmup 5 --iters 30
bench_until 575 $R infer_1x800x1344_bf16_head --level backbone --arch tiny --attn-impl fast \
  --peers convnext_t mlla --no-train --batch 1 --shape 800 1344 --precision bf16 --warmup 10 --iters 50
tar czf $OUT/results2.tgz -C /tmp r2
# The Inductor cache, to carry into a later session if it is small enough (the carry limit is 64 MiB in all)
du -sh .inductor_cache; tar czf /tmp/inductor_cache.tgz .inductor_cache; ls -l /tmp/inductor_cache.tgz
[ $(stat -c %s /tmp/inductor_cache.tgz) -lt 15000000 ] && cp /tmp/inductor_cache.tgz $OUT/
