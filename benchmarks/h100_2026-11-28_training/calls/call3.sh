#!/usr/bin/env bash
# Session 11, device call 3 (the same machine, warm): the two-GPU fast-path run again. In call 2 it was still compiling
# after 293 s: batch 4 is a new graph for Dynamo (at batch 8 the batch and the 8 x 8 tiles of a 256 x 256 image share
# one size symbol), so the Inductor cache held only the kernels it finished then.
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || echo "fresh machine"
OPTS="train_cfg.max_epochs=12 param_scheduler.1.end=12 param_scheduler.1.milestones=[9,11]"
echo "== 2 GPUs x 4, fast path, at $(el) s"
timeout 520 bash tools/dist_train.sh configs/demo/mask_rcnn_mlla_t_demo_gpu.py 2 --amp \
  --work-dir /tmp/wd_2gpu_b4 --cfg-options $OPTS model.backbone.attn_impl=fast train_dataloader.batch_size=4 > /tmp/2gpu_b4.out 2>&1
echo "exit $? at $(el) s"
grep -v -E 'jit.script_method|^ +warnings.warn' /tmp/2gpu_b4.out > $OUT/2gpu_b4.out; cp /tmp/wd_2gpu_b4/*/*.log $OUT/ 2>/dev/null
grep -E "Warn|rror|\]\[25/25\]|\]\[13/13\]|\]\[7/7\]|bbox_mAP:" $OUT/2gpu_b4.out | cut -c1-200
