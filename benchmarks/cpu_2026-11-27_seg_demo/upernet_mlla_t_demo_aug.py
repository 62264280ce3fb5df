# The CPU segmentation demo with the ADE20K config's training augmentation at the demo's 256 x 256 (random resize 0.5-2x,
# crop, flip, photometric distortion). An experiment recorded in README.md beside it, not a maintained config.
_base_ = ['../../configs/demo/upernet_mlla_t_demo.py']
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(256, 256), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
