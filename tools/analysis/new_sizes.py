"""What a new input size costs a training step, per backbone in a process of its own (mlla_mm.analysis.new_sizes).

    # backbones alone, two images at eight sizes (six new), fp16 autocast, MLLA-T as configured and compiled
    python tools/analysis/new_sizes.py --peers mlla convnext_t swin_t --attn-impl plain auto fast \
        --precision fp16 --results results.csv
    # a whole Mask R-CNN, the config's optimizer
    python tools/analysis/new_sizes.py --level model --config configs/detection/mask_rcnn_mlla_t.py \
        --precision fp16 --peers mlla swin_t

It takes ``tools/analysis/benchmark.py``'s row options (level, config, peers, --attn-impl, --fast-cfg, --batch,
--precision, --adamw), and --sizes (HEIGHTxWIDTH, in order) and --repeats (steps at each size). --results appends
first_size_step_s, new_size_step_s and seen_size_step_ms to a results CSV. Each row runs in a process of its own
(this script again, with --row).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.analysis.benchmark import build_parser, device_of, each_row, parse_args, planned_rows  # noqa: E402
from mlla_mm.analysis.new_sizes import DEFAULT_SIZES, parse_sizes, run, run_rows_apart  # noqa: E402


def main(argv=None):
    parser = build_parser(__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=list(DEFAULT_SIZES), metavar='HxW',
                        help=f'the input sizes, in order (default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--repeats', type=int, default=3, help='train steps at each size (default: 3)')
    parser.add_argument('--row', type=int, help='measure only the row at this index (from 0) in this process; '
                        'without it, each row runs in a process of its own')
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv, parser)
    try:
        parse_sizes(args.sizes)
    except ValueError as err:
        parser.error(f'--sizes: {err}')
    if args.repeats < 1:
        parser.error(f'--repeats must be at least 1, got {args.repeats}')
    if args.no_train:
        parser.error('--no-train: this tool times training steps')
    rows = len(planned_rows(args))
    if args.row is not None and not 0 <= args.row < rows:
        parser.error(f'--row {args.row}: this run has rows 0 to {rows - 1}')
    if args.row is None and rows > 1:
        results = run_rows_apart([sys.executable, osp.abspath(__file__)], argv, rows, args.json)
    else:
        results = run(args, each_row, device_of(args), args.results)
    print('machine:', results['machine'])
    if args.results:
        print(f'wrote {args.results}')
    if results.get('failed'):
        sys.exit(f'rows {results["failed"]} failed (their output is above)')
    return results


if __name__ == '__main__':
    main()
