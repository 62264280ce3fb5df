"""Parameters and FLOPs of a whole detector or segmentor for a fixed input size, on the CPU, without any dataset.

    python tools/analysis/get_flops.py configs/detection/mask_rcnn_mlla_t.py [--shape H W] [--show-table]

A multiply-add counts as one FLOP (the paper's convention, and fvcore's as used by mmengine's FlopAnalyzer), and
every matrix product is counted, the linear-attention ones (``Q (K^T V)``, ``K^T V``, the normaliser) included.
Element-wise operations (activations, additions, RoPE rotations) are not, as in the paper. Defaults: 800x1280 for
detection configs (mmdet's 1280x800), 512x2048 for segmentation configs.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mmengine.config import DictAction  # noqa: E402

from mlla_mm.analysis import count_complexity  # noqa: E402
from mlla_mm.apis import load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a detection or segmentation config file')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: 800 1280 for detection, 512 2048 for segmentation)')
    parser.add_argument('--show-table', action='store_true', help='print the per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values, as in tools/train.py')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_grad_enabled(False)
    result = count_complexity(load_config(args.config, args.cfg_options), shape=args.shape)
    if args.show_table:
        print(result['table'])
    height, width = result['shape']
    print('=' * 30)
    print(f'Input shape: (3, {height}, {width})')
    print(f"Flops: {result['flops'] / 1e9:.1f}G")
    print(f"Params: {result['params'] / 1e6:.1f}M")
    print('=' * 30)


if __name__ == '__main__':
    main()
