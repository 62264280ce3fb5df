# UperNet with an MLLA-S backbone, ADE20K 512 x 512, 160k iterations of 8 GPUs x 2 images.
# ImageNet-1k MLLA-S weights expected at pretrained/MLLA_S.pth.
#
# Stochastic depth: the official MLLA UperNet-B keeps the rate that MLLA-B was pre-trained with on ImageNet
# (0.5), so S keeps its ImageNet rate as well: 0.3 (T: 0.2).
_base_ = [
    '../_base_/models/upernet_mlla.py',
    '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/seg_adamw_poly_160k.py',
    '../_base_/seg_runtime.py',
]

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_S.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
