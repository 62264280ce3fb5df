# AdamW + poly schedule of the MLLA / Swin UperNet recipe: 160k iterations of 16 images (8 GPUs x 2),
# 1500 iterations of linear warm-up, then a linear (power 1) decay to 0. Validation and checkpoints every 16k.
max_iters = 160000
warmup_iters = 1500
val_interval = 16000

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]

optim_wrapper = dict(
    type='OptimWrapper',
    # mmengine's default constructor gives each parameter a group of its own (522 for UperNet with MLLA-T), and
    # AdamW then launches its kernels once per group; this one applies the same paramwise_cfg in two groups
    # (mlla_mm/engine/optim_constructor.py). fused=True: one AdamW kernel for many tensors (docs/speed.md).
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01, fused=True),
    # no weight decay on parameters named '*norm*' (the MLLA LayerNorms and BatchNorms); the two Swin keys match
    # nothing in MLLA and only keep the wrapper usable with Swin-style backbones
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))

# `--auto-scale-lr` rescales the learning rate from this batch size to the one actually used
auto_scale_lr = dict(enable=False, base_batch_size=16)
