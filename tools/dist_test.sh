#!/usr/bin/env bash
# Distributed testing with torchrun, on one node or several.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py options ...]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500),
#   PYTHON (the repository's .venv/bin/python if it exists, else python).
# NGPUS is the number of processes on this node; on a machine without CUDA they run on the CPU (gloo).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NGPUS [test.py options ...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
exec bash "$(dirname "$0")/launch/torchrun.sh" test.py "$GPUS" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
