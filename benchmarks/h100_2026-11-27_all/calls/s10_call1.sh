#!/usr/bin/env bash
# Next session, device call 1 (fresh machine): set up; the GPU tests (compile_stages now on by default) beside two
# processes that fill the Inductor cache for call 2; then the optimizer-step timing (no compiling).
# Lessons of 2026-11-27: five compiling processes beside pytest left every one unfinished in 550 s; keep to two.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/l1; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
B="python3 tools/analysis/benchmark.py --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 2"
F='jit.script_method|^ +warnings.warn'
warm() { local name=$1; shift
  ( timeout $(left 530) $B "$@" 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_$name.log & }
warm bf16_train --level backbone --shape 800 1344 --batch 2 --precision bf16
warm maskrcnn_fp16 --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2 --precision fp16 --adamw config
( for s in "1 800 1344 bf16" "128 224 224 fp16"; do set -- $s
    timeout $(left 530) $B --level backbone --no-train --compile-stages on all --batch $1 --shape $2 $3 --precision $4 2>&1 | grep -v -E "$F"
  done; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_infer.log &
timeout $(left 500) python3 -m pytest tests/gpu -n 3 -p no:cacheprovider -rfE -q --durations=8 > $L/gpu_tests.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests.log
for c in detection/mask_rcnn_mlla_t segmentation/upernet_mlla_t; do
  timeout $(left 540) python3 benchmarks/scripts/bench_optimizer.py configs/$c.py 2>&1 | grep -v -E "WARNING|skipped" | tail -5 | tee -a $L/optimizer.log
done
wait
grep -E "passed|failed|FAILED|Error|assert" $L/gpu_tests.log | tail -15 | cut -c1-300
for f in $L/warm*.log; do echo "== $f"; grep -E "^mlla|exit at|rror|failed" $f | cut -c1-300; done
tar czf $OUT/logs1.tgz -C /tmp l1
