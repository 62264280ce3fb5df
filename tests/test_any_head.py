"""MLLA under heads it was not written for: unmodified configs shipped inside mmdet's and mmseg's wheels, with only
the backbone swapped (custom_imports + _delete_), and mmdet's own shipped tools/train.py on an mlla-mm config."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mmdet
import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from test_configs import fake_detection_batch

ROOT = Path(__file__).resolve().parents[1]
MMDET_MIM = Path(mmdet.__file__).parent / '.mim'
MMSEG_MIM = Path(mmseg.__file__).parent / '.mim'
SMALL_MLLA = "dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])"
SMALL_CHANNELS = [32, 64, 128, 256]


def swapped_config(tmp_path, shipped: Path, extra: str = '') -> Config:
    """A config that inherits the shipped file untouched and replaces only its backbone (and the neck's inputs,
    which must follow the backbone's widths)."""
    assert shipped.is_file(), shipped
    path = tmp_path / f'mlla_{shipped.name}'
    path.write_text(textwrap.dedent(f'''
        _base_ = [{str(shipped)!r}]
        custom_imports = dict(imports=['mlla_mm'], allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, type='MLLA', arch={SMALL_MLLA}, out_indices=(0, 1, 2, 3)),
            neck=dict(in_channels={SMALL_CHANNELS}))
        ''') + extra)
    return Config.fromfile(str(path))


def assert_trains(model, losses, expected_losses):
    """Finite losses, and gradients on the backbone (all of it but the output norms of stages the neck skips)."""
    assert expected_losses <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    params = dict(model.backbone.named_parameters())
    without_grad = {n for n, p in params.items() if p.grad is None}
    assert without_grad <= {f'norm{i}.{w}' for i in range(4) for w in ('weight', 'bias')}, without_grad
    assert all(torch.isfinite(p.grad).all() for p in params.values() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize('shipped,expected_losses', [
    ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', {'loss_rpn_cls', 's0.loss_cls', 's2.loss_mask'}),
    ('retinanet/retinanet_r50_fpn_1x_coco.py', {'loss_cls', 'loss_bbox'}),
])
def test_mmdet_shipped_configs_train_with_mlla(tmp_path, shipped, expected_losses):
    cfg = swapped_config(tmp_path, MMDET_MIM / 'configs' / shipped)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'MLLA'
    model.init_weights()
    model.train()
    data = model.data_preprocessor(fake_detection_batch(), training=True)
    losses = model(**data, mode='loss')
    assert_trains(model, losses, expected_losses)


def test_mmseg_shipped_semantic_fpn_trains_with_mlla(tmp_path):
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg = swapped_config(tmp_path, MMSEG_MIM / 'configs' / 'sem_fpn' / 'fpn_r50_4xb4-160k_ade20k-512x512.py',
                         # mmseg's configs name the backbone's ImageNet weights at model level: part of the swap
                         extra='model.update(pretrained=None, data_preprocessor=dict(size=(96, 96)))\n')
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    assert type(model.backbone).__name__ == 'MLLA'
    model.train()
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(96, 96), ori_shape=(96, 96)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 96, 96), generator=generator))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, 96, 96), dtype=torch.uint8, generator=generator) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
    losses = model(**data, mode='loss')
    assert_trains(model, losses, {'decode.loss_ce'})


def test_mmdet_own_train_tool_trains_an_mlla_mm_demo_config(tmp_path):
    sys.path.append(str(ROOT / 'tools'))  # tools/demo_data.py, which the demo scripts import by name
    from demo_data import make_coco_instances
    data = tmp_path / 'coco'
    make_coco_instances(data, num_train=4, num_val=2, image_size=96)
    work_dir = tmp_path / 'work'
    options = [
        f'train_dataloader.dataset.data_root={data}/', f'val_dataloader.dataset.data_root={data}/',
        f'test_dataloader.dataset.data_root={data}/', f'val_evaluator.ann_file={data}/annotations/instances_val.json',
        f'test_evaluator.ann_file={data}/annotations/instances_val.json',
        'train_cfg.max_epochs=1', 'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1']
    env = dict(os.environ, PYTHONPATH=f'{ROOT}{os.pathsep}{os.environ.get("PYTHONPATH", "")}', OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, str(MMDET_MIM / 'tools' / 'train.py'),
                             str(ROOT / 'configs' / 'demo' / 'mask_rcnn_mlla_t_demo.py'), '--work-dir', str(work_dir),
                             '--cfg-options', *options], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert (work_dir / 'epoch_1.pth').is_file()
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
