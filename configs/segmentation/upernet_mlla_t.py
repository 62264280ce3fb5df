# UperNet with an MLLA-T backbone, ADE20K 512 x 512, 160k iterations of 8 GPUs x 2 images.
# ImageNet-1k MLLA-T weights expected at pretrained/MLLA_T.pth.
#
# Stochastic depth: the official MLLA UperNet-B keeps the rate that MLLA-B was pre-trained with on ImageNet
# (0.5), so T and S keep theirs too: 0.2 for MLLA-T (and 0.3 for MLLA-S).
_base_ = [
    '../_base_/models/upernet_mlla.py',
    '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/seg_adamw_poly_160k.py',
    '../_base_/seg_runtime.py',
]

model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/MLLA_T.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
