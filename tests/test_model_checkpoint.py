"""The whole-model rule (mlla_mm.checkpoint.model_checkpoint) and the refusals of backbone loading."""
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from mlla_mm import MLLA
from mlla_mm.checkpoint import (CheckpointMismatchError, checkpoint_dataset_meta, fit_model_checkpoint,
                                load_pretrained_backbone)
from test_checkpoint_loading import SMALL_ARCH, official_classification_state_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import convert_checkpoint  # noqa: E402


class Detector(nn.Module):
    """A stand-in whole model: an MLLA backbone, a neck and a head."""

    def __init__(self, classes=3):
        super().__init__()
        self.backbone = MLLA(SMALL_ARCH)
        self.neck = nn.Conv2d(128, 8, 1)
        self.head = nn.Sequential(nn.Linear(8, classes), nn.BatchNorm1d(classes))


def whole(model):
    return {'state_dict': {key: value.clone() for key, value in model.state_dict().items()}}


def test_fitting_file_loads_and_rope_tables_are_the_only_skip():
    model = Detector()
    checkpoint = whole(model)
    checkpoint['state_dict']['backbone.layers.0.blocks.0.attn.rope.rotations'] = torch.zeros(56, 56, 8, 2)
    del checkpoint['state_dict']['head.1.num_batches_tracked']  # older files may lack the counters
    weights, report = fit_model_checkpoint(model, checkpoint, 'ok.pth')
    assert 'rope.rotations' not in ''.join(weights) and report == (
        'ok.pth: skipped 1 RoPE tables of the official release, sized for 224x224 (recomputed for each input size)')
    assert fit_model_checkpoint(model, whole(model), 'plain.pth')[1] is None


@pytest.mark.parametrize('edit,message', [
    (lambda sd: sd.pop('neck.weight'), "1 of the model's {n} tensors are not in it: neck.weight"),
    (lambda sd: sd.update({'neck.extra': torch.zeros(1)}), '1 of its tensors are not in the model: neck.extra'),
    (lambda sd: sd.update({'head.0.weight': torch.zeros(5, 8)}),
     "1 tensor(s) have another shape: 'head.0.weight' (5, 8) (model: (3, 8))"),
    (lambda sd: sd.clear(), 'it holds no weights at all'),
    (lambda sd: [sd.pop(k) for k in [k for k in sd if k.startswith('neck.')]],
     "2 of the model's {n} tensors are not in it: neck.weight, neck.bias"),
])
def test_misfits_are_refused_with_the_keys_named(edit, message):
    model = Detector()
    checkpoint = whole(model)
    edit(checkpoint['state_dict'])
    with pytest.raises(CheckpointMismatchError) as info:
        fit_model_checkpoint(model, checkpoint, 'other.pth')
    message = message.format(n=len(model.state_dict()))
    assert str(info.value).startswith('checkpoint other.pth does not fit the config') and message in str(info.value)


def test_many_keys_are_shortened_with_a_count():
    model = Detector()
    with pytest.raises(CheckpointMismatchError, match=r'\(\d+ more\)') as info:
        fit_model_checkpoint(model, {'state_dict': {f'x.{i}': torch.zeros(1) for i in range(40)}}, 'f.pth')
    own = model.state_dict()
    n = sum(not key.endswith('num_batches_tracked') for key in own)  # the BN counters may be absent
    assert f"{n} of the model's {len(own)} tensors" in str(info.value) and '40 of its tensors' in str(info.value)


def test_an_imagenet_file_given_as_a_whole_model_points_to_init_cfg():
    with pytest.raises(CheckpointMismatchError, match="init_cfg=dict\\(type='Pretrained'"):
        fit_model_checkpoint(Detector(), {'model': official_classification_state_dict()}, 'MLLA_T.pth')


@pytest.mark.parametrize('checkpoint,message', [
    ({'state_dict': [torch.zeros(1)]}, "f.pth: its 'state_dict' entry is a list, not a dict of weights"),
    ([torch.zeros(1)], 'f.pth: expected a dict of weights, got a list'),
    ({'state_dict': {'a': 1.5}}, "f.pth: entry 'a' is a float, not a tensor"),
])
def test_files_that_hold_no_weights_say_so(checkpoint, message):
    with pytest.raises(TypeError) as info:
        fit_model_checkpoint(Detector(), checkpoint, 'f.pth')
    assert message in str(info.value)


@pytest.mark.parametrize('bad', [math.nan, math.inf])
def test_nan_and_inf_weights_are_refused(bad):
    model = Detector()
    checkpoint = whole(model)
    checkpoint['state_dict']['neck.bias'][0] = bad
    with pytest.raises(ValueError, match=r'nan.pth: 1 tensor\(s\) hold NaN or inf values: neck.bias'):
        fit_model_checkpoint(model, checkpoint, 'nan.pth')


def test_dataset_meta_of_old_and_new_files():
    old = {'meta': {'CLASSES': ['a', 'b'], 'PALETTE': [[1, 2, 3], [4, 5, 6]]}}
    assert checkpoint_dataset_meta(old) == {'classes': ('a', 'b'), 'palette': [(1, 2, 3), (4, 5, 6)]}
    new = {'meta': {'dataset_meta': {'classes': ('c', ), 'palette': [(7, 8, 9)]}}}
    assert checkpoint_dataset_meta(new) == {'classes': ('c', ), 'palette': [(7, 8, 9)]}
    assert checkpoint_dataset_meta({'state_dict': {}}) == {}


def test_load_state_dict_skips_official_rope_tables_in_one_line(capsys):
    from mmengine.runner.checkpoint import load_state_dict
    model = Detector()
    state = model.state_dict()
    state['backbone.layers.1.blocks.0.attn.rope.rotations'] = torch.zeros(28, 28, 16, 2)
    load_state_dict(model, state)  # mmengine's own loader, as init_detector / init_model use it
    assert 'unexpected key' not in capsys.readouterr().out
    result = model.load_state_dict(state)  # torch's, strict
    assert not result.unexpected_keys


# ------------------------------------------------------------------------------- backbone (Pretrained) loading
def test_pretrained_file_without_backbone_tensors_is_refused(tmp_path):
    torch.save({'state_dict': {'fc.weight': torch.zeros(2, 2), 'fc.bias': torch.zeros(2)}}, tmp_path / 'cls.pth')
    with pytest.raises(ValueError, match=r'cls.pth: no backbone weights: its 2 tensors \(fc.weight, fc.bias\)'):
        load_pretrained_backbone(MLLA(SMALL_ARCH), str(tmp_path / 'cls.pth'))
    torch.save({'state_dict': {}}, tmp_path / 'empty.pth')
    with pytest.raises(ValueError, match='empty.pth: no backbone weights: it has none'):
        load_pretrained_backbone(MLLA(SMALL_ARCH), str(tmp_path / 'empty.pth'))


def test_pretrained_state_dict_list_and_nan_are_named(tmp_path):
    torch.save({'state_dict': [1, 2]}, tmp_path / 'list.pth')
    with pytest.raises(TypeError, match="list.pth: its 'state_dict' entry is a list"):
        load_pretrained_backbone(MLLA(SMALL_ARCH), str(tmp_path / 'list.pth'))
    state = official_classification_state_dict()
    state['patch_embed.conv1.conv.weight'][0, 0, 0, 0] = math.inf
    torch.save({'model': state}, tmp_path / 'inf.pth')
    with pytest.raises(ValueError, match='inf.pth: 1 tensor.*NaN or inf.*patch_embed.conv1.conv.weight'):
        load_pretrained_backbone(MLLA(SMALL_ARCH), str(tmp_path / 'inf.pth'))


def test_convert_refuses_a_file_without_backbone_tensors_and_writes_nothing(tmp_path):
    torch.save({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, tmp_path / 'cls.pth')
    with pytest.raises(SystemExit) as info:
        convert_checkpoint.main([str(tmp_path / 'cls.pth'), str(tmp_path / 'out.pth'), '--arch', 'tiny'])
    assert 'cls.pth: no backbone weights' in str(info.value.code)
    assert not (tmp_path / 'out.pth').exists()
