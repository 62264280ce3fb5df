#!/usr/bin/env bash
# Session 9, device call 2 (a fresh machine): the backbone train step at 2x3x800x1344, fp16 then bf16, each in one
# process: MLLA-T's plain path, its fast path (the whole backbone compiled, images cut into 32x32 tiles), and
# ConvNeXt-T; forward and backward alone, and with fused AdamW. No inference (--no-infer): nothing compiles but the
# training graphs, whose compile is the first step's time (first_train_step_s).
set -u
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; git log -1 --format=%h 2>/dev/null
bench() { # deadline (s after start), name, precision
  timeout $(( t0 + $1 - $(date +%s) )) python3 tools/analysis/benchmark.py --level backbone --arch tiny \
    --attn-impl plain fast --peers mlla convnext_t --shape 800 1344 --batch 2 --precision $3 --adamw none fused \
    --no-infer --warmup 5 --iters 30 --json $OUT/$2.json > $OUT/$2.log 2>&1
  echo "$2: exit $? at $(( $(date +%s) - t0 )) s"
  grep -E "^mlla|^convnext|rror" $OUT/$2.log | cut -c1-200
  python3 -c "import json,sys; [print(r['model'], r.get('first_train_step_s')) for r in json.load(open(sys.argv[1]))['rows']]" $OUT/$2.json 2>/dev/null
}
bench 330 backbone_2x800x1344_fp16_train fp16
bench 580 backbone_2x800x1344_bf16_train bf16
