# UperNet with an MLLA-S backbone, ADE20K 512 x 512, 160k iterations of 8 GPUs x 2 images.
# ImageNet-1k MLLA-S weights expected at pretrained/MLLA_S.pth. Everything else is upernet_mlla_t.py.
#
# Stochastic depth: the official MLLA UperNet-B keeps the rate that MLLA-B was pre-trained with on ImageNet
# (0.5), so S keeps its ImageNet rate as well: 0.3 (T: 0.2).
_base_ = ['./upernet_mlla_t.py']

model = dict(backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(checkpoint='pretrained/MLLA_S.pth')))
