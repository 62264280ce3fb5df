#!/usr/bin/env bash
# Session 9, device call A: set up; GPU tests (incl. the compile_stages train-step case) while separate processes
# fill the Inductor cache for calls B and C: backbone train bf16/fp16 (compile_stages off/on), Mask R-CNN fp16,
# UperNet fp16 8x512x512, and the inference-only shapes (1x800x1344, 1x512x512, 128x224).
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/la2; mkdir -p $L
python3 -c "import mmdet, mmseg, mmcv.ops, mlla_mm" || bash .gpu/device_setup.sh > $L/setup.log 2>&1
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"; nproc
B="python3 tools/analysis/benchmark.py --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 2"
F='jit.script_method|^ +warnings.warn'
warm() { local name=$1; shift
  ( timeout $(left 550) $B "$@" 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_$name.log & }
warm bf16_stages --level backbone --shape 800 1344 --batch 2 --precision bf16 --compile-stages on

warm maskrcnn_fp16 --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2 --precision fp16 --compile-stages on

timeout $(left 560) python3 -m pytest tests/gpu -n 3 -p no:cacheprovider -rfE -q --durations=8 > $L/gpu_tests.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests.log
wait
grep -E "passed|failed|FAILED|Error|assert" $L/gpu_tests.log | tail -15 | cut -c1-300
for f in $L/warm*.log; do echo "== $f"; grep -E "^mlla|exit at|rror|failed" $f | cut -c1-300; done
du -sh .inductor_cache
tar czf $OUT/logsA2.tgz -C /tmp la2
