# The AdamW detection schedule stretched to 36 epochs ("3x"): learning rate x0.1 after epochs 27 and 33.
# Optimizer, warm-up and batch-size settings are those of det_adamw_1x.py.
_base_ = ['./det_adamw_1x.py']

max_epochs = 36
lr_milestones = [27, 33]

train_cfg = dict(max_epochs=max_epochs)
# a list is replaced as a whole on inheritance, so both schedulers are restated
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end={{_base_.warmup_iters}}),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_milestones, gamma=0.1),
]
