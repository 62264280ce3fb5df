#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU, started by srun.
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#       bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options ...]
# PYTHON (the repository's .venv/bin/python if it exists, else python) picks the interpreter.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options ...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
exec bash "$(dirname "$0")/launch/srun.sh" "$PARTITION" "$JOB_NAME" train.py "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "$@"
