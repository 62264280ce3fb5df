"""Convert MLLA checkpoints between the official release layout and a clean mmengine backbone checkpoint.

    # official ImageNet release (or any detector / segmentor checkpoint) -> backbone weights for mlla-mm
    python tools/convert_checkpoint.py MLLA_T.pth pretrained/mlla_t_backbone.pth --arch tiny

    # mlla-mm backbone, detector or segmentor checkpoint -> the official downstream layout, for sharing
    python tools/convert_checkpoint.py work_dirs/x/epoch_12.pth mlla_t_downstream.pth --arch tiny --to-official

The input is read without running code from it (mlla_mm.checkpoint.safe_torch_load). The output holds tensors and
plain strings only (it loads with ``torch.load(weights_only=True)``). Both directions check the weights against an
MLLA of ``--arch`` and print the key report; a shape mismatch, a file with no backbone tensor, or NaN / inf weights
stop with the keys named, and nothing is written.
"""
import argparse
import os
import os.path as osp
import sys

import repo_env  # tools/repo_env.py, found next to this script

repo_env.use_repo_venv()  # a Python without torch runs this script again with the .venv of the repository
sys.path.insert(0, repo_env.REPO)  # this checkout's mlla_mm, also uninstalled

import torch  # noqa: E402

from mlla_mm import MLLA  # noqa: E402
from mlla_mm.checkpoint import (backbone_state_dict, load_backbone_weights, official_rope_tables,  # noqa: E402
                                safe_torch_load)


def convert(src: str, dst: str, arch: str, to_official: bool = False) -> str:
    checkpoint = safe_torch_load(src)
    weights, skipped = backbone_state_dict(checkpoint, source=src)
    model = MLLA(arch)
    report = load_backbone_weights(model, weights, source=src, skipped=skipped)
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if k in weights}
    if to_official:
        state.update(official_rope_tables(model))
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
    try:
        report = convert(args.src, args.dst, args.arch, args.to_official)
    except (FileNotFoundError, RuntimeError, TypeError, ValueError, KeyError) as err:
        sys.exit(f'convert_checkpoint.py: {err}')  # exit status 1, nothing written
    print(report)
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    main()
