# Mask R-CNN + FPN with an MLLA-S backbone, COCO, 36 epochs (3x) with multi-scale + crop training.
# Stochastic depth 0.3 for the long schedule, as in the official MLLA-S 3x model.
# Everything else is mask_rcnn_mlla_t_3x.py.
_base_ = ['./mask_rcnn_mlla_t_3x.py']

model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint='pretrained/MLLA_S.pth')))
