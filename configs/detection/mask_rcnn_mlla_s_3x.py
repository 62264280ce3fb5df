# Mask R-CNN + FPN with an MLLA-S backbone, COCO, 36 epochs (3x) with multi-scale + crop training.
# Stochastic depth 0.3 for the long schedule, as in the official MLLA-S 3x model.
_base_ = [
    '../_base_/models/mask_rcnn_mlla_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x.py',
    '../_base_/det_runtime.py',
]

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_S.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
