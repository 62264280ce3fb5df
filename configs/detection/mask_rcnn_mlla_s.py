# Mask R-CNN + FPN with an MLLA-S backbone, COCO, 12 epochs (1x) with multi-scale + crop training.
# MLLA-S has the widths of MLLA-T (64..512 channels) and deeper stages; weights at pretrained/MLLA_S.pth.
_base_ = [
    '../_base_/models/mask_rcnn_mlla_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_1x.py',
    '../_base_/det_runtime.py',
]

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_S.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
