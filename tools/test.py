"""Test (evaluate) a checkpoint of a detector (mmdet config) or a segmentor (mmseg config) with an MLLA backbone.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show] [--show-dir DIR] [--tta]
                         [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

The task follows the config's default_scope ('mmdet' or 'mmseg'). The metrics are printed and saved as JSON in
the work dir. Several GPUs: tools/dist_test.sh or tools/slurm_test.sh.
"""
import argparse
import sys

import repo_env  # tools/repo_env.py, found next to this script

repo_env.use_repo_venv()  # a Python without torch runs this script again with the .venv of the repository
sys.path.insert(0, repo_env.REPO)  # this checkout's mlla_mm, also uninstalled

from mlla_mm.apis import build_runner, exit_distributed_run, load_config, prepare_test_config  # noqa: E402
from mlla_mm.apis.cli import add_common_options, parse_with_local_rank  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test an MLLA detector / segmentor (mmdet or mmseg config)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (or URL)')
    parser.add_argument('--work-dir', help='folder for the log and the metrics (default: work_dirs/<config name>)')
    parser.add_argument(
        '--out', help='save the predictions: a .pkl file (detection, segmentation), or a folder of PNG label maps '
        '(segmentation)')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument(
        '--show-dir', help='draw the predictions into this folder (relative to the current directory); '
        'segmentation writes them to DIR/vis_data/vis_image/')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each --show window stays')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_model / tta_pipeline; default: flip)")
    add_common_options(parser, 'test_dataloader.batch_size=2')
    return parse_with_local_rank(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg = prepare_test_config(cfg, args.checkpoint, work_dir=args.work_dir, out=args.out, show=args.show,
                              show_dir=args.show_dir, wait_time=args.wait_time, tta=args.tta,
                              launcher=args.launcher)
    runner = build_runner(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
    exit_distributed_run()
