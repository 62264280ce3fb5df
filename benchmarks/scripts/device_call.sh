# Shared by one-off device calls (sourced, not run; the recorded ones are in benchmarks/*/calls/): a deadline
# measured from the call's start, the device set-up, and benchmark.py runs that stop at a deadline.
#   source benchmarks/scripts/device_call.sh && setup_fresh_machine /tmp/l1    # first call on a machine
#   source benchmarks/scripts/device_call.sh && require_warm_machine           # a later call on the same machine
#   source benchmarks/scripts/device_call.sh && install_or_reuse_stack         # training runs, either case
set -u
call_t0=$(date +%s)
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.inductor_cache PYTHON=python3
# NVLink multicast off on every kind, as the device library's KINDS.md asks (matters to NCCL on 2+ GPUs only)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# benchmark.py's output without the warnings that torch and mmengine repeat for every model
NOISE='jit.script_method|^ +warnings.warn'

left() { # seconds from now until $1 seconds after the call's start
  echo $(( call_t0 + $1 - $(date +%s) ))
}

elapsed() {
  echo $(( $(date +%s) - call_t0 ))
}

setup_fresh_machine() { # log folder: the OpenMMLab stack from the carried .gpu/ folder (../shared/gpu/README.md)
  mkdir -p "$1"
  bash .gpu/device_setup.sh > "$1/setup.log" 2>&1 || { cat "$1/setup.log"; exit 1; }
  tail -1 "$1/setup.log"; echo "setup done at $(elapsed) s"
}

install_or_reuse_stack() { # the carried wheels and mmcv wheel (about 7 s), unless a call before on this machine did
  # it; for tools/train.py and tools/dist_train.sh, which run from the checkout (setup_fresh_machine's check and
  # editable install take longer)
  if python3 -c 'import mmcv.ops' 2>/dev/null; then echo "warm machine: stack present"; return; fi
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 \
    || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed at $(elapsed) s"
}

require_warm_machine() { # a later call must find the stack (and the Inductor cache) of the call before it
  python3 -c 'import mmdet, mmseg, mmcv.ops, mlla_mm' 2>/dev/null && echo "warm machine" \
    || { echo "FRESH MACHINE: stop"; exit 1; }
}

# With COMPILE_CACHE=DIR (a carried folder), bench_until first loads torch.compile's artifacts from DIR/*.bin and
# saves its own process's to $OUT/cache_NAME.bin when it ends (benchmarks/scripts/compile_cache.py); copy those
# into DIR to carry them into a later session. MLLA-T's are too large for that on the lent machines: 32 MiB for
# 128x224 inference, 76 MiB for an unfinished training compile, over the 16 MiB a file from $OUT may have
# (benchmarks/h100_2026-11-27_diag/).
bench_until() { # deadline (s after the call's start), output folder, name, then benchmark.py arguments
  local deadline=$1 dir=$2 name=$3; shift 3
  local python=(python3)
  if [ -n "${COMPILE_CACHE:-}" ]; then
    python=(python3 benchmarks/scripts/compile_cache.py --load "$COMPILE_CACHE/*.bin" --save "$OUT/cache_$name.bin")
  fi
  timeout "$(left "$deadline")" "${python[@]}" tools/analysis/benchmark.py --json "$dir/$name.json" "$@" 2>&1 \
    | grep -v -E "$NOISE" > "$dir/$name.log"
  grep -E "^mlla|^convnext|^swin|^resnet|rror|failed" "$dir/$name.log" | cut -c1-250
  echo "  ($name done at $(elapsed) s)"
}
