# Mask R-CNN + FPN with an MLLA-B backbone, COCO, 36 epochs (3x) with multi-scale + crop training.
# There is no official MLLA-B 3x model; the stochastic depth follows the T and S rule for the long schedule
# (0.1 for 1x, 0.3 for 3x). Everything else is mask_rcnn_mlla_t_3x.py.
_base_ = ['./mask_rcnn_mlla_t_3x.py']

model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint='pretrained/MLLA_B.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
