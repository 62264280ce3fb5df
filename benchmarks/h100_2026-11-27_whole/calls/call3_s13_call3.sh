#!/usr/bin/env bash
# Session 13, device call 3, the session's last (fresh machine, about 600 s of device time left): compile_backbone
# (the whole backbone as one compiled call). Three of its GPU test cases (two pytest workers) beside two processes
# that compile (cold) the bf16 backbone train step with compile_backbone and with compile_stages='all'; then, alone
# on the GPU, one process times both against ConvNeXt-T, forward+backward and with fused AdamW.
set -u
t0=$(date +%s); left() { echo $(( t0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3
L=/tmp/l3; mkdir -p $L
bash .gpu/device_setup.sh > $L/setup.log 2>&1 || { cat $L/setup.log; exit 1; }
tail -1 $L/setup.log; echo "setup done at $(( $(date +%s) - t0 )) s"
F='jit.script_method|^ +warnings.warn'
B="tools/analysis/benchmark.py --level backbone --arch tiny --attn-impl fast --shape 800 1344 --batch 2 --precision bf16"
for stages in backbone all; do
  ( timeout $(left 400) python3 $B --compile-stages $stages --peers mlla --adamw none --warmup 1 --iters 1 2>&1 \
      | grep -v -E "$F"; echo "exit at $(( $(date +%s) - t0 )) s" ) > $L/warm_bf16_$stages.log &
done
T=tests/gpu/test_fast_path_gpu.py
MLLA_FAST_STRICT=1 timeout -s INT $(left 400) python3 -m pytest -n 2 -p no:cacheprovider -rfE -v --durations=5 \
  "$T::test_backbone_train_steps_with_cuda_graphs_match_plain[-1-False-True-True]" \
  "$T::test_compiled_stem_and_merging_keep_batchnorm_statistics[True]" \
  "$T::test_backbone_auto_uses_fast_path_and_agrees[dtype2-all-True]" > $L/gpu_tests_whole.log 2>&1
echo "pytest exit $? at $(( $(date +%s) - t0 )) s" | tee -a $L/gpu_tests_whole.log
wait
grep -E "PASSED|FAILED|ERROR|passed|failed" $L/gpu_tests_whole.log | tail -8 | cut -c1-300
for f in $L/warm_*.log; do echo "== $f"; grep -E "^mlla|exit at|rror|failed" $f | cut -c1-300; done
echo "timing from $(( $(date +%s) - t0 )) s"
timeout $(left 555) python3 $B --compile-stages backbone all --peers convnext_t mlla --adamw none fused --warmup 5 \
  --iters 30 --json $L/backbone_2x800x1344_bf16_train.json 2>&1 | grep -v -E "$F" > $L/backbone_2x800x1344_bf16_train.log
grep -E "^mlla|^convnext|rror|failed" $L/backbone_2x800x1344_bf16_train.log | cut -c1-250
echo "done at $(( $(date +%s) - t0 )) s"; nvidia-smi --query-gpu=name --format=csv,noheader
tar czf $OUT/logs3.tgz -C /tmp l3
