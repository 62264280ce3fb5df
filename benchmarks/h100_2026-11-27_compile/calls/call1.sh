#!/usr/bin/env bash
# Session 9, device call 1 (a fresh machine): where the whole backbone's training compile spends its time.
# Three processes at once, each with its own Inductor cache and 5 compile workers: fp16 and bf16 with the fast
# path's dynamic sizes, and fp16 with static sizes; each sampled by sample_stacks.py.
set -u
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=5
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; python3 -c 'import torch, triton; print(torch.__version__, triton.__version__)'
run() { # name, then compile_time.py arguments
  local name=$1; shift
  TORCHINDUCTOR_CACHE_DIR=/tmp/ic_$name timeout $(( t0 + 575 - $(date +%s) )) python3 benchmarks/scripts/sample_stacks.py \
    --out $OUT/$name.folded.gz benchmarks/scripts/compile_time.py --json $OUT/$name.json "$@" > $OUT/$name.log 2>&1
  echo "$name: exit $? at $(( $(date +%s) - t0 )) s"
}
run fp16_dynamic --precision fp16 &
run bf16_dynamic --precision bf16 &
run fp16_static --precision fp16 --static &
wait
for f in $OUT/*.log; do echo "== $f"; grep -v -E 'warn|Warn' $f | tail -12 | cut -c1-300; done
for f in $OUT/*.folded.gz; do python3 benchmarks/scripts/sample_stacks.py --summary $f | head -24; done
