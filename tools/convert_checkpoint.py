"""Convert MLLA checkpoints between the official release layout and a clean mmengine backbone checkpoint.

    # official ImageNet release (or any detector / segmentor checkpoint) -> backbone weights for mlla-mm
    python tools/convert_checkpoint.py MLLA_T.pth pretrained/mlla_t_backbone.pth --arch tiny

    # mlla-mm backbone, detector or segmentor checkpoint -> the official downstream layout, for sharing
    python tools/convert_checkpoint.py work_dirs/x/epoch_12.pth mlla_t_downstream.pth --arch tiny --to-official

The input is read without running code from it (mlla_mm.checkpoint.safe_torch_load). The output holds tensors and
plain strings only (it loads with ``torch.load(weights_only=True)``). Both directions check the weights against an
MLLA of ``--arch`` and print the key report; a shape mismatch stops with the key and both shapes.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from mlla_mm import MLLA  # noqa: E402
from mlla_mm.checkpoint import backbone_state_dict, load_backbone_weights, safe_torch_load  # noqa: E402
from mlla_mm.models.layers import rope_tables  # noqa: E402

OFFICIAL_IMAGE_SIZE = 224  # the official model keeps RoPE tables for this input size as buffers


def official_rope_buffers(model: MLLA):
    """The ``attn.rope.rotations`` buffers the official downstream code registers (for a 224x224 input), so that
    it loads the converted file without missing keys."""
    buffers = {}
    side = OFFICIAL_IMAGE_SIZE // model.patch_embed.patch_size
    for i, stage in enumerate(model.layers):
        size = side // 2 ** i
        cos, sin = rope_tables(size, size, model.num_features[i], torch.device('cpu'))
        rotations = torch.stack([cos, sin], dim=-1).reshape(size, size, -1, 2)
        for j in range(len(stage.blocks)):
            buffers[f'layers.{i}.blocks.{j}.attn.rope.rotations'] = rotations.clone()
    return buffers


def convert(src: str, dst: str, arch: str, to_official: bool = False) -> str:
    checkpoint = safe_torch_load(src)
    weights, skipped = backbone_state_dict(checkpoint, source=src)
    model = MLLA(arch)
    report = load_backbone_weights(model, weights, source=src, skipped=skipped)
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k in weights}
    if to_official:
        state.update(official_rope_buffers(model))
        output = {'model': state}
    else:
        output = {'state_dict': state,
                  'meta': {'arch': str(arch), 'source': osp.basename(src), 'layout': 'mlla_mm.MLLA backbone'}}
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(output, dst)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint to read')
    parser.add_argument('dst', help='checkpoint to write')
    parser.add_argument('--arch', default='tiny', help="MLLA arch of the weights: tiny, small or base (default tiny)")
    parser.add_argument('--to-official', action='store_true',
                        help='write the official downstream layout ({"model": ...} with RoPE buffers)')
    args = parser.parse_args(argv)
    report = convert(args.src, args.dst, args.arch, args.to_official)
    print(report)
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
