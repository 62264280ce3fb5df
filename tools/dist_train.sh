#!/usr/bin/env bash
# Distributed training with torchrun, on one node or several.
#   bash tools/dist_train.sh CONFIG NGPUS [train.py options ...]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500),
#   PYTHON (the repository's .venv/bin/python if it exists, else python).
# NGPUS is the number of processes on this node; on a machine without CUDA they train on the CPU (gloo).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NGPUS [train.py options ...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
exec bash "$(dirname "$0")/launch/torchrun.sh" train.py "$GPUS" "$CONFIG" --launcher pytorch "$@"
