# CPU demo: Mask R-CNN + FPN with an MLLA-T backbone, trained from scratch in under 10 minutes on 2 CPU cores on a
# small synthetic COCO-format set (256 x 256 images of three shape classes, trained and tested at 192 x 192).
# The backbone is the full MLLA-T; the detector's neck and heads are slimmer than the COCO config's (128 FPN
# channels, a 512-wide box head, a 2-conv mask head, 64 sampled RoIs): on a CPU they, not the backbone, took most of
# each iteration (3.9 s -> 1.4 s per iteration of 4 images), and three shape classes need no more. No ImageNet
# checkpoint and no multi-scale / crop augmentation. On a GPU, train longer (see README).
#
# Data layout (data/demo/coco/): train/*, val/*, annotations/instances_{train,val}.json.
# Everything worth tuning is a variable in the next block.
_base_ = ['../detection/mask_rcnn_mlla_t.py']

# ---------------------------------------------------------------- demo settings
data_root = 'data/demo/coco/'
demo_classes = ('square', 'circle', 'triangle')
img_scale = (192, 192)
train_batch_size = 4
val_batch_size = 4
num_workers = 1
# Sized for a 2-core CPU: 5 epochs of the 200-image set with validation after each (run times: docs/demo.md).
max_epochs = 5
val_interval = 1  # epochs between validations
lr = 8e-4  # high for AdamW, with gradient clipping and warm-up: the demo has ~300 iterations to learn in
weight_decay = 0.05
warmup_iters = 30
lr_milestones = [4]  # epochs after which the learning rate drops x0.1
drop_path_rate = 0.0  # no stochastic depth: the demo is too short to need the regularisation
neck_channels = 128
box_fc_channels = 512
mask_convs = 2
roi_samples_per_img = 64  # RoIs sampled per image for the box/mask heads (512 in the COCO config)

# ---------------------------------------------------------------- model
model = dict(
    backbone=dict(drop_path_rate=drop_path_rate, init_cfg=None),  # random initialisation, no checkpoint
    neck=dict(out_channels=neck_channels),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=box_fc_channels, num_classes=len(demo_classes)),
        mask_roi_extractor=dict(out_channels=neck_channels),
        mask_head=dict(num_convs=mask_convs, in_channels=neck_channels, conv_out_channels=neck_channels,
                       num_classes=len(demo_classes))),
    train_cfg=dict(rcnn=dict(sampler=dict(num=roi_samples_per_img))),
    # at most 6 objects per image: fewer proposals and detections make validation faster
    test_cfg=dict(rpn=dict(max_per_img=300), rcnn=dict(max_per_img=30)))

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
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    # `test.py --show-dir DIR` turns drawing on and writes the drawn predictions under DIR
    visualization=dict(type='DetVisualizationHook', draw=False))
visualizer = dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
log_processor = dict(window_size=10)
