# GPU demo: the segmentation demo's data (256 x 256 synthetic shapes, ADE20K layout) on a schedule a GPU can afford,
# with the ADE20K config's full head widths (UPerHead 512, auxiliary FCN 256) and its training augmentation at the
# demo's size: 40 epochs of 8 images per iteration (1,000 iterations), fp16-friendly (train with --amp), linear decay
# of the learning rate to zero.
#   python tools/make_demo_data.py && python tools/train.py configs/demo/upernet_mlla_t_demo_gpu.py --amp
# The CPU demo's 4 epochs are far too short for a network trained from scratch (docs/demo.md).
_base_ = ['./upernet_mlla_t_demo.py']

train_batch_size = 8
max_epochs = 40
val_interval = 5
lr = 4e-4
warmup_iters = 50
decode_channels = 512  # the ADE20K config's widths
auxiliary_channels = 256

model = dict(
    # The plain blocks, as in the detection GPU demo: for a job of minutes the fast path's first-step compile
    # (minutes on a cold Inductor cache) would cost about what it saves.
    backbone=dict(attn_impl='plain'),
    decode_head=dict(channels=decode_channels),
    auxiliary_head=dict(channels=auxiliary_channels))

# ADE20K's augmentation (configs/_base_/datasets/ade20k_512x512.py) at 256 x 256. Why: on 200 training scenes the
# CPU demo's pipeline (resize and flip) lets the network learn its scenes rather than shapes (docs/demo.md).
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=train_batch_size, num_workers=6, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=4)
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=lr))
default_hooks = dict(checkpoint=dict(interval=val_interval), logger=dict(interval=25))
