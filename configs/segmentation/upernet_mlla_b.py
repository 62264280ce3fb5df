# UperNet with an MLLA-B backbone, ADE20K 512 x 512, 160k iterations of 8 GPUs x 2 images, as the official
# MLLA-B UperNet model (stochastic depth 0.5, the rate of its ImageNet pre-training).
# ImageNet-1k MLLA-B weights expected at pretrained/MLLA_B.pth. Everything else is upernet_mlla_t.py.
_base_ = ['./upernet_mlla_t.py']

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5, init_cfg=dict(checkpoint='pretrained/MLLA_B.pth')),
    # MLLA-B stage widths are 96, 192, 384, 768; the auxiliary head reads stage 2
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
