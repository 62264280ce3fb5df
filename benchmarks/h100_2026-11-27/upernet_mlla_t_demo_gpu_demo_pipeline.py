# The GPU segmentation demo with the CPU demo's training pipeline (resize, flip) instead of ADE20K's augmentation:
# the config as it was at commit a39cd2c. An experiment recorded in README.md beside it, not a maintained config.
_base_ = ['../../configs/demo/upernet_mlla_t_demo_gpu.py']
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
