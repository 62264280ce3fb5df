# UperNet (UPerHead on all four stages) with an FCN auxiliary head on stage 2, on the MLLA backbone (MLLA-T by
# default). The heads normalise with SyncBN, as trained on 8 GPUs; single-process tools convert it to BN.
# They are mmseg's UPerHead and FCNHead with their training-time bilinear resizes as matrix products
# (mlla_mm/models/decode_heads/): same parameters and losses, a faster backward; type='UPerHead' / 'FCNHead' give
# mmseg's own.
custom_imports = dict(imports=['mlla_mm'], allow_failed_imports=False)

head_norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size=(512, 512),  # training batches are padded to the 512 x 512 crop size
        pad_val=0,
        seg_pad_val=255),
    backbone=dict(
        type='MLLA',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False,
        # every training batch is padded to the 512 x 512 crop: on a GPU, the backbone's uncompiled train step is
        # captured once as a CUDA graph and replayed (docs/fast_path.md)
        fast_cfg=dict(uncompiled_graphs=1)),  # no init_cfg: random initialisation unless a config adds one
    decode_head=dict(
        type='MatmulResizeUPerHead',
        in_channels=[64, 128, 256, 512],  # MLLA stage widths: C..8C, C = 64 (tiny, small) or 96 (base)
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=head_norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='MatmulResizeFCNHead',
        in_channels=256,  # stage 2 width: 4C
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=head_norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
