#!/usr/bin/env bash
# Session 8, device call 3 (fresh machine, no mmcv: the backbone needs only mmengine). Phase 1, in parallel: cold
# compiles of 128x224 fp16 inference at HEAD (block-diagonal K'V) and at f443798 (heads first), and the failing
# test's check over five seeds, eager and compiled (diag_seeds.py). Phase 2, alone on the GPU: the two trees timed,
# ConvNeXt-T first in each process.
source benchmarks/scripts/device_call.sh
L=/tmp/l3; mkdir -p $L
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > $L/setup.log 2>&1
python3 -c 'import torch, mlla_mm, timm; print(torch.__version__, torch.cuda.get_device_name())' | tee -a $L/setup.log
W="--level backbone --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 1 --no-train --batch 128 --shape 224 224 --precision fp16"
( timeout $(left 330) python3 tools/analysis/benchmark.py $W > $L/warm_224_head.log 2>&1; echo "  (head warm at $(elapsed) s)" ) &
( cd .gpu/trees/f443798 && timeout $(left 330) python3 tools/analysis/benchmark.py $W > $L/warm_224_f443798.log 2>&1
  echo "  (f443798 warm at $(elapsed) s)" ) &
( timeout $(left 120) python3 .gpu/diag_seeds.py --eager > $L/diag_seeds_eager.log 2>&1; echo "  (eager diag at $(elapsed) s)"
  timeout $(left 330) python3 .gpu/diag_seeds.py > $L/diag_seeds_compiled.log 2>&1; echo "  (compiled diag at $(elapsed) s)" ) &
wait
R=/tmp/l3/timed; mkdir -p $R
I="--level backbone --arch tiny --attn-impl fast --no-train --batch 128 --shape 224 224 --precision fp16 --warmup 10 --iters 30 --peers convnext_t mlla"
bench_until 460 $R infer_128x224_fp16_head $I
( cd .gpu/trees/f443798 && timeout $(left 580) python3 tools/analysis/benchmark.py $I \
    --json $R/infer_128x224_fp16_f443798.json 2>&1 | grep -v -E "$NOISE" > $R/infer_128x224_fp16_f443798.log )
grep -E "^mlla|^convnext" $R/infer_128x224_fp16_f443798.log | cut -c1-250; echo "  (f443798 timed at $(elapsed) s)"
for f in $L/diag_seeds_*.log; do echo "== $f"; grep -v -E "pow_by_natural|warnings.warn|mmengine - INFO" $f | head -70 | cut -c1-200; done
tar czf $OUT/logs3.tgz -C /tmp l3
