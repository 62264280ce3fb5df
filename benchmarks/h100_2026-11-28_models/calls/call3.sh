#!/usr/bin/env bash
# Session 10, device call 3: where UperNet's 8x512x512 fp16 train step goes, with no compiling: the Swin-T and
# ConvNeXt-T backbones alone (forward and backward), and the UperNet model with Swin-T and ResNet-50, with the
# config's AdamW and with none, each one process.
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run() { # name, arguments
  local name=$1; shift
  echo "== $name at $(el) s"
  timeout 200 python3 tools/analysis/benchmark.py --precision fp16 --no-infer --warmup 5 --iters 20 \
    --json $OUT/$name.json "$@" 2>&1 | grep -v -E 'jit.script_method|^ +warnings.warn' > $OUT/$name.log
  echo "exit ${PIPESTATUS[0]} at $(el) s"
  grep -E "^mlla|^swin|^convnext|^resnet|rror" $OUT/$name.log | cut -c1-200
}
run backbones_8x512x512_fp16 --level backbone --peers swin_t convnext_t resnet50 --adamw none --shape 512 512 --batch 8
run upernet_peers_8x512x512_fp16 --level model --config configs/segmentation/upernet_mlla_t.py --peers swin_t resnet50 \
  --adamw config none --shape 512 512 --batch 8
