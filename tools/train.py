"""Train a detector (mmdet config) or a segmentor (mmseg config) with an MLLA backbone.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                          [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

The task follows the config's default_scope ('mmdet' or 'mmseg'). Several GPUs: tools/dist_train.sh or
tools/slurm_train.sh.
"""
import argparse
import sys

import repo_env  # tools/repo_env.py, found next to this script

repo_env.use_repo_venv()  # a Python without torch runs this script again with the .venv of the repository
sys.path.insert(0, repo_env.REPO)  # this checkout's mlla_mm, also uninstalled

from mlla_mm.apis import build_runner, exit_distributed_run, load_config, prepare_train_config  # noqa: E402
from mlla_mm.apis.cli import add_common_options, parse_with_local_rank  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an MLLA detector / segmentor (mmdet or mmseg config)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints (default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CKPT',
        help='resume training: from CKPT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='float16 automatic mixed precision (AmpOptimWrapper); needs a CUDA GPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the real total batch size / auto_scale_lr.base_batch_size')
    add_common_options(parser, 'train_cfg.max_epochs=1 train_dataloader.batch_size=2')
    return parse_with_local_rank(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg = prepare_train_config(cfg, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
                               auto_scale_lr=args.auto_scale_lr, launcher=args.launcher)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
    exit_distributed_run()
