#!/usr/bin/env bash
# Session 12, device calls 2 and 3 (3: the same warm machine as 2): the two-GPU fast-path run (batch 4 a GPU) on call 1's cache.
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1; echo "fresh machine"; }
[ -f data/demo/coco/annotations/instances_val.json ] || python3 tools/make_demo_data.py > /tmp/data.log 2>&1
du -sh /tmp/torchinductor_root 2>/dev/null
OPTS="train_cfg.max_epochs=12 param_scheduler.1.end=12 param_scheduler.1.milestones=[9,11]"
echo "== 2 GPUs x 4, fast path, at $(el) s"
timeout $(( 455 - $(el) )) bash tools/dist_train.sh configs/demo/mask_rcnn_mlla_t_demo_gpu.py 2 --amp \
  --work-dir /tmp/wd_2gpu_b4 --cfg-options $OPTS model.backbone.attn_impl=fast train_dataloader.batch_size=4 > /tmp/2gpu_b4.out 2>&1
echo "exit $? at $(el) s"
grep -v -E 'jit.script_method|^ +warnings.warn' /tmp/2gpu_b4.out > $OUT/2gpu_b4.out; cp /tmp/wd_2gpu_b4/*/*.log $OUT/2gpu_b4.log 2>/dev/null
grep -E "Warn|rror|MLLA fast|\]\[25/25\]|\]\[13/13\]|\]\[7/7\]|bbox_mAP:" $OUT/2gpu_b4.out | cut -c1-200
echo "end at $(el) s"
