# Mask R-CNN + FPN with an MLLA-T backbone, COCO, 12 epochs (1x) with multi-scale + crop training.
# 8 GPUs x 2 images; ImageNet-1k MLLA-T weights expected at pretrained/MLLA_T.pth.
_base_ = [
    '../_base_/models/mask_rcnn_mlla_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_1x.py',
    '../_base_/det_runtime.py',
]

model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_T.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
