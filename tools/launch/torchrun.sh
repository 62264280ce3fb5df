#!/usr/bin/env bash
# Shared by tools/dist_train.sh and tools/dist_test.sh: run a tool of tools/ on NGPUS processes of this node.
#   bash tools/launch/torchrun.sh TOOL NGPUS [tool arguments ...]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500),
#   PYTHON (the repository's .venv/bin/python if it exists, else python).
set -euo pipefail
TOOL=$1
GPUS=$2
shift 2
TOOLS_DIR=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(dirname "$TOOLS_DIR")
# the repository's environment (made by `make demo` / `make test`) unless PYTHON names another interpreter
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python; fi
fi

PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$TOOLS_DIR/$TOOL" "$@"
