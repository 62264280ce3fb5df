#!/usr/bin/env bash
# Session 8, device call 5 (a fresh machine): the 2x800x1344 fp16 backbone train step at HEAD against ConvNeXt-T,
# without an optimizer and with fused AdamW. It ran as this command, with this file as .gpu/s18_call4.sh:
#   source benchmarks/scripts/device_call.sh; python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl \
#     > /tmp/setup.log 2>&1; bash .gpu/s18_call4.sh
# (Call 4 had run this file alone on another fresh machine and stopped at once: no mmengine there.)
# MLLA-T's fp16 training graphs, compiling cold and alone, had not finished at the deadline (590 s).
source benchmarks/scripts/device_call.sh
R=/tmp/r4; mkdir -p $R
bench_until 590 $R backbone_2x800x1344_fp16_train_head --level backbone --arch tiny --attn-impl fast \
  --peers mlla convnext_t --shape 800 1344 --batch 2 --precision fp16 --adamw none fused --warmup 5 --iters 30
tar czf $OUT/results4.tgz -C /tmp r4
