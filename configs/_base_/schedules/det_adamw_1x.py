# AdamW schedule of the MLLA / Swin detection recipe, 12 epochs ("1x"), for 16 images per iteration
# (8 GPUs x 2 images). Learning rate x0.1 after epochs 8 and 11, linear warm-up over the first 500 iterations.
max_epochs = 12
lr_milestones = [8, 11]
warmup_iters = 500

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_milestones, gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper',
    # mmengine's default constructor gives each parameter a group of its own (521 for Mask R-CNN with MLLA-T), and
    # AdamW then launches its kernels once per group; this one applies the same paramwise_cfg in two groups
    # (mlla_mm/engine/optim_constructor.py). fused=True: one AdamW kernel for many tensors (docs/speed.md).
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05, fused=True),
    # No weight decay on normalisation layers: every parameter whose name contains 'norm' (the MLLA block and
    # output LayerNorms, the BatchNorms of its stem and patch merging). The two Swin keys match nothing in MLLA
    # and are kept so that the wrapper also suits Swin-style backbones.
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))

# The learning rate above is for 16 images per iteration; `--auto-scale-lr` rescales it for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=16)
