#!/usr/bin/env bash
# Second machine of 2026-11-27 (fourth session), call B1 (fresh machine): set up; the GPU tests alone with
# compile_stages='all' now the default (verbose, so a time-out still says which passed); beside them two processes
# that fill the Inductor cache for call B2: the backbone's fp16 train step, and Mask R-CNN inference per block and
# with compiled stages.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/lb1; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
B="python3 tools/analysis/benchmark.py --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 2"
F='jit.script_method|^ +warnings.warn'
warm() { local name=$1; shift
  ( timeout $(left 545) $B "$@" 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_$name.log & }
warm backbone_fp16 --level backbone --shape 800 1344 --batch 2 --precision fp16
warm maskrcnn_infer --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2 \
  --precision fp16 --no-train --compile-stages on all
timeout $(left 545) python3 -m pytest tests/gpu -n 3 -p no:cacheprovider -rfE -v --durations=8 > $L/gpu_tests.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests.log
wait
grep -E "PASSED|FAILED|ERROR" $L/gpu_tests.log | grep -c PASSED
grep -E "FAILED|ERROR|passed|failed" $L/gpu_tests.log | tail -15 | cut -c1-300
for f in $L/warm*.log; do echo "== $f"; grep -E "^mlla|exit at|rror|failed" $f | cut -c1-300; done
tar czf $OUT/logsb1.tgz -C /tmp lb1
