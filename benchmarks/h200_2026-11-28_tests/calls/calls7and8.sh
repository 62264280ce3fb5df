#!/usr/bin/env bash
# Session 14, device calls 7 and 8 (a fourth machine, fresh): the MLLA-T backbone train step at 2x3x800x1344 bf16
# against ConvNeXt-T, as the ninth session measured it (../h100_2026-11-27_compile/calls/call5.sh), cold cache.
# Call 7 carried no .gpu and installed nothing: mmengine missing, it stopped at once. Call 8, as run:
source benchmarks/scripts/device_call.sh && install_or_reuse_stack; timeout 530 python3 tools/analysis/benchmark.py --level backbone --arch tiny --peers convnext_t mlla --attn-impl fast --shape 800 1344 --batch 2 --precision bf16 --adamw none fused --no-infer --warmup 5 --iters 30 --json $OUT/backbone_bf16.json 2>&1 | grep -v -E "$NOISE" > $OUT/backbone_bf16.log; echo "exit at $(elapsed) s"; grep -E "^mlla|^convnext|rror" $OUT/backbone_bf16.log | cut -c1-220
