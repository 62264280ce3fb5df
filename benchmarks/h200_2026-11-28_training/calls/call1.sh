#!/usr/bin/env bash
# Session 12, device call 1 (nvidia-h100-x2): GPU 1 runs the GPU tests that touch compiled code (duck sizing off,
# convs through _compile_once); GPU 0 the one-GPU fast-path demo training (warms the Inductor cache for call 2).
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed in $(el) s"; }
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
python3 -c "import xdist" 2>/dev/null && N="-n 4" || N=""
[ -f data/demo/coco/annotations/instances_val.json ] || python3 tools/make_demo_data.py > /tmp/data.log 2>&1
echo "data at $(el) s"; git log --oneline -1 2>/dev/null
( CUDA_VISIBLE_DEVICES=1 MLLA_FAST_STRICT=1 timeout $(( 570 - $(el) )) python3 -m pytest tests/gpu $N -q -p no:cacheprovider \
    -k "not test_compiled_fast_block_matches_plain and not test_triton_dwconv_matches_conv2d" --durations=40 \
    > $OUT/gpu_tests.log 2>&1; echo "tests exit $? at $(el) s" >> $OUT/gpu_tests.log ) &
OPTS="train_cfg.max_epochs=12 param_scheduler.1.end=12 param_scheduler.1.milestones=[9,11]"
echo "== 1 GPU x 8, fast path, at $(el) s"
CUDA_VISIBLE_DEVICES=0 timeout $(( 575 - $(el) )) python3 tools/train.py configs/demo/mask_rcnn_mlla_t_demo_gpu.py --amp \
  --work-dir /tmp/wd_1gpu_b8 --cfg-options $OPTS model.backbone.attn_impl=fast > /tmp/1gpu_b8.out 2>&1
echo "exit $? at $(el) s"
grep -v -E 'jit.script_method|^ +warnings.warn' /tmp/1gpu_b8.out > $OUT/1gpu_b8.out; cp /tmp/wd_1gpu_b8/*/*.log $OUT/1gpu_b8.log 2>/dev/null
grep -E "Warn|rror|MLLA fast|\]\[25/25\]|\]\[13/13\]|bbox_mAP:" $OUT/1gpu_b8.out | cut -c1-220
wait; tail -5 $OUT/gpu_tests.log; du -sh /tmp/torchinductor_root 2>/dev/null; echo "end at $(el) s"
