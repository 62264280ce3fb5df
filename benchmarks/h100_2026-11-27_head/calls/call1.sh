#!/usr/bin/env bash
# Session 7, device call 1 (fresh machine): the whole GPU suite at HEAD (compile_backbone the default, the depthwise
# bias outside its operator, RoPE tables once per stage), beside three processes that compile (cold) what call 2
# times: 128x224 fp16 inference at HEAD and at f2ff307 (the code before those two kernel changes), and the bf16
# backbone train step at HEAD.
source benchmarks/scripts/device_call.sh
L=/tmp/l1; setup_fresh_machine $L
W="--level backbone --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 1"
bench_until 540 $L warm_224_fp16_head $W --no-train --batch 128 --shape 224 224 --precision fp16 &
( cd .gpu/trees/f2ff307 && TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache timeout $(left 540) python3 \
    tools/analysis/benchmark.py $W --compile-stages backbone --no-train --batch 128 --shape 224 224 \
    --precision fp16 > $L/warm_224_fp16_f2ff307.log 2>&1; echo "  (old tree warm done at $(elapsed) s)" ) &
bench_until 540 $L warm_bf16_train_head $W --shape 800 1344 --batch 2 --precision bf16 --adamw none &
MLLA_FAST_STRICT=1 timeout -s INT $(left 555) python3 -m pytest tests/gpu -n 3 -p no:cacheprovider -rfE -v \
  --durations=15 > $L/gpu_tests_head.log 2>&1
echo "pytest exit $? at $(elapsed) s" | tee -a $L/gpu_tests_head.log
wait
grep -E "FAILED|ERROR|passed|failed" $L/gpu_tests_head.log | tail -15 | cut -c1-300
grep -c PASSED $L/gpu_tests_head.log
tar czf $OUT/logs1.tgz -C /tmp l1
