#!/usr/bin/env bash
# Session 5, device call A2: set up; the Triton dwconv GPU tests and micro-benchmark; then all GPU tests while the
# Inductor cache is warmed for call B2's timed runs (bf16/fp16 train, Mask R-CNN, inference rows).
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3 MLLA_FAST_STRICT=1
L=/tmp/la2; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; python3 -c 'import torch, triton; print(torch.__version__, triton.__version__)'
B="python3 tools/analysis/benchmark.py --level backbone --arch tiny --attn-impl fast --peers mlla --warmup 1 --iters 3"
F='jit.script_method|^ +warnings.warn'
( timeout $(left 490) $B --shape 800 1344 --batch 2 --precision bf16 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_bf16_train.log &
( timeout $(left 490) $B --shape 800 1344 --batch 2 --precision fp16 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_fp16_train.log &
( timeout $(left 490) python3 tools/analysis/benchmark.py --level model --config configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 \
  --batch 2 --precision fp16 --attn-impl fast --peers mlla --warmup 1 --iters 2 2>&1 | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_maskrcnn_fp16.log &
( for a in "224 224 --batch 128 --precision fp16" "800 1344 --batch 1 --precision bf16" "512 512 --batch 1 --precision bf16"; do
  timeout $(left 490) $B --no-train --shape $a 2>&1 | grep -v -E "$F"; done; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_infer.log &
timeout 100 python3 -m pytest tests/gpu/test_triton_dwconv_gpu.py -q -p no:cacheprovider -rf 2>&1 | tail -5 > $L/triton_dwconv_tests.log
tail -3 $L/triton_dwconv_tests.log
timeout 60 python3 benchmarks/scripts/bench_dwconv.py > $L/bench_dwconv_bf16.log 2>&1; cat $L/bench_dwconv_bf16.log
echo "micro done at $(( $(date +%s) - t0 )) s"
timeout $(left 495) python3 -m pytest tests/gpu/test_fast_path_gpu.py -n 3 -p no:cacheprovider -rfE -q --durations=5 > $L/gpu_tests.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests.log
wait
echo "all done at $(( $(date +%s) - t0 )) s"
grep -E "passed|failed|FAILED|Error|assert" $L/gpu_tests.log | tail -15 | cut -c1-300
for f in $L/warm*.log; do echo "== $f"; grep -E "^mlla|exit at|rror" $f | cut -c1-300; done
tar czf $OUT/logsA2.tgz -C /tmp la2
