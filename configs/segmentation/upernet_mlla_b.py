# UperNet with an MLLA-B backbone, ADE20K 512 x 512, 160k iterations of 8 GPUs x 2 images, as the official
# MLLA-B UperNet model (stochastic depth 0.5, the rate of its ImageNet pre-training).
# ImageNet-1k MLLA-B weights expected at pretrained/MLLA_B.pth.
_base_ = [
    '../_base_/models/upernet_mlla.py',
    '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/seg_adamw_poly_160k.py',
    '../_base_/seg_runtime.py',
]

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_B.pth')),
    # MLLA-B stage widths are 96, 192, 384, 768; the auxiliary head reads stage 2
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
