# CPU demo: Mask R-CNN + FPN with an MLLA-T backbone trained from scratch on a small synthetic COCO-format set of
# 256 x 256 images with three shape classes. Same model and optimizer as configs/detection/mask_rcnn_mlla_t.py,
# without the ImageNet checkpoint and the multi-scale / crop augmentation, on a short schedule.
#
# Data layout (data/demo/coco/): train/*, val/*, annotations/instances_{train,val}.json.
# Everything worth tuning is a variable in the next block.
_base_ = ['../detection/mask_rcnn_mlla_t.py']

# ---------------------------------------------------------------- demo settings
data_root = 'data/demo/coco/'
demo_classes = ('square', 'circle', 'triangle')
img_scale = (256, 256)
train_batch_size = 4
val_batch_size = 4
num_workers = 1
# Budget: on 2 CPU cores one iteration of 4 images takes ~4 s, so an epoch of the default 200-image set is
# ~3.5 minutes; 3 epochs (~150 iterations) plus validation is about the 10-minute target.
max_epochs = 3
val_interval = 1  # epochs between validations
lr = 3e-4
weight_decay = 0.05
warmup_iters = 50
lr_milestones = [2]  # epochs after which the learning rate drops x0.1
drop_path_rate = 0.0  # no stochastic depth: the demo is too short to need the regularisation
# RoIs sampled per image for the box/mask heads (512 in the COCO config). The synthetic images hold a few objects
# each, so 128 still gives up to 32 positives; on a CPU it makes an iteration ~1.7x faster (RoIAlign, FC heads).
roi_samples_per_img = 128

# ---------------------------------------------------------------- model
model = dict(
    backbone=dict(drop_path_rate=drop_path_rate, init_cfg=None),  # random initialisation, no checkpoint
    roi_head=dict(
        bbox_head=dict(num_classes=len(demo_classes)),
        mask_head=dict(num_classes=len(demo_classes))),
    train_cfg=dict(rcnn=dict(sampler=dict(num=roi_samples_per_img))))

# ---------------------------------------------------------------- data
demo_metainfo = dict(classes=demo_classes, palette=[(220, 20, 60), (30, 144, 255), (50, 205, 50)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=demo_metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=val_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=demo_metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

# ---------------------------------------------------------------- schedule
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_milestones, gamma=0.1),
]
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=weight_decay),
    clip_grad=dict(max_norm=10.0, norm_type=2))  # keeps the first from-scratch iterations stable

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2),
    # `test.py --show-dir DIR` turns drawing on and writes the drawn predictions under DIR
    visualization=dict(type='DetVisualizationHook', draw=False))
visualizer = dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
log_processor = dict(window_size=10)
