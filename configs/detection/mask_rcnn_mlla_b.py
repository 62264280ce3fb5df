# Mask R-CNN + FPN with an MLLA-B backbone, COCO, 12 epochs (1x) with multi-scale + crop training.
# MLLA-B is 1.5x wider than MLLA-S (96..768 channels); weights at pretrained/MLLA_B.pth.
_base_ = [
    '../_base_/models/mask_rcnn_mlla_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_1x.py',
    '../_base_/det_runtime.py',
]

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_B.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
