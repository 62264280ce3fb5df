# Shared by device_speed.sh and device_models.sh (sourced, not run): the output folder, the time limits, and one
# benchmark.py run whose log and JSON land in the output folder.
set -uo pipefail
out=${OUT:-benchmarks/latest}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
kernels=${FAST_KERNELS:-off}
stages=${COMPILE_STAGES:-backbone}
adamw=${ADAMW:-foreach}

read_limits() { # how many, the default: LIMITS (or the default) into the array `limits`, checked
  local count=$1
  read -r -a limits <<<"${LIMITS:-$2}"
  local ok=$(( ${#limits[@]} == count ))
  for limit in "${limits[@]}"; do [[ $limit =~ ^[0-9]+$ ]] || ok=0; done
  (( ok )) || { echo "LIMITS must be $count whole numbers of seconds, got '${LIMITS:-}'" >&2; exit 2; }
}

bench() { # name, time limit in s, then benchmark.py arguments
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 tools/analysis/benchmark.py --fast-kernels $kernels --compile-stages $stages \
    --adamw $adamw --json "$out/$name.json" "$@" 2>&1 | grep -v -E 'jit.script_method|^ +warnings.warn' \
    | tee "$out/$name.log"
}
