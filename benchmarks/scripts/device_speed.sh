#!/usr/bin/env bash
# The backbone speed runs of the README's Speed section, on a GPU machine, each against ConvNeXt-T in the same
# process. Results (JSON and logs) go to ${OUT:-benchmarks/latest}; the Inductor cache to ${TORCHINDUCTOR_CACHE_DIR}.
#   bash benchmarks/scripts/device_speed.sh [plain fast ...]
# With a cold Inductor cache the fast path compiles for minutes (about 4.5 min for the training graphs of MLLA-T on
# the H100 host, 1-2 min for inference), so the first run needs most of its time limit; the time limits keep the
# later runs and the copying of results inside one 10-minute device call only with a warm cache.
# LIMITS="540 90 90 150" sets the four rows' time limits in seconds (shorter ones suit a warm cache).
# FAST_KERNELS="off on" also measures the fast path with MLLA's triton_dwconv and compile_convs in each process
# (twice the compiling).
set -uo pipefail
out=${OUT:-benchmarks/latest}
mkdir -p "$out"
impls=${*:-plain fast}
read -r limit_train limit_infer limit_small limit_batch extra <<<"${LIMITS:-540 90 90 150}"
for limit in "$limit_train" "$limit_infer" "$limit_small" "$limit_batch"; do
  [[ $limit =~ ^[0-9]+$ && -z $extra ]] || { echo "LIMITS must be four whole numbers of seconds, got '$LIMITS'" >&2; exit 2; }
done
export PYTHONUNBUFFERED=1
kernels=${FAST_KERNELS:-off}
bench() { # name, timeout in s, then benchmark.py arguments
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 tools/analysis/benchmark.py --level backbone --arch tiny --fast-kernels $kernels \
    --json "$out/$name.json" "$@" \
    2>&1 | grep -v -E 'jit.script_method|^ +warnings.warn' | tee "$out/$name.log"
}
bench backbone_2x800x1344_train $limit_train --shape 800 1344 --batch 2 --precision bf16 fp16 --attn-impl $impls \
  --peers mlla convnext_t --warmup 5 --iters 20
bench backbone_1x800x1344_bf16_infer $limit_infer --shape 800 1344 --batch 1 --precision bf16 --attn-impl $impls \
  --peers mlla convnext_t --no-train
bench backbone_1x512x512_bf16_infer $limit_small --shape 512 512 --batch 1 --precision bf16 --attn-impl $impls \
  --peers mlla convnext_t --no-train
bench backbone_128x224_fp16_infer $limit_batch --shape 224 224 --batch 128 --precision fp16 --attn-impl $impls \
  --peers mlla convnext_t --no-train --warmup 5 --iters 20
