# Mask R-CNN + FPN with an MLLA-T backbone, COCO, 36 epochs (3x) with multi-scale + crop training.
# The longer schedule uses stronger stochastic depth (0.3 instead of 0.1), as the official MLLA-T 3x model.
_base_ = [
    '../_base_/models/mask_rcnn_mlla_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x.py',
    '../_base_/det_runtime.py',
]

model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_T.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
