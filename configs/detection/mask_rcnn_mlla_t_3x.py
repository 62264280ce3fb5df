# Mask R-CNN + FPN with an MLLA-T backbone, COCO, 36 epochs (3x) with multi-scale + crop training.
# The longer schedule uses stronger stochastic depth (0.3 instead of 0.1), as the official MLLA-T 3x model.
# Everything else is mask_rcnn_mlla_t.py.
_base_ = ['./mask_rcnn_mlla_t.py']

model = dict(backbone=dict(drop_path_rate=0.3))

# det_adamw_1x.py stretched to 36 epochs: learning rate x0.1 after epochs 27 and 33
max_epochs = 36
lr_milestones = [27, 33]
train_cfg = dict(max_epochs=max_epochs)
# a list is replaced as a whole on inheritance, so both schedulers are restated
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end={{_base_.warmup_iters}}),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_milestones, gamma=0.1),
]
