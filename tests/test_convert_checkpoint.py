"""tools/convert_checkpoint.py: official release <-> clean mmengine backbone checkpoint."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.checkpoint import load_pretrained_backbone
from test_checkpoint_loading import official_classification_state_dict

ROOT = Path(__file__).resolve().parents[1]
SMALL = "{'embed_dims': 16, 'depths': [1, 1, 1, 1], 'num_heads': [1, 2, 4, 8]}"
sys.path.insert(0, str(ROOT / 'tools'))
import convert_checkpoint  # noqa: E402


def release_file(tmp_path):
    state = official_classification_state_dict()
    path = tmp_path / 'MLLA_release.pth'
    torch.save({'model': state, 'args': argparse.Namespace(lr=1e-3), 'epoch': 299}, path)
    return path, state


def small_arch():
    return eval(SMALL)


def test_official_to_backbone_writes_tensors_only_and_loads_back(tmp_path):
    src, state = release_file(tmp_path)
    dst = tmp_path / 'out' / 'backbone.pth'
    report = convert_checkpoint.convert(str(src), str(dst), small_arch())
    assert 'classifier head' in report and 'missing in the checkpoint (8' in report
    converted = torch.load(dst, weights_only=True)  # no pickled objects left
    weights = converted['state_dict']
    assert not any(k.startswith(('head.', 'norm.')) or k.endswith('rope.rotations') for k in weights)
    for key, value in weights.items():
        assert torch.equal(value, state[key]), key
    model = MLLA(small_arch())
    assert 'missing in the checkpoint (8' in load_pretrained_backbone(model, str(dst))


def test_round_trip_through_the_official_layout(tmp_path):
    source = MLLA(small_arch())
    for p in source.parameters():
        torch.nn.init.normal_(p)
    detector_like = {'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()},
                     'meta': {'epoch': 12}}
    torch.save(detector_like, tmp_path / 'epoch_12.pth')
    official = tmp_path / 'official.pth'
    convert_checkpoint.convert(str(tmp_path / 'epoch_12.pth'), str(official), small_arch(), to_official=True)
    shared = torch.load(official, weights_only=True)['model']
    rope_keys = [k for k in shared if k.endswith('attn.rope.rotations')]
    assert len(rope_keys) == 4 and shared['layers.0.blocks.0.attn.rope.rotations'].shape == (56, 56, 8, 2)
    back = tmp_path / 'back.pth'
    convert_checkpoint.convert(str(official), str(back), small_arch())
    for key, value in source.state_dict().items():
        assert torch.equal(torch.load(back, weights_only=True)['state_dict'][key], value), key


def test_wrong_arch_names_the_key_and_shapes(tmp_path):
    src, _ = release_file(tmp_path)
    with pytest.raises(ValueError, match=r"shape mismatch for 'patch_embed.conv1.conv.weight'"):
        convert_checkpoint.convert(str(src), str(tmp_path / 'x.pth'), 'tiny')


def test_command_line_errors_name_the_problem(tmp_path):
    tool = str(ROOT / 'tools' / 'convert_checkpoint.py')
    src, _ = release_file(tmp_path)
    run = lambda *args: subprocess.run([sys.executable, tool, *args], capture_output=True, text=True,  # noqa
                                       timeout=120)
    wrong_arch = run(str(src), str(tmp_path / 'x.pth'), '--arch', 'base')
    assert wrong_arch.returncode != 0 and 'patch_embed.conv1.conv.weight' in wrong_arch.stderr
    missing = run(str(tmp_path / 'nope.pth'), str(tmp_path / 'y.pth'))
    assert missing.returncode != 0 and 'nope.pth' in missing.stderr
    assert not (tmp_path / 'x.pth').exists() and not (tmp_path / 'y.pth').exists()
