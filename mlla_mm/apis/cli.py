"""Command-line options that tools/train.py and tools/test.py share."""
import argparse
import os

from mmengine.config import DictAction


def add_common_options(parser: argparse.ArgumentParser, cfg_options_example: str) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local_rank`` (the last is passed by torch.distributed.launch)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help=f'override config settings, KEY=VALUE pairs, e.g. {cfg_options_example} (list values: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (none: a single process)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_with_local_rank(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and expose the local rank to mmengine the way torchrun does (LOCAL_RANK)."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
