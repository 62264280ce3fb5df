"""Pretrained loading of official-layout checkpoints, safely."""
import argparse
import importlib
import os
import sys
import textwrap

import numpy as np
import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models.backbones import mlla as mlla_module
from mlla_mm.checkpoint import backbone_state_dict, load_pretrained_backbone, safe_torch_load

SMALL_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])


def official_classification_state_dict(arch=SMALL_ARCH, image_size=224, seed=0):
    """Keys and shapes as the official ImageNet model saves them: no per-stage norms, a final `norm`, a `head`,
    and in every block the RoPE table buffer sized for 224x224."""
    torch.manual_seed(seed)
    backbone = MLLA(arch)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in backbone.state_dict().items() if not k.startswith('norm')}
    dims = backbone.num_features
    for i, stage in enumerate(backbone.layers):
        side = image_size // 4 // 2 ** i
        for j in range(len(stage.blocks)):
            state[f'layers.{i}.blocks.{j}.attn.rope.rotations'] = torch.randn(side, side, dims[i] // 2, 2)
    state['norm.weight'] = torch.ones(dims[-1])
    state['norm.bias'] = torch.zeros(dims[-1])
    state['head.weight'] = torch.randn(1000, dims[-1])
    state['head.bias'] = torch.zeros(1000)
    return state


@pytest.fixture
def module_that_disappears(tmp_path):
    """A config class that exists while the checkpoint is written and is gone (not installed) when it is read."""
    package = tmp_path / 'gone_training_code'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'config.py').write_text(textwrap.dedent('''
        class CfgNode(dict):
            """Stands for yacs' CfgNode: a dict subclass with attributes."""
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.frozen = True
        '''))
    sys.path.insert(0, str(tmp_path))
    config_module = importlib.import_module('gone_training_code.config')
    yield config_module
    sys.path.remove(str(tmp_path))
    for name in ('gone_training_code.config', 'gone_training_code'):
        sys.modules.pop(name, None)


def write_release_checkpoint(path, state, config_class):
    torch.save({
        'model': state,
        'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-3, 'params': [0, 1]}]},
        'lr_scheduler': {'last_epoch': 299},
        'max_accuracy': np.float64(82.3),
        'epoch': 299,
        'config': config_class({'MODEL': {'TYPE': 'mlla'}}),
        'args': argparse.Namespace(cfg='cfgs/mlla_t.yaml', batch_size=128),
    }, path)


def test_release_checkpoint_with_pickled_training_state_loads_its_weights(tmp_path, module_that_disappears):
    state = official_classification_state_dict()
    path = tmp_path / 'MLLA_release.pth'
    write_release_checkpoint(path, state, module_that_disappears.CfgNode)
    sys.modules.pop('gone_training_code.config')
    sys.modules.pop('gone_training_code')
    sys.path.remove(str(tmp_path))
    sys.path.append('/nonexistent')  # keep the fixture's teardown balanced
    try:
        model = MLLA(SMALL_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        model.init_weights()
    finally:
        sys.path.remove('/nonexistent')
        sys.path.insert(0, str(tmp_path))
    assert 'gone_training_code' not in sys.modules  # the class was never imported
    loaded = model.state_dict()
    for key, value in state.items():
        if key.startswith(('head.', 'norm.')) or key.endswith('rope.rotations'):
            assert key not in loaded
        else:
            assert torch.equal(loaded[key], value), key


def test_report_names_missing_and_skipped_keys(tmp_path):
    state = official_classification_state_dict()
    state['layers.0.blocks.0.extra.weight'] = torch.zeros(3)
    torch.save({'model': state}, tmp_path / 'ckpt.pth')
    report = load_pretrained_backbone(MLLA(SMALL_ARCH), str(tmp_path / 'ckpt.pth'))
    assert 'missing in the checkpoint (8' in report and 'norm0.weight' in report  # per-stage norms are new
    assert 'not in the model (1' in report and 'layers.0.blocks.0.extra.weight' in report
    assert 'classifier head' in report and 'RoPE tables' in report and 'final norm' in report


def test_init_weights_logs_the_report(tmp_path, monkeypatch):
    torch.save(official_classification_state_dict(), tmp_path / 'plain.pth')
    model = MLLA(SMALL_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'plain.pth')))
    messages = []
    monkeypatch.setattr(mlla_module, 'print_log', lambda msg, logger=None: messages.append(msg))
    model.init_weights()
    assert len(messages) == 1
    logged = messages[0]
    assert 'plain.pth' in logged and 'missing in the checkpoint (8' in logged


@pytest.mark.parametrize('prefix,wrapper', [('backbone.', 'state_dict'), ('module.', 'model'),
                                            ('module.backbone.', None)])
def test_prefixes_and_wrappers_are_removed(tmp_path, prefix, wrapper):
    source = MLLA(SMALL_ARCH)
    torch.nn.init.constant_(source.norm2.weight, 3.0)
    state = {prefix + k: v for k, v in source.state_dict().items()}
    if prefix.endswith('backbone.'):
        state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)  # a detector's other parts are skipped
    torch.save({wrapper: state} if wrapper else state, tmp_path / 'ckpt.pth')
    target = MLLA(SMALL_ARCH)
    report = load_pretrained_backbone(target, str(tmp_path / 'ckpt.pth'))
    assert torch.equal(target.norm2.weight, torch.full((64,), 3.0))
    assert 'missing' not in report


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    state = MLLA(SMALL_ARCH).state_dict()
    state['layers.1.blocks.0.attn.qk.weight'] = torch.zeros(10, 32)
    torch.save(state, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match=r"'layers\.1\.blocks\.0\.attn\.qk\.weight'.*\(10, 32\).*\(64, 32\)"):
        load_pretrained_backbone(MLLA(SMALL_ARCH), str(tmp_path / 'bad.pth'))


def test_missing_checkpoint_names_the_file(tmp_path):
    model = MLLA(SMALL_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'MLLA_T.pth')))
    with pytest.raises(FileNotFoundError, match='MLLA_T.pth'):
        model.init_weights()


def test_not_a_checkpoint_names_the_file(tmp_path):
    (tmp_path / 'notes.pth').write_text('not a checkpoint')
    with pytest.raises(RuntimeError, match='notes.pth'):
        safe_torch_load(tmp_path / 'notes.pth')


class CodeOnLoad:
    """Pickles as a call of os.system: what an unrestricted torch.load would run."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_loading_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / 'code_ran'
    state = MLLA(SMALL_ARCH).state_dict()
    torch.save({'state_dict': state, 'payload': CodeOnLoad(f'touch {marker}')}, tmp_path / 'evil.pth')
    loaded = safe_torch_load(tmp_path / 'evil.pth')
    assert not marker.exists()
    assert type(loaded['payload']).__name__ == 'OpaqueObject'
    assert 'system' in loaded['payload'].pickled_name
    weights, _ = backbone_state_dict(loaded)
    assert set(weights) == set(state)


def test_numpy_values_are_restored_for_real(tmp_path):
    torch.save({'meta': {'best': np.float64(0.5), 'hist': np.arange(4)}}, tmp_path / 'n.pth')
    loaded = safe_torch_load(tmp_path / 'n.pth')
    assert loaded['meta']['best'] == 0.5 and loaded['meta']['hist'].tolist() == [0, 1, 2, 3]


def test_getattr_in_a_pickle_reaches_only_allowed_attributes(tmp_path):
    """Protocol 4 pickles `getattr(obj, name)`; an open getattr would reach e.g. ndarray.tofile and write files."""
    target = tmp_path / 'written'

    class WritesAFile:
        def __reduce__(self):
            return (getattr(np.arange(3), 'tofile'), (str(target),))

    torch.save({'state_dict': {}, 'payload': WritesAFile()}, tmp_path / 'getattr.pth')
    loaded = safe_torch_load(tmp_path / 'getattr.pth')
    assert not target.exists()
    assert 'tofile' in loaded['payload'].pickled_name
