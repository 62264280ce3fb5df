# Mask R-CNN + FPN with an MLLA-B backbone, COCO, 12 epochs (1x) with multi-scale + crop training.
# MLLA-B is 1.5x wider than MLLA-S (96..768 channels, so the FPN reads those); weights at pretrained/MLLA_B.pth.
# Everything else is mask_rcnn_mlla_t.py.
_base_ = ['./mask_rcnn_mlla_t.py']

model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint='pretrained/MLLA_B.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
