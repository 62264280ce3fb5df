# CPU demo: UperNet with an MLLA-T backbone trained from scratch on a small synthetic ADE20K-layout set of
# 256 x 256 images with three shape classes. Same model family and optimizer as
# configs/segmentation/upernet_mlla_t.py, without the ImageNet checkpoint and the scale / crop / colour
# augmentation, with slimmer heads (plain BN, fewer channels) and an epoch-based schedule.
#
# Data layout (data/demo/ade/): images/{training,validation}/*<img_suffix>, annotations/{training,validation}/
# *.png with 0 = background / ignore and 1..3 = the classes (reduce_zero_label maps them to 0..2, 0 to 255).
# Everything worth tuning is a variable in the next block.
_base_ = ['../segmentation/upernet_mlla_t.py']

# ---------------------------------------------------------------- demo settings
data_root = 'data/demo/ade/'
demo_classes = ('square', 'circle', 'triangle')
img_suffix = '.jpg'
seg_map_suffix = '.png'
img_scale = (256, 256)
train_batch_size = 4
val_batch_size = 4
num_workers = 1
# Budget: on 2 CPU cores one iteration of 4 images takes ~2.7 s, ~2.3 minutes an epoch of 200 images.
max_epochs = 4
val_interval = 1  # epochs between validations
lr = 2e-4
weight_decay = 0.01
warmup_iters = 50
drop_path_rate = 0.0  # no stochastic depth: the demo is too short to need the regularisation
decode_channels = 128  # UPerHead width (512 in the ADE20K config); the full width is slow on a CPU
auxiliary_channels = 64  # FCN auxiliary head width (256 in the ADE20K config)

# ---------------------------------------------------------------- model
model = dict(
    data_preprocessor=dict(size=img_scale),
    backbone=dict(drop_path_rate=drop_path_rate, init_cfg=None),  # random initialisation, no checkpoint
    decode_head=dict(
        channels=decode_channels, num_classes=len(demo_classes), norm_cfg=dict(type='BN', requires_grad=True)),
    auxiliary_head=dict(
        channels=auxiliary_channels, num_classes=len(demo_classes),
        norm_cfg=dict(type='BN', requires_grad=True)))

# ---------------------------------------------------------------- data
demo_metainfo = dict(classes=demo_classes, palette=[[220, 20, 60], [30, 144, 255], [50, 205, 50]])
demo_dataset = dict(
    type='BaseSegDataset',  # ADE20KDataset would only accept subsets of the 150 ADE20K classes
    data_root=data_root,
    metainfo=demo_metainfo,
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    reduce_zero_label=True)
# LoadAnnotations takes reduce_zero_label from the dataset
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),  # epochs instead of the infinite sampler
    dataset=dict(
        **demo_dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=val_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    dataset=dict(
        **demo_dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# ---------------------------------------------------------------- schedule
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    # linear decay to 0 over the whole run, stepped every iteration
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=weight_decay))

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=True),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=2),
    # `test.py --show-dir DIR` turns drawing on and writes the drawn predictions under DIR; interval 1 draws
    # every test batch (mmseg's default of 50 would skip the whole small validation set)
    visualization=dict(type='SegVisualizationHook', draw=False, interval=1))
visualizer = dict(type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
log_processor = dict(by_epoch=True, window_size=10)
