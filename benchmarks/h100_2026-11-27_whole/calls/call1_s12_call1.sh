#!/usr/bin/env bash
# Next session, device call 1 (fresh machine): set up; all GPU tests in one run at HEAD (compile_stages='all' the
# default), under `timeout -s INT` so that pytest still prints its failures when the limit stops it; beside them one
# process that compiles the backbone's fp16 training graphs for call 2 (cold, they needed more than 400 s alone).
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/l1; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
F='jit.script_method|^ +warnings.warn'
( timeout $(left 560) python3 tools/analysis/benchmark.py --arch tiny --attn-impl fast --peers mlla convnext_t \
    --warmup 1 --iters 2 --level backbone --shape 800 1344 --batch 2 --precision fp16 2>&1 | grep -v -E "$F"
  echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_backbone_fp16.log &
timeout -s INT $(left 550) python3 -m pytest tests/gpu -n 4 -p no:cacheprovider -rfE -v --durations=10 \
  > $L/gpu_tests.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests.log
wait
grep -c PASSED $L/gpu_tests.log; grep -E "FAILED|ERROR|passed|failed" $L/gpu_tests.log | tail -15 | cut -c1-300
grep -E "^mlla|^convnext|exit at|rror" $L/warm_backbone_fp16.log | cut -c1-300
tar czf $OUT/logs1.tgz -C /tmp l1
