#!/usr/bin/env bash
# Session 9, device call 5: it found call 4's machine still warm (its Inductor cache held call 3's fp16 and call 4's
# bf16 graphs), so the compile was short. The backbone train step, bf16 then fp16, each in one process: ConvNeXt-T
# and MLLA-T's fast path, forward and backward alone and with fused AdamW. It ran as this one-line command:
t0=$(date +%s); ls /tmp/torchinductor_root 2>/dev/null | head -3; export PYTHONUNBUFFERED=1; for p in bf16 fp16; do timeout $(( t0 + 560 - $(date +%s) )) python3 tools/analysis/benchmark.py --level backbone --arch tiny --peers convnext_t mlla --attn-impl fast --shape 800 1344 --batch 2 --precision $p --adamw none fused --no-infer --warmup 5 --iters 30 --json $OUT/warm_$p.json > $OUT/warm_$p.log 2>&1; echo "$p exit $? at $(( $(date +%s) - t0 )) s"; grep -E "^mlla|^convnext|rror" $OUT/warm_$p.log | cut -c1-200; done
