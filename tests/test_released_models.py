"""The paper's released downstream models (Mask R-CNN, mmdet 2.x; UperNet, mmseg 0.x) through every entry point.

The files are built here in the official format, no download: the whole model's ``state_dict`` with
``backbone.`` / ``neck.`` / ``rpn_head.`` / ``roi_head.`` (``decode_head.`` / ``auxiliary_head.``) keys, the RoPE
tables sized for 224x224 in every block, and mmdet 2 / mmseg 0 meta (``CLASSES``, ``PALETTE``, a config string).
The models are the demo configs with a 1-block-per-stage, 16-channel MLLA, so that they build and run in seconds.
"""
import copy
import itertools
import logging
import os
import os.path as osp
import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch
from mmengine.logging import MMLogger

import mlla_mm  # noqa: F401  (registers the model, installs the loaders)
from mlla_mm.apis import build_model, build_runner, load_config, prepare_test_config, prepare_train_config
from mlla_mm.apis.inference import init_model
from mlla_mm.checkpoint import official_rope_tables
from mlla_mm.checkpoint.model_checkpoint import CheckpointMismatchError
from mlla_mm.engine import ResumeError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.append(osp.join(REPO, 'tools'))  # tools/demo_data.py, which the demo scripts import by name
from demo_data import ensure_demo_data  # noqa: E402
DET_DEMO = osp.join(REPO, 'configs', 'demo', 'mask_rcnn_mlla_t_demo.py')
SEG_DEMO = osp.join(REPO, 'configs', 'demo', 'upernet_mlla_t_demo.py')
SMALL_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
WIDTHS = [16, 32, 64, 128]
SIZE = 64
RELEASE_CLASSES = ('person', 'bicycle', 'car')  # differ from the demo config's, to see where names come from
RELEASE_PALETTE = [(220, 20, 60), (119, 11, 32), (0, 0, 142)]
VISUALIZER_NAMES = itertools.count()
ROPE_LINE = 'skipped 4 RoPE tables of the official release'  # 4 blocks in SMALL_ARCH

DET_OPTIONS = {
    'model.backbone.arch': dict(SMALL_ARCH, _delete_=True), 'model.neck.in_channels': WIDTHS,
    'test_dataloader.batch_size': 2, 'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
    'test_dataloader.dataset.pipeline.1.scale': (SIZE, SIZE),
    'model.test_cfg.rpn.max_per_img': 50, 'model.test_cfg.rcnn.max_per_img': 10,
    'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False}
SEG_OPTIONS = {
    'model.backbone.arch': dict(SMALL_ARCH, _delete_=True), 'model.decode_head.in_channels': WIDTHS,
    'model.auxiliary_head.in_channels': WIDTHS[2], 'model.data_preprocessor.size': (SIZE, SIZE),
    'test_dataloader.batch_size': 1, 'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
    'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False}


@pytest.fixture(scope='module')
def area(tmp_path_factory):
    """A work area whose data/demo holds the demo data sets (4 train / 2 val images of 64 x 64 pixels)."""
    root = tmp_path_factory.mktemp('released')
    ensure_demo_data(str(root / 'data' / 'demo'), num_train=4, num_val=2, image_size=SIZE, seed=0)
    return root


def small_config(task, **extra):
    config, options = (DET_DEMO, DET_OPTIONS) if task == 'det' else (SEG_DEMO, SEG_OPTIONS)
    # one visualizer per config: mmengine keeps a visualizer by name, with the save folder of its first runner
    name = f'released_{next(VISUALIZER_NAMES)}'
    return load_config(config, copy.deepcopy(dict(options, **{'visualizer.name': name}, **extra)))


def official_release(cfg, path, seed=0, drop=(), rename=None):
    """Save the config's model as the official release saves it (mmdet 2.x / mmseg 0.x); return its weights.
    Segmentors are built with mmseg's own UPerHead / FCNHead, the heads of the official code."""
    torch.manual_seed(seed)
    if cfg.default_scope == 'mmseg':
        cfg = copy.deepcopy(cfg)
        cfg.model.decode_head.type, cfg.model.auxiliary_head.type = 'UPerHead', 'FCNHead'
    model = build_model(cfg)
    parameters = dict(model.named_parameters())
    weights = {key: torch.randn_like(value) * 0.02 if key in parameters else value
               for key, value in model.state_dict().items() if key not in drop}
    if rename:
        weights = {rename.get(key, key): value for key, value in weights.items()}
    release = dict(weights)
    release.update(official_rope_tables(model.backbone, prefix='backbone.'))
    library = 'mmdet_version' if cfg.default_scope == 'mmdet' else 'mmseg_version'
    torch.save({'meta': {'CLASSES': RELEASE_CLASSES, 'PALETTE': RELEASE_PALETTE, library: '2.25.2',
                         'config': "model = dict(type='MaskRCNN', backbone=dict(type='MLLA', embed_dim=64))\n",
                         'epoch': 12, 'iter': 88000},
                'state_dict': release,
                'optimizer': {'state': {}, 'param_groups': []}}, path)
    return weights


@contextmanager
def logged_lines():
    """Lines logged through mmengine's current logger (where mlla-mm reports) while the block runs."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.extend(record.getMessage().splitlines())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def assert_loaded(model, weights):
    own = model.state_dict()
    for key, value in weights.items():
        assert torch.equal(own[key].cpu(), value), key


def assert_one_rope_line(lines, printed=''):
    text = '\n'.join(lines) + printed
    assert sum(ROPE_LINE in line for line in lines) == 1, text
    assert 'rope.rotations' not in text and 'unexpected key' not in text and 'missing keys' not in text, text


# ------------------------------------------------------------------------------------------------ accepted
@pytest.mark.parametrize('task', ['det', 'seg'])
def test_inference_api_loads_release_with_its_classes_and_palette(tmp_path, task):
    cfg = small_config(task)
    weights = official_release(cfg, tmp_path / 'release.pth')
    with logged_lines() as lines:
        _, model = init_model(cfg, str(tmp_path / 'release.pth'), 'cpu')
    assert_loaded(model, weights)
    assert_one_rope_line(lines)
    assert tuple(model.dataset_meta['classes']) == RELEASE_CLASSES
    assert [tuple(c) for c in model.dataset_meta['palette']] == RELEASE_PALETTE


def test_mmdet_and_mmseg_apis_skip_the_rope_tables_in_one_line(tmp_path, capsys):
    from mmdet.apis import init_detector
    from mmseg.apis import init_model as init_segmentor
    for task, init in (('det', init_detector), ('seg', init_segmentor)):
        cfg = small_config(task)
        weights = official_release(cfg, tmp_path / f'{task}.pth')
        capsys.readouterr()
        with logged_lines() as lines:
            model = init(cfg, str(tmp_path / f'{task}.pth'), device='cpu')
        assert_loaded(model, weights)
        assert_one_rope_line(lines, capsys.readouterr().out)
        assert tuple(model.dataset_meta['classes']) == RELEASE_CLASSES


def test_load_from_starts_training_from_the_release(area, tmp_path, monkeypatch):
    monkeypatch.chdir(area)
    cfg = small_config('det', load_from=str(tmp_path / 'release.pth'))
    weights = official_release(cfg, tmp_path / 'release.pth')
    runner = build_runner(prepare_train_config(cfg, work_dir=str(tmp_path / 'work')))
    with logged_lines() as lines:
        runner.load_or_resume()
    assert_loaded(runner.model, weights)
    assert_one_rope_line(lines)


@pytest.mark.parametrize('task,metric,tta', [('det', 'coco/bbox_mAP', False), ('seg', 'mIoU', False),
                                             ('seg', 'mIoU', True)])
def test_tools_test_evaluates_the_release(area, tmp_path, monkeypatch, task, metric, tta):
    monkeypatch.chdir(area)
    cfg = small_config(task)
    weights = official_release(cfg, tmp_path / 'release.pth')
    runner = build_runner(prepare_test_config(cfg, str(tmp_path / 'release.pth'), work_dir=str(tmp_path / 'w'),
                                              tta=tta))
    with logged_lines() as lines:
        metrics = runner.test()
    assert metric in metrics
    assert_loaded(runner.model.module if tta else runner.model, weights)  # a TTA model wraps the segmentor
    assert_one_rope_line(lines)


# ------------------------------------------------------------------------------------------------ refused
@pytest.mark.parametrize('change,named', [
    ({'drop': ('roi_head.bbox_head.fc_cls.weight', )}, '1 of the model\'s'),
    ({'rename': {'neck.fpn_convs.0.conv.weight': 'neck.fpn_convs.0.weight'}}, 'neck.fpn_convs.0.weight'),
])
def test_tools_test_refuses_a_file_that_does_not_fit_before_evaluating(area, tmp_path, monkeypatch, change, named):
    monkeypatch.chdir(area)
    official_release(small_config('det'), tmp_path / 'other.pth', **change)
    runner = build_runner(prepare_test_config(small_config('det'), str(tmp_path / 'other.pth'),
                                              work_dir=str(tmp_path / 'w')))
    evaluated = []
    runner.test_loop.run_iter = lambda *args, **kwargs: evaluated.append(args)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.test()
    assert str(tmp_path / 'other.pth') in str(info.value) and named in str(info.value)
    assert not evaluated


def test_tools_test_command_exits_nonzero_for_other_shapes(area, tmp_path):
    other = small_config('det', **{'model.roi_head.bbox_head.num_classes': 5})
    official_release(other, tmp_path / 'five_classes.pth')
    config = tmp_path / 'small_det.py'  # the demo config with DET_OPTIONS, as a file for the command line
    small_config('det').dump(str(config))
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'test.py'), str(config),
                           str(tmp_path / 'five_classes.pth'), '--work-dir', str(tmp_path / 'w')],
                          cwd=area, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1'))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "'roi_head.bbox_head.fc_cls.weight' (6, 512) (model: (4, 512))" in output, output[-3000:]
    assert 'bbox_mAP' not in output


def test_resume_from_a_file_without_training_state_names_it(area, tmp_path, monkeypatch):
    monkeypatch.chdir(area)
    cfg = small_config('det')
    torch.save({'state_dict': build_model(cfg).state_dict()}, tmp_path / 'weights_only.pth')
    runner = build_runner(prepare_train_config(cfg, work_dir=str(tmp_path / 'w'),
                                               resume=str(tmp_path / 'weights_only.pth')))
    with pytest.raises(ResumeError, match='weights_only.pth.*load_from'):
        runner.load_or_resume()
