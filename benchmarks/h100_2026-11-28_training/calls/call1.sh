#!/usr/bin/env bash
# Session 11, device call 1 (nvidia-h100-x2, fresh): the GPU demo detection config trained on one GPU with the fast
# path (the GPU default, attn_impl='fast'), fp16 AMP, the 12-epoch schedule of the README's two-GPU rows. Beside
# it, on the second GPU and niced, the Inductor cache fills with UperNet's fast backbone (for call 3).
set -u
t0=$(date +%s)
el() { echo $(( $(date +%s) - t0 )); }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "import mmcv.ops" 2>/dev/null && echo "warm machine: mmcv present" || {
  python3 -m pip install -q --no-index --no-deps .gpu/wheels/*.whl .gpu/mmcv/*.whl > /tmp/setup.log 2>&1 || { cat /tmp/setup.log; exit 1; }
  echo "fresh machine: installed in $(el) s"; }
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cpus', __import__('os').cpu_count())"
(CUDA_VISIBLE_DEVICES=1 TORCHINDUCTOR_COMPILE_THREADS=8 nice -n 19 timeout 520 python3 benchmarks/scripts/warm_backbone.py \
   configs/segmentation/upernet_mlla_t.py --shape 512 512 --batch 8 --precision fp16 > $OUT/warm_upernet.log 2>&1;
 echo "warm upernet exit $? at $(el) s") &
python3 tools/make_demo_data.py > /tmp/data.log 2>&1 || { cat /tmp/data.log; exit 1; }
echo "demo data at $(el) s"
OPTS="train_cfg.max_epochs=12 param_scheduler.1.end=12 param_scheduler.1.milestones=[9,11]"
echo "== train 1 GPU x 8, fast path, at $(el) s"
CUDA_VISIBLE_DEVICES=0 timeout $(( 575 - $(el) )) python3 tools/train.py configs/demo/mask_rcnn_mlla_t_demo_gpu.py --amp \
  --work-dir /tmp/wd_1gpu --cfg-options $OPTS model.backbone.attn_impl=fast > /tmp/train_1gpu.out 2>&1
echo "train exit $? at $(el) s"
grep -v -E 'jit.script_method|^ +warnings.warn' /tmp/train_1gpu.out > $OUT/mask_rcnn_demo_gpu_12ep_1gpu_b8_fast.out
cp /tmp/wd_1gpu/*/*.log $OUT/mask_rcnn_demo_gpu_12ep_1gpu_b8_fast.log 2>/dev/null
grep -E "compiling|Warn|rror|\[25/25\]|bbox_mAP:" $OUT/mask_rcnn_demo_gpu_12ep_1gpu_b8_fast.out | cut -c1-230
wait
tail -c 400 $OUT/warm_upernet.log
