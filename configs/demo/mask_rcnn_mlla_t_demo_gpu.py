# GPU demo: the CPU demo's data and model family on a schedule a GPU can afford, with the full Mask R-CNN heads of
# the COCO config at the data's own 256 x 256: 36 epochs of 8 images per iteration, fp16-friendly (train with
# --amp), learning rate x0.1 after epochs 27 and 33.
#   python tools/make_demo_data.py && python tools/train.py configs/demo/mask_rcnn_mlla_t_demo_gpu.py --amp
# Its measured mAP and run time: docs/demo.md.
_base_ = ['./mask_rcnn_mlla_t_demo.py']

img_scale = (256, 256)
train_batch_size = 8
max_epochs = 36
val_interval = 6
lr = 4e-4
warmup_iters = 50
lr_milestones = [27, 33]
full_width = 256  # the COCO config's neck and head widths

model = dict(
    # The plain blocks, as measured: for a job of minutes the fast path's compile (minutes on a cold Inductor
    # cache) would cost about what it saves. 'fast' compiles at the first step; 'auto' would compile once its
    # first images have run uncompiled (fast_cfg compile_training_after), late in this job.
    backbone=dict(attn_impl='plain'),
    neck=dict(out_channels=full_width),
    rpn_head=dict(in_channels=full_width, feat_channels=full_width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=full_width),
        bbox_head=dict(in_channels=full_width, fc_out_channels=1024),
        mask_roi_extractor=dict(out_channels=full_width),
        mask_head=dict(num_convs=4, in_channels=full_width, conv_out_channels=full_width)),
    train_cfg=dict(rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(max_per_img=1000), rcnn=dict(max_per_img=100)))

train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=6,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=img_scale, keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]))
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(num_workers=4, dataset=dict(pipeline=_test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=lr_milestones, gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=lr))
default_hooks = dict(checkpoint=dict(interval=max_epochs // 3), logger=dict(interval=25))
