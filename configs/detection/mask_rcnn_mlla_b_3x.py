# Mask R-CNN + FPN with an MLLA-B backbone, COCO, 36 epochs (3x) with multi-scale + crop training.
# There is no official MLLA-B 3x model; the stochastic depth follows the T and S rule for the long schedule
# (0.1 for 1x, 0.3 for 3x).
_base_ = [
    '../_base_/models/mask_rcnn_mlla_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x.py',
    '../_base_/det_runtime.py',
]

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_B.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
