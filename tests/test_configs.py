"""The configs under configs/: they load, build through the mmdet / mmseg registries, have the paper's model sizes
and training recipes, and the MLLA-T models train (finite losses and gradients) on tiny CPU batches.

Parameter counts are the sum of ``p.numel()`` over the built model, in millions rounded to 0.1M.
"""
import json
import math
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope

import mlla_mm
from mlla_mm.apis import build_model

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'

# config -> what it must build: task, MLLA arch, parameters (M), stochastic depth, checkpoint
DETECTION = {
    'detection/mask_rcnn_mlla_t.py': dict(arch='tiny', params=44.0, drop_path=0.1, ckpt='pretrained/MLLA_T.pth'),
    'detection/mask_rcnn_mlla_s.py': dict(arch='small', params=62.7, drop_path=0.1, ckpt='pretrained/MLLA_S.pth'),
    'detection/mask_rcnn_mlla_b.py': dict(arch='base', params=115.5, drop_path=0.1, ckpt='pretrained/MLLA_B.pth'),
    'detection/mask_rcnn_mlla_t_3x.py': dict(arch='tiny', params=44.0, drop_path=0.3, ckpt='pretrained/MLLA_T.pth'),
    'detection/mask_rcnn_mlla_s_3x.py': dict(arch='small', params=62.7, drop_path=0.3, ckpt='pretrained/MLLA_S.pth'),
    'detection/mask_rcnn_mlla_b_3x.py': dict(arch='base', params=115.5, drop_path=0.3, ckpt='pretrained/MLLA_B.pth'),
}
SEGMENTATION = {
    'segmentation/upernet_mlla_t.py': dict(arch='tiny', params=54.2, drop_path=0.2, ckpt='pretrained/MLLA_T.pth'),
    'segmentation/upernet_mlla_s.py': dict(arch='small', params=72.8, drop_path=0.3, ckpt='pretrained/MLLA_S.pth'),
    'segmentation/upernet_mlla_b.py': dict(arch='base', params=127.6, drop_path=0.5, ckpt='pretrained/MLLA_B.pth'),
}
DEMO = {
    # 3 classes instead of 80 (detection), slimmer heads (segmentation)
    'demo/mask_rcnn_mlla_t_demo.py': dict(arch='tiny', params=28.6, drop_path=0.0, ckpt=None),  # slim CPU heads
    'demo/mask_rcnn_mlla_t_demo_gpu.py': dict(arch='tiny', params=43.6, drop_path=0.0, ckpt=None),  # full heads
    'demo/upernet_mlla_t_demo.py': dict(arch='tiny', params=26.6, drop_path=0.0, ckpt=None),
    # the ADE20K config's head widths, 3 classes instead of 150
    'demo/upernet_mlla_t_demo_gpu.py': dict(arch='tiny', params=54.1, drop_path=0.0, ckpt=None),
}
ALL = {**DETECTION, **SEGMENTATION, **DEMO}
STAGE_WIDTHS = {'tiny': [64, 128, 256, 512], 'small': [64, 128, 256, 512], 'base': [96, 192, 384, 768]}
DEMO_CLASSES = ('square', 'circle', 'triangle')


def load(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / name))


def millions(model) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 1)


def types(pipeline):
    return [step['type'] for step in pipeline]


# ---------------------------------------------------------------------------------------------- every config
def test_every_config_is_covered():
    found = {p.relative_to(CONFIGS).as_posix() for sub in ('detection', 'segmentation', 'demo')
             for p in (CONFIGS / sub).glob('*.py')}
    assert found == set(ALL)


@pytest.mark.parametrize('name', sorted(ALL))
def test_config_builds_with_expected_size(name):
    cfg = load(name)
    expected = ALL[name]
    assert cfg.custom_imports == dict(imports=['mlla_mm'], allow_failed_imports=False)
    assert cfg.default_scope == ('mmseg' if 'upernet' in name else 'mmdet')
    # only the repository's own bases: no `mmdet::` / `mmseg::` package bases
    for path in [CONFIGS / name] + sorted((CONFIGS / '_base_').rglob('*.py')):
        assert '::' not in path.read_text(), path

    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.type == 'MLLA' and backbone_cfg.arch == expected['arch']
    assert backbone_cfg.drop_path_rate == expected['drop_path']
    if expected['ckpt'] is None:
        assert backbone_cfg.get('init_cfg') is None
    else:
        assert backbone_cfg.init_cfg == dict(type='Pretrained', checkpoint=expected['ckpt'])

    model = build_model(cfg)  # weights are not initialised: no checkpoint is read
    assert isinstance(model.backbone, mlla_mm.MLLA)
    assert model.backbone.num_features == STAGE_WIDTHS[expected['arch']]
    assert model.backbone.out_indices == (0, 1, 2, 3)
    # segmentation trains on batches of one size: its uncompiled train steps are replayed as CUDA graphs
    assert model.backbone.fast_cfg['uncompiled_graphs'] == (1 if 'upernet' in name else 0)
    print(f'{name}: {millions(model)}M parameters')
    assert millions(model) == expected['params']


def _flat(node, prefix=''):
    """{'a.b.0.c': value} for every leaf of a config dict (lists are indexed)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return {prefix: node}
    flat = {}
    for key, value in items:
        flat.update(_flat(value, f'{prefix}.{key}' if prefix else str(key)))
    return flat


SCHEDULE_3X = {'max_epochs', 'lr_milestones.0', 'lr_milestones.1', 'train_cfg.max_epochs', 'param_scheduler.1.end',
               'param_scheduler.1.milestones.0', 'param_scheduler.1.milestones.1'}
CHECKPOINT = {'model.backbone.arch', 'model.backbone.init_cfg.checkpoint'}
WIDTHS_B_DET = {f'model.neck.in_channels.{i}' for i in range(4)}
WIDTHS_B_SEG = {f'model.decode_head.in_channels.{i}' for i in range(4)} | {'model.auxiliary_head.in_channels'}
# config -> (the config it inherits from, the keys in which the two merged configs differ)
INHERITED = {
    'detection/mask_rcnn_mlla_s.py': ('mask_rcnn_mlla_t.py', CHECKPOINT),
    'detection/mask_rcnn_mlla_b.py': ('mask_rcnn_mlla_t.py', CHECKPOINT | WIDTHS_B_DET),
    'detection/mask_rcnn_mlla_t_3x.py': ('mask_rcnn_mlla_t.py', SCHEDULE_3X | {'model.backbone.drop_path_rate'}),
    'detection/mask_rcnn_mlla_s_3x.py': ('mask_rcnn_mlla_t_3x.py', CHECKPOINT),
    'detection/mask_rcnn_mlla_b_3x.py': ('mask_rcnn_mlla_t_3x.py', CHECKPOINT | WIDTHS_B_DET),
    'segmentation/upernet_mlla_s.py': ('upernet_mlla_t.py', CHECKPOINT | {'model.backbone.drop_path_rate'}),
    'segmentation/upernet_mlla_b.py': ('upernet_mlla_t.py',
                                       CHECKPOINT | {'model.backbone.drop_path_rate'} | WIDTHS_B_SEG),
}


@pytest.mark.parametrize('name', sorted(INHERITED))
def test_s_b_and_3x_configs_inherit_t_and_differ_only_where_they_say(name):
    """S, B and 3x configs state only what differs from the T config they inherit, and nothing else changes."""
    parent, differing = INHERITED[name]
    assert Config._get_base_files(str(CONFIGS / name)) == [f'./{parent}']
    child_cfg = _flat(load(name)._cfg_dict.to_dict())
    parent_cfg = _flat(load(osp.join(osp.dirname(name), parent))._cfg_dict.to_dict())
    assert set(child_cfg) == set(parent_cfg)
    assert {key for key in child_cfg if child_cfg[key] != parent_cfg[key]} == differing


# ---------------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize('name', sorted(DETECTION))
def test_detection_recipe(name):
    cfg = load(name)
    arch = DETECTION[name]['arch']
    three_x = name.endswith('_3x.py')
    assert cfg.model.type == 'MaskRCNN'
    assert cfg.model.neck.type == 'FPN' and cfg.model.neck.in_channels == STAGE_WIDTHS[arch]
    assert cfg.model.roi_head.bbox_head.num_classes == 80 and cfg.model.roi_head.mask_head.num_classes == 80

    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper' and optim.constructor == 'GroupedOptimWrapperConstructor'
    assert optim.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05, fused=True)
    keys = optim.paramwise_cfg.custom_keys
    assert keys['norm'] == dict(decay_mult=0.)
    assert keys['absolute_pos_embed'] == dict(decay_mult=0.)
    assert keys['relative_position_bias_table'] == dict(decay_mult=0.)

    epochs, milestones = (36, [27, 33]) if three_x else (12, [8, 11])
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == epochs
    warmup, steps = cfg.param_scheduler
    assert warmup == dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500)
    assert steps.type == 'MultiStepLR' and steps.by_epoch and steps.milestones == milestones
    assert steps.gamma == 0.1 and steps.begin == 0 and steps.end == epochs

    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)

    data = cfg.train_dataloader.dataset
    assert data.type == 'CocoDataset' and data.data_root == 'data/coco/'
    assert data.ann_file == 'annotations/instances_train2017.json' and data.data_prefix.img == 'train2017/'
    val = cfg.val_dataloader.dataset
    assert val.ann_file == 'annotations/instances_val2017.json' and val.data_prefix.img == 'val2017/'
    assert cfg.val_evaluator.type == 'CocoMetric' and list(cfg.val_evaluator.metric) == ['bbox', 'segm']
    assert cfg.val_evaluator.ann_file == 'data/coco/annotations/instances_val2017.json'

    # the multi-scale + crop augmentation
    pipeline = data.pipeline
    assert types(pipeline) == ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip', 'RandomChoice',
                               'PackDetInputs']
    assert pipeline[1].with_mask and pipeline[2].prob == 0.5
    multiscale = [(1333, s) for s in range(480, 801, 32)]
    resize_only, resize_crop_resize = pipeline[3].transforms
    assert types(resize_only) == ['RandomChoiceResize']
    assert [tuple(s) for s in resize_only[0].scales] == multiscale and resize_only[0].keep_ratio
    assert types(resize_crop_resize) == ['RandomChoiceResize', 'RandomCrop', 'RandomChoiceResize']
    first, crop, last = resize_crop_resize
    assert [tuple(s) for s in first.scales] == [(1333, 400), (1333, 500), (1333, 600)] and first.keep_ratio
    assert crop.crop_type == 'absolute_range' and tuple(crop.crop_size) == (384, 600) and crop.allow_negative_crop
    assert [tuple(s) for s in last.scales] == multiscale and last.keep_ratio


def test_detection_train_pipeline_runs(tmp_path):
    """The recipe's augmentation on a real 480 x 640 image: flipped, rescaled to one of the listed sizes."""
    from mmcv.transforms import Compose
    init_default_scope('mmdet')
    cfg = load('detection/mask_rcnn_mlla_t.py')
    pipeline = Compose(cfg.train_pipeline)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'image.jpg'), image)
    polygon = [[100., 100., 300., 100., 300., 250., 100., 250.]]
    shorter_sides = set()
    for seed in range(12):
        np.random.seed(seed)
        out = pipeline(dict(
            img_path=str(tmp_path / 'image.jpg'), img_id=0, height=480, width=640,
            instances=[dict(bbox=[100., 100., 300., 250.], bbox_label=3, mask=polygon, ignore_flag=0)]))
        h, w = out['inputs'].shape[1:]
        sample = out['data_samples']
        assert sample.img_shape == (h, w)
        if len(sample.gt_instances):  # a crop may lose the box (allow_negative_crop)
            assert sample.gt_instances.labels.tolist() == [3]
            box = sample.gt_instances.bboxes.tensor[0]
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
        # keep_ratio resizes bring the shorter side to one of 480..800 unless the longer side hits 1333
        assert min(h, w) in range(480, 801, 32) or max(h, w) == 1333
        shorter_sides.add(min(h, w))
    assert len(shorter_sides) > 1  # the scale is drawn at random


def test_norm_parameters_get_no_weight_decay():
    """Through the config's optimizer constructor: every norm parameter has weight decay 0, the rest 0.05."""
    from mmengine.optim import build_optim_wrapper
    cfg = load('detection/mask_rcnn_mlla_t.py')
    model = build_model(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay_of[id(param)] = group['weight_decay']
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(decay_of) == len(names)
    no_decay = {n for n, p in model.named_parameters() if decay_of[id(p)] == 0}
    assert no_decay == {n for n in names if 'norm' in n}
    # all LayerNorms of the MLLA blocks and outputs, the BatchNorms of its stem and patch merging
    norm_modules = [m for m in model.backbone.modules()
                    if isinstance(m, (torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm))]
    assert norm_modules and all(decay_of[id(p)] == 0 for m in norm_modules for p in m.parameters())
    assert decay_of[id(model.backbone.layers[0].blocks[0].in_proj.weight)] == 0.05
    assert decay_of[id(model.roi_head.bbox_head.fc_cls.weight)] == 0.05
    assert wrapper.optimizer.defaults['lr'] == 1e-4


def fake_detection_batch():
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(0)
    h, w = 160, 224
    inputs, samples = [], []
    for i, (boxes, labels) in enumerate([([[20, 30, 120, 110], [130, 40, 210, 150]], [0, 5]),
                                         ([[40, 20, 180, 140]], [17])]):
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
        for mask, (x1, y1, x2, y2), label in zip(masks, boxes, labels):
            mask[y1:y2, x1 + 5:x2 - 5] = 1
            image[:, y1:y2, x1 + 5:x2 - 5] = 10 * label  # a flat patch where the object is
        sample = DetDataSample(metainfo=dict(img_id=i, img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor(labels),
            masks=BitmapMasks(masks, h, w))
        inputs.append(image)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def assert_finite_losses_and_gradients(model, losses, expected_keys):
    assert expected_keys <= set(losses)
    total, log_vars = model.parse_losses(losses)
    for key in expected_keys:
        value = float(torch.as_tensor(log_vars[key]).detach())
        assert math.isfinite(value) and value >= 0, (key, value)
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert len(grads) == sum(1 for _ in model.backbone.parameters())  # every backbone parameter is trained
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_mask_rcnn_t_loss_on_cpu():
    torch.manual_seed(0)
    model = build_model(load('detection/mask_rcnn_mlla_t.py'))
    model.train()
    data = model.data_preprocessor(fake_detection_batch(), training=True)
    assert tuple(data['inputs'].shape) == (2, 3, 160, 224)  # already multiples of 32: no padding
    losses = model(**data, mode='loss')
    assert_finite_losses_and_gradients(
        model, losses, {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'})


# ---------------------------------------------------------------------------------------------- segmentation
@pytest.mark.parametrize('name', sorted(SEGMENTATION))
def test_segmentation_recipe(name):
    cfg = load(name)
    arch = SEGMENTATION[name]['arch']
    widths = STAGE_WIDTHS[arch]
    model = cfg.model
    assert model.type == 'EncoderDecoder' and model.test_cfg.mode == 'whole'
    assert tuple(model.data_preprocessor['size']) == (512, 512)
    head, aux = model.decode_head, model.auxiliary_head
    assert head.type == 'MatmulResizeUPerHead' and head.in_channels == widths and head.in_index == [0, 1, 2, 3]
    assert head.channels == 512 and tuple(head.pool_scales) == (1, 2, 3, 6) and head.num_classes == 150
    assert head.loss_decode.loss_weight == 1.0
    assert aux.type == 'MatmulResizeFCNHead' and aux.in_index == 2
    assert aux.in_channels == widths[2] == (384 if arch == 'base' else 256)
    assert aux.num_classes == 150 and aux.loss_decode.loss_weight == 0.4
    assert head.norm_cfg.type == aux.norm_cfg.type == 'SyncBN'

    optim = cfg.optim_wrapper
    assert optim.constructor == 'GroupedOptimWrapperConstructor'
    assert optim.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01, fused=True)
    assert optim.paramwise_cfg.custom_keys['norm'] == dict(decay_mult=0.)
    warmup, poly = cfg.param_scheduler
    assert warmup == dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500)
    assert poly == dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000)
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
    assert cfg.default_hooks.checkpoint == dict(type='AtomicCheckpointHook', by_epoch=False, interval=16000)
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    assert cfg.env_cfg.cudnn_benchmark is False  # no cuDNN set-up (and run-time compiling) per new shape

    data = cfg.train_dataloader.dataset
    assert data.type == 'ADE20KDataset' and data.data_root == 'data/ade/ADEChallengeData2016'
    assert data.data_prefix == dict(img_path='images/training', seg_map_path='annotations/training')
    train = data.pipeline
    assert types(train) == ['LoadImageFromFile', 'LoadAnnotations', 'RandomResize', 'RandomCrop', 'RandomFlip',
                            'PhotoMetricDistortion', 'PackSegInputs']
    assert train[1].reduce_zero_label
    assert tuple(train[2].scale) == (2048, 512) and tuple(train[2].ratio_range) == (0.5, 2.0)
    assert tuple(train[3].crop_size) == (512, 512) and train[3].cat_max_ratio == 0.75
    test = cfg.val_dataloader.dataset.pipeline
    assert types(test) == ['LoadImageFromFile', 'Resize', 'LoadAnnotations', 'PackSegInputs']
    assert tuple(test[1].scale) == (2048, 512) and test[1].keep_ratio and test[2].reduce_zero_label
    assert cfg.val_evaluator == dict(type='IoUMetric', iou_metrics=['mIoU'])
    assert cfg.tta_model.type == 'SegTTAModel'
    tta = cfg.tta_pipeline[1]
    assert tta.type == 'TestTimeAug'
    assert [r.scale_factor for r in tta.transforms[0]] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert [f.prob for f in tta.transforms[1]] == [0., 1.]


def test_upernet_t_loss_on_cpu():
    from mmengine.model import revert_sync_batchnorm
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg = load('segmentation/upernet_mlla_t.py')
    cfg.model.data_preprocessor.size = (128, 128)  # pad to a small CPU-sized crop instead of 512 x 512
    torch.manual_seed(0)
    model = build_model(cfg)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model = revert_sync_batchnorm(model)  # SyncBN needs a process group; a single CPU process has none
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model.train()

    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        image = torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8, generator=gen)
        label = torch.randint(0, 150, (1, 128, 128), generator=gen)
        label[:, :16] = 255  # an ignored band
        sample = SegDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128)))
        sample.gt_sem_seg = PixelData(data=label)
        inputs.append(image)
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
    assert tuple(data['inputs'].shape) == (2, 3, 128, 128)
    losses = model(**data, mode='loss')
    assert_finite_losses_and_gradients(model, losses, {'decode.loss_ce', 'aux.loss_ce'})
    # 150 roughly balanced classes from a random start: cross-entropy near ln(150) (mmseg averages over all
    # pixels, ignored ones included, so 7/8 of it here)
    assert 0.5 * math.log(150) < losses['decode.loss_ce'].item() < 2 * math.log(150)


# ---------------------------------------------------------------------------------------------- demo
def test_demo_detection_config():
    cfg = load('demo/mask_rcnn_mlla_t_demo.py')
    assert cfg.model.backbone.get('init_cfg') is None
    assert 'Pretrained' not in cfg.pretty_text
    assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == 3
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val'),
                          (cfg.test_dataloader, 'val')):
        data = loader.dataset
        assert data.type == 'CocoDataset' and data.data_root == 'data/demo/coco/'
        assert data.ann_file == f'annotations/instances_{split}.json' and data.data_prefix.img == f'{split}/'
        assert tuple(data.metainfo.classes) == DEMO_CLASSES
        assert 'RandomChoice' not in types(data.pipeline)
        assert [s.scale for s in data.pipeline if s.type == 'Resize'] == [cfg.img_scale]
        assert loader.num_workers == 1 and 2 <= loader.batch_size <= 4
    assert cfg.val_evaluator.ann_file == 'data/demo/coco/annotations/instances_val.json'
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and 1 <= cfg.train_cfg.max_epochs <= 24
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_epochs == cfg.max_epochs
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == cfg.lr
    # the slimmer CPU heads are wired consistently to the FPN width
    width = cfg.neck_channels
    assert cfg.model.neck.out_channels == cfg.model.rpn_head.in_channels == width
    assert cfg.model.roi_head.bbox_head.in_channels == cfg.model.roi_head.mask_head.in_channels == width
    assert_demo_runtime(cfg, 'DetVisualizationHook', 'DetLocalVisualizer')


def test_demo_gpu_config_restores_the_full_heads_at_256():
    cpu, gpu = load('demo/mask_rcnn_mlla_t_demo.py'), load('demo/mask_rcnn_mlla_t_demo_gpu.py')
    full = load('detection/mask_rcnn_mlla_t.py')
    assert gpu.model.neck == full.model.neck
    assert gpu.model.roi_head.mask_head.num_convs == full.model.roi_head.mask_head.num_convs
    for loader in (gpu.train_dataloader, gpu.val_dataloader):
        assert [t.scale for t in loader.dataset.pipeline if t.type == 'Resize'] == [(256, 256)]
        assert loader.dataset.data_root == cpu.train_dataloader.dataset.data_root
    assert gpu.param_scheduler[-1].milestones == [27, 33] and gpu.train_cfg.max_epochs == 36


def test_demo_gpu_segmentation_config_restores_the_full_heads_on_the_demo_data():
    cpu, gpu = load('demo/upernet_mlla_t_demo.py'), load('demo/upernet_mlla_t_demo_gpu.py')
    full = load('segmentation/upernet_mlla_t.py')
    for head in ('decode_head', 'auxiliary_head'):
        assert gpu.model[head].channels == full.model[head].channels
        assert gpu.model[head].num_classes == cpu.model[head].num_classes == 3
    for loader in ('val_dataloader', 'test_dataloader'):
        assert gpu[loader].dataset == cpu[loader].dataset  # the same data and evaluation
    train, cpu_train = gpu.train_dataloader.dataset, cpu.train_dataloader.dataset
    def without_pipeline(dataset):
        return {key: value for key, value in dataset.items() if key != 'pipeline'}

    assert without_pipeline(train) == without_pipeline(cpu_train)
    # training takes ADE20K's augmentation, in the ADE20K config's order, at the demo's image size
    ade_train = full.train_dataloader.dataset.pipeline
    assert [t.type for t in train.pipeline] == [t.type for t in ade_train]
    resize, crop = (next(t for t in train.pipeline if t.type == kind) for kind in ('RandomResize', 'RandomCrop'))
    ade_resize, ade_crop = (next(t for t in ade_train if t.type == kind) for kind in ('RandomResize', 'RandomCrop'))
    assert resize.scale == crop.crop_size == tuple(gpu.model.data_preprocessor.size) == (256, 256)
    assert resize.ratio_range == ade_resize.ratio_range and crop.cat_max_ratio == ade_crop.cat_max_ratio
    assert gpu.train_dataloader.batch_size == 8
    # the schedule follows its variables: 40 epochs, the polynomial decay ending with them
    assert gpu.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=gpu.val_interval)
    assert gpu.param_scheduler[0].end == gpu.warmup_iters
    assert gpu.param_scheduler[-1].type == 'PolyLR' and gpu.param_scheduler[-1].end == gpu.max_epochs
    assert gpu.optim_wrapper.optimizer.lr == gpu.lr
    assert gpu.default_hooks.checkpoint.interval == gpu.val_interval


def test_demo_segmentation_config():
    cfg = load('demo/upernet_mlla_t_demo.py')
    assert cfg.model.backbone.get('init_cfg') is None
    assert 'Pretrained' not in cfg.pretty_text
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 3
    assert cfg.model.decode_head.norm_cfg.type == 'BN'  # runs in one process without conversion
    for loader, split in ((cfg.train_dataloader, 'training'), (cfg.val_dataloader, 'validation')):
        data = loader.dataset
        assert data.data_root == 'data/demo/ade/' and data.reduce_zero_label
        assert data.data_prefix == dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}')
        assert tuple(data.metainfo.classes) == DEMO_CLASSES
        assert loader.num_workers == 1 and 2 <= loader.batch_size <= 4
    assert cfg.train_dataloader.sampler.type == 'DefaultSampler'  # epochs, not the infinite sampler
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=cfg.max_epochs, val_interval=cfg.val_interval)
    assert cfg.default_hooks.checkpoint.by_epoch and cfg.log_processor.by_epoch
    assert cfg.default_hooks.visualization.interval == 1  # --show-dir draws every test batch
    assert_demo_runtime(cfg, 'SegVisualizationHook', 'SegLocalVisualizer')


def assert_demo_runtime(cfg, hook, visualizer):
    hooks = cfg.default_hooks
    assert hooks.checkpoint.interval == 1 and hooks.checkpoint.max_keep_ckpts == 2
    assert hooks.logger.type == 'LoggerHook' and hooks.logger.interval == 10
    # `--show-dir` switches the hook's drawing on; it needs the hook and a visualizer that saves images
    assert hooks.visualization.type == hook
    assert cfg.visualizer.type == visualizer and cfg.visualizer.vis_backends[0].type == 'LocalVisBackend'


def write_demo_coco(root: Path, split: str, count: int):
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        image = np.full((256, 256, 3), 30, dtype=np.uint8)
        x, y = 40 + 30 * i, 60
        image[y:y + 50, x:x + 50] = (0, 200, 0)
        cv2.imwrite(str(root / split / f'{i:06d}.jpg'), image)
        images.append(dict(id=i + 1, file_name=f'{i:06d}.jpg', width=256, height=256))
        annotations.append(dict(
            id=i + 1, image_id=i + 1, category_id=(i % 3) + 1, iscrowd=0, area=2500., bbox=[x, y, 50, 50],
            segmentation=[[x, y, x + 50, y, x + 50, y + 50, x, y + 50]]))
    categories = [dict(id=k + 1, name=name) for k, name in enumerate(DEMO_CLASSES)]
    with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def test_demo_detection_data_loads(tmp_path):
    """The demo's datasets and pipelines read a COCO-format set of 256 x 256 images with the demo classes and
    resize them (and their masks) to the demo's scale."""
    from mmdet.registry import DATASETS
    cfg = load('demo/mask_rcnn_mlla_t_demo.py')
    init_default_scope('mmdet')
    write_demo_coco(tmp_path, 'train', 3)
    write_demo_coco(tmp_path, 'val', 2)
    for loader, count in ((cfg.train_dataloader, 3), (cfg.val_dataloader, 2)):
        dataset = DATASETS.build(dict(loader.dataset, data_root=str(tmp_path)))
        assert len(dataset) == count and tuple(dataset.metainfo['classes']) == DEMO_CLASSES
        for i in range(count):
            sample = dataset[i]
            assert tuple(sample['inputs'].shape) == (3, *cfg.img_scale)
            gt = sample['data_samples'].gt_instances
            assert gt.labels.tolist() == [i % 3]  # category ids 1..3 -> labels 0..2
            # training resizes the masks with the image; validation keeps them at the original size for evaluation
            scale = cfg.img_scale[0] / 256 if loader is cfg.train_dataloader else 1
            assert gt.masks.to_ndarray().sum() == pytest.approx(2500 * scale ** 2, rel=0.05)


def test_demo_segmentation_data_loads(tmp_path):
    from mmseg.registry import DATASETS
    cfg = load('demo/upernet_mlla_t_demo.py')
    init_default_scope('mmseg')
    for split in ('training', 'validation'):
        (tmp_path / 'images' / split).mkdir(parents=True)
        (tmp_path / 'annotations' / split).mkdir(parents=True)
        image = np.zeros((256, 256, 3), dtype=np.uint8)
        label = np.zeros((256, 256), dtype=np.uint8)
        label[10:60, 10:60], label[100:150, 100:150], label[200:240, 20:60] = 1, 2, 3
        cv2.imwrite(str(tmp_path / 'images' / split / f'x{cfg.img_suffix}'), image)
        cv2.imwrite(str(tmp_path / 'annotations' / split / 'x.png'), label)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        dataset = DATASETS.build(dict(loader.dataset, data_root=str(tmp_path)))
        assert len(dataset) == 1 and tuple(dataset.metainfo['classes']) == DEMO_CLASSES
        seg = dataset[0]['data_samples'].gt_sem_seg.data
        assert tuple(seg.shape) == (1, 256, 256)
        # reduce_zero_label: 0 (background) -> 255 (ignored), classes 1..3 -> 0..2
        values, counts = np.unique(seg.numpy(), return_counts=True)
        assert dict(zip(values.tolist(), counts.tolist())) == {0: 2500, 1: 2500, 2: 1600, 255: 65536 - 6600}
