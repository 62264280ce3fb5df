#!/usr/bin/env bash
# Session 11, device call 2 (the same nvidia-h100-x2, warm: Inductor cache holds call 1's training graphs): the fast-path
# demo detection training again on one GPU x 8 (call 1 ran out of time compiling the inference graphs for its first
# validation), then on two GPUs x 4 with tools/dist_train.sh, same 12-epoch schedule, fp16 AMP.
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed in $(el) s"; }
[ -f data/demo/coco/annotations/instances_val.json ] || python3 tools/make_demo_data.py > /tmp/data.log 2>&1
du -sh /tmp/torchinductor_root 2>/dev/null
OPTS="train_cfg.max_epochs=12 param_scheduler.1.end=12 param_scheduler.1.milestones=[9,11]"
keep() { grep -v -E 'jit.script_method|^ +warnings.warn' /tmp/$1.out > $OUT/$1.out; cp /tmp/wd_$1/*/*.log $OUT/$1.log 2>/dev/null
  grep -E "Warn|rror|\]\[25/25\]|\]\[13/13\]|bbox_mAP:" $OUT/$1.out | cut -c1-200; }
echo "== 1 GPU x 8, fast path, at $(el) s"
CUDA_VISIBLE_DEVICES=0 timeout 330 python3 tools/train.py configs/demo/mask_rcnn_mlla_t_demo_gpu.py --amp \
  --work-dir /tmp/wd_1gpu_b8 --cfg-options $OPTS model.backbone.attn_impl=fast > /tmp/1gpu_b8.out 2>&1
echo "exit $? at $(el) s"; keep 1gpu_b8
echo "== 2 GPUs x 4, fast path, at $(el) s"
timeout $(( 585 - $(el) )) bash tools/dist_train.sh configs/demo/mask_rcnn_mlla_t_demo_gpu.py 2 --amp \
  --work-dir /tmp/wd_2gpu_b4 --cfg-options $OPTS model.backbone.attn_impl=fast train_dataloader.batch_size=4 > /tmp/2gpu_b4.out 2>&1
echo "exit $? at $(el) s"; keep 2gpu_b4
