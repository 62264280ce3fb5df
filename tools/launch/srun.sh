#!/usr/bin/env bash
# Shared by tools/slurm_train.sh and tools/slurm_test.sh: run a tool of tools/ as one Slurm task per GPU.
#   bash tools/launch/srun.sh PARTITION JOB_NAME TOOL [tool arguments ...]
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
#   PYTHON (the repository's .venv/bin/python if it exists, else python).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
TOOL=$3
shift 3
TOOLS_DIR=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(dirname "$TOOLS_DIR")
# the repository's environment (made by `make demo` / `make test`) unless PYTHON names another interpreter
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python; fi
fi
GPUS_PER_NODE=${GPUS_PER_NODE:-8}

set -x
# SRUN_ARGS is split into words on purpose
# shellcheck disable=SC2086
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="${GPUS:-8}" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "$PYTHON" -u "$TOOLS_DIR/$TOOL" "$@"
