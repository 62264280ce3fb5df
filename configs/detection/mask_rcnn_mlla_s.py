# Mask R-CNN + FPN with an MLLA-S backbone, COCO, 12 epochs (1x) with multi-scale + crop training.
# MLLA-S has the widths of MLLA-T (64..512 channels) and deeper stages; weights at pretrained/MLLA_S.pth.
# Everything else is mask_rcnn_mlla_t.py.
_base_ = ['./mask_rcnn_mlla_t.py']

model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint='pretrained/MLLA_S.pth')))
