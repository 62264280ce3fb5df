#!/usr/bin/env bash
# Session 6, device call A: set up; all GPU tests of the present code while separate processes fill the Inductor
# cache for call B's timed rows (fast path: backbone bf16 train with the optional kernels off and on, fp16 train,
# inference rows, Mask R-CNN and UperNet fp16).
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/la; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; python3 -c 'import torch, triton; print(torch.__version__, triton.__version__)'
git log --oneline -1 2>/dev/null || true
B="python3 tools/analysis/benchmark.py --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 2"
F='jit.script_method|^ +warnings.warn'
warm() { # name, then benchmark arguments
  local name=$1; shift
  ( timeout $(left 545) $B "$@" 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_$name.log &
}
warm bf16_train_off --level backbone --shape 800 1344 --batch 2 --precision bf16 --fast-kernels off
TORCH_LOGS=perf_hints warm bf16_train_on --level backbone --shape 800 1344 --batch 2 --precision bf16 --fast-kernels on
warm fp16_train_off --level backbone --shape 800 1344 --batch 2 --precision fp16 --fast-kernels off
warm maskrcnn_fp16 --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2 --precision fp16
warm upernet_fp16 --level model --config configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8 --precision fp16
( for a in "224 224 --batch 128 --precision fp16" "800 1344 --batch 1 --precision bf16" "512 512 --batch 1 --precision bf16"; do
  timeout $(left 545) $B --level backbone --no-train --shape $a 2>&1 | grep -v -E "$F"; done; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_infer.log &
timeout $(left 560) python3 -m pytest tests/gpu -n 3 -p no:cacheprovider -rfE -q --durations=8 > $L/gpu_tests.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests.log
wait
echo "all done at $(( $(date +%s) - t0 )) s"
grep -E "passed|failed|FAILED|Error|assert" $L/gpu_tests.log | tail -15 | cut -c1-300
for f in $L/warm*.log; do echo "== $f"; grep -E "^mlla|exit at|rror|skipping cudagraphs" $f | sort | uniq -c | cut -c1-300; done
tar czf $OUT/logsA.tgz -C /tmp la
