"""Export an MLLA segmentor (or a detector's backbone or neck) to ONNX and check it against PyTorch.

    python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] --out FILE.onnx [--shape H W] [--dynamic]
        [--part model|backbone|neck] [--opset N]

The input is the data preprocessor's output: a normalised (N, 3, H, W) float32 tensor (mean and std applied,
RGB). A segmentor exports whole (``--part model``, the default for segmentation configs): its output is the
per-class logits at the input's size. A detector exports its backbone (``--part backbone``) or its backbone and
neck (``--part neck``): one output per feature map. Without CHECKPOINT the config's initial weights are exported.

``--dynamic`` makes the batch a dynamic axis, and for a backbone or neck also height and width (multiples of 32);
a segmentor keeps the export's height and width (docs/deployment.md, Limits). After writing the file, the tool
runs it with ONNX Runtime on the CPU at the export size (and, with ``--dynamic``, at a second batch, and size
where dynamic) beside PyTorch, prints the largest relative difference, and exits
with status 1 when it is above ``--tolerance``. See docs/deployment.md.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mmengine.config import DictAction  # noqa: E402

from mlla_mm.apis import load_config, task_of  # noqa: E402
from mlla_mm.deployment import (OPSET, PARTS, SIDE_MULTIPLE, build_export_module,  # noqa: E402
                                compare_with_onnxruntime, export_onnx)

DEFAULT_SHAPE = (512, 512)
TOLERANCE = 1e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a segmentation or detection config file')
    parser.add_argument('checkpoint', nargs='?', help="trained weights (default: the config's initial weights)")
    parser.add_argument('--out', required=True, help='the ONNX file to write (an existing file is not replaced)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=DEFAULT_SHAPE,
                        help=f'input height and width of the export (default: {DEFAULT_SHAPE[0]} {DEFAULT_SHAPE[1]})')
    parser.add_argument('--dynamic', action='store_true',
                        help=f'dynamic batch; for a backbone or neck also height and width (multiples of '
                             f'{SIDE_MULTIPLE})')
    parser.add_argument('--part', choices=PARTS,
                        help='model: the whole segmentor (default for segmentation configs); backbone, or '
                             'backbone and neck (detection configs: one of these is needed)')
    parser.add_argument('--opset', type=int, default=OPSET, help=f'ONNX opset (default: {OPSET})')
    parser.add_argument('--tolerance', type=float, default=TOLERANCE,
                        help=f'largest relative difference from PyTorch accepted (default: {TOLERANCE:g})')
    parser.add_argument('--force', action='store_true', help='replace --out if it exists')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def second_shape(height: int, width: int):
    """A different input for the dynamic check: batch 2, the height one block of 32 longer, the width two."""
    return 2, 3, height + SIDE_MULTIPLE, width + 2 * SIDE_MULTIPLE


def main(argv=None) -> int:
    args = parse_args(argv)
    height, width = args.shape
    if height < 1 or width < 1:
        raise SystemExit(f'--shape: sides must be positive, got {height} {width}')
    if osp.exists(args.out) and not args.force:
        raise SystemExit(f'--out {args.out} exists; pass --force to replace it')
    cfg = load_config(args.config, args.cfg_options)
    part = args.part or ('model' if task_of(cfg) == 'mmseg' else None)
    if part is None:
        raise SystemExit(f'{args.config} is a detection config: pass --part backbone or --part neck (a whole '
                         f'detector needs mmdeploy, which does not install beside this stack: docs/deployment.md)')
    if args.dynamic and part != 'model' and (height % SIDE_MULTIPLE or width % SIDE_MULTIPLE):
        raise SystemExit(f'--shape {height} {width}: with --dynamic the sides must be multiples of {SIDE_MULTIPLE} '
                         f'(docs/deployment.md, Limits)')
    try:
        module, reference, notes = build_export_module(cfg, args.checkpoint, part)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f'{args.config}: {err}')
    for note in notes:
        print(f'note: {note}')

    torch.manual_seed(0)
    batch = 2 if args.dynamic else 1
    example = torch.randn(batch, 3, height, width)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    dynamic_sides = part != 'model'  # see mlla_mm/deployment/onnx_export.py: a segmentor's sides stay fixed
    names = export_onnx(module, example, args.out, dynamic=args.dynamic, dynamic_sides=dynamic_sides,
                        opset=args.opset)
    axes = 'static shape'
    if args.dynamic:
        axes = 'dynamic batch, height, width' if dynamic_sides else 'dynamic batch (height and width fixed)'
    print(f'wrote {args.out}: {part} of {args.config}, opset {args.opset}, {axes}, input "input" '
          f'{tuple(example.shape)}, outputs {", ".join(names)}')

    inputs = [torch.randn(1, 3, height, width)]
    if args.dynamic:
        inputs.append(torch.randn(*second_shape(height, width)) if dynamic_sides else torch.randn(2, 3, height, width))
    failed = False
    for result in compare_with_onnxruntime(args.out, reference, inputs):
        ok = result['max_rel_diff'] <= args.tolerance
        failed |= not ok
        print(f'input {result["shape"]}: max relative difference ONNX Runtime vs PyTorch '
              f'{result["max_rel_diff"]:.3g} ({"ok" if ok else "FAILED"}, tolerance {args.tolerance:g})')
    if failed:
        print(f'error: {args.out} differs from PyTorch by more than {args.tolerance:g}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
