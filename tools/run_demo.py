"""The demo behind `make demo`: Mask R-CNN with an MLLA-T backbone, trained and evaluated on synthetic shapes.

1. generates the demo data under data/demo if it is not there yet;
2. trains configs/demo/mask_rcnn_mlla_t_demo.py, evaluating COCO bbox and segm mAP after every epoch; an
   interrupted run resumes from its last checkpoint when started again (--fresh starts over, deleting only what
   a demo run wrote into the work dir);
3. draws the trained model's predictions on validation images into WORK_DIR/predictions/;
4. prints the mAP of every epoch and where everything is.

    python tools/run_demo.py [--epochs N] [--work-dir DIR] [--fresh] [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import sys
import time

import repo_env  # tools/repo_env.py, found next to this script

repo_env.use_repo_venv()  # a Python without torch runs this script again with the .venv of the repository
sys.path.insert(0, repo_env.REPO)  # this checkout's mlla_mm, also uninstalled

from demo_data import ensure_demo_data  # noqa: E402 (tools/demo_data.py)
from mmengine.config import DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from mlla_mm.apis import build_runner, load_config, prepare_train_config  # noqa: E402
from mlla_mm.apis.inference import predict_and_draw  # noqa: E402

DEFAULT_CONFIG = 'configs/demo/mask_rcnn_mlla_t_demo.py'
METRICS_FILE = 'demo_metrics.json'
# written first into the work dir: marks it as the demo's, and lists the pictures the demo drew there
RECORD_FILE = 'demo_run.json'
PICTURES_DIR = 'predictions'
# what mmengine's Runner writes into a work dir: a folder of logs per run, checkpoints, their pointer (and the
# .partial files of AtomicCheckpointHook's interrupted writes)
RUNNER_OUTPUTS = re.compile(r'\d{8}_\d{6}|((epoch|iter)_\d+\.pth|last_checkpoint)(\.partial)?')


class RecordMetrics(Hook):
    """Appends each validation's metrics to WORK_DIR/demo_metrics.json, so the history survives a resume."""

    priority = 'LOW'

    def __init__(self, path):
        self.path = path

    def after_val_epoch(self, runner, metrics=None):
        history = read_history(self.path)
        history.append(dict(epoch=runner.epoch, iter=runner.iter, time=time.time(),
                            **{k: float(v) for k, v in (metrics or {}).items()}))
        with open(self.path, 'w') as f:
            json.dump(history, f, indent=1)


def read_history(path):
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)


def is_demo_work_dir(work_dir):
    """Whether a demo run wrote ``work_dir`` (its record, or the metrics file of an older demo run)."""
    return any(osp.isfile(osp.join(work_dir, name)) for name in (RECORD_FILE, METRICS_FILE))


def check_work_dir(work_dir):
    """The demo writes only into a new or empty folder or one of its own: anything else stops it, naming it."""
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise SystemExit(f'run_demo.py: --work-dir {work_dir} is a file, not a folder')
    if osp.isdir(work_dir) and os.listdir(work_dir) and not is_demo_work_dir(work_dir):
        raise SystemExit(f'run_demo.py: --work-dir {work_dir} is not empty and no demo run made it (it has no '
                         f'{RECORD_FILE}); nothing was changed there. Choose another --work-dir')


def read_record(work_dir):
    path = osp.join(work_dir, RECORD_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(work_dir, config, pictures=()):
    os.makedirs(work_dir, exist_ok=True)
    record = dict(tool='tools/run_demo.py', config=config,
                  pictures=sorted(set(read_record(work_dir).get('pictures', [])) | set(pictures)))
    with open(osp.join(work_dir, RECORD_FILE), 'w') as f:
        json.dump(record, f, indent=1)


def clean_work_dir(work_dir):
    """--fresh: delete what demo runs wrote into ``work_dir`` (the Runner's logs, checkpoints and config, the metrics,
    the pictures they drew, the record) and keep everything else; return the deleted paths."""
    check_work_dir(work_dir)
    if not osp.isdir(work_dir):
        return []
    record = read_record(work_dir)
    config = record.get('config', DEFAULT_CONFIG)  # older demo runs left no record: they ran the default config
    ours = {METRICS_FILE} | ({osp.basename(config)} if isinstance(config, str) else set())  # + the Runner's copy
    deleted = []
    for name in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, name)
        if name in ours or RUNNER_OUTPUTS.fullmatch(name):
            if osp.isdir(path) and not osp.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            deleted.append(path)
    pictures_dir = osp.join(work_dir, PICTURES_DIR)
    for name in record.get('pictures', []):
        path = osp.join(pictures_dir, osp.basename(str(name)))
        if osp.isfile(path):
            os.remove(path)
            deleted.append(path)
    if osp.isdir(pictures_dir) and not os.listdir(pictures_dir):
        os.rmdir(pictures_dir)
    if osp.isfile(osp.join(work_dir, RECORD_FILE)):
        os.remove(osp.join(work_dir, RECORD_FILE))
        deleted.append(osp.join(work_dir, RECORD_FILE))
    return deleted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo_mask_rcnn_mlla_t')
    parser.add_argument('--data-root', default='data/demo', help='where the demo data is (generated if absent)')
    parser.add_argument('--epochs', type=int, help='train for this many epochs instead of the config\'s')
    parser.add_argument('--num-pictures', type=int, default=8, help='validation images to draw predictions on')
    parser.add_argument('--score-thr', type=float, default=0.3, help='lowest score of a drawn prediction')
    parser.add_argument('--fresh', action='store_true',
                        help='start over instead of resuming: delete what demo runs wrote into the work dir first')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config values, as in tools/train.py')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    if args.fresh:
        deleted = clean_work_dir(args.work_dir)
        if deleted:
            print(f'--fresh: deleted {len(deleted)} file(s) and folder(s) of earlier demo runs in {args.work_dir}')
    check_work_dir(args.work_dir)
    write_record(args.work_dir, args.config)
    paths = ensure_demo_data(args.data_root)
    print(f'demo data: {paths["coco"]}', flush=True)

    options = dict(args.cfg_options or {})
    options.setdefault('train_dataloader.dataset.data_root', osp.join(paths['coco'], ''))
    options.setdefault('val_dataloader.dataset.data_root', osp.join(paths['coco'], ''))
    options.setdefault('test_dataloader.dataset.data_root', osp.join(paths['coco'], ''))
    options.setdefault('val_evaluator.ann_file', osp.join(paths['coco'], 'annotations', 'instances_val.json'))
    options.setdefault('test_evaluator.ann_file', osp.join(paths['coco'], 'annotations', 'instances_val.json'))
    if args.epochs:
        options['train_cfg.max_epochs'] = args.epochs
    cfg = load_config(args.config, options)

    metrics_path = osp.join(args.work_dir, METRICS_FILE)
    cfg = prepare_train_config(cfg, work_dir=args.work_dir, resume='auto')
    runner = build_runner(cfg)
    runner.register_hook(RecordMetrics(metrics_path))
    max_epochs = cfg.train_cfg.max_epochs
    runner.train()
    if not read_history(metrics_path):  # a finished run found again: evaluate its last checkpoint once
        runner.val()
    checkpoint = osp.join(args.work_dir, f'epoch_{max_epochs}.pth')

    val_dir = osp.join(paths['coco'], 'val')
    images = sorted(osp.join(val_dir, name) for name in os.listdir(val_dir))[:args.num_pictures]
    pictures = predict_and_draw(load_config(args.config, options), checkpoint, images,
                                osp.join(args.work_dir, PICTURES_DIR), score_thr=args.score_thr)
    write_record(args.work_dir, args.config, [osp.basename(path) for path in pictures])

    history = read_history(metrics_path)
    print('\n' + '=' * 64)
    print('Mask R-CNN + MLLA-T on the synthetic shapes (COCO mAP on the validation split)')
    print(f'{"epoch":>6} {"bbox mAP":>9} {"bbox AP50":>10} {"segm mAP":>9}')
    for row in history:
        print(f'{row["epoch"]:>6} {row.get("coco/bbox_mAP", float("nan")):>9.3f} '
              f'{row.get("coco/bbox_mAP_50", float("nan")):>10.3f} {row.get("coco/segm_mAP", float("nan")):>9.3f}')
    print(f'checkpoint: {checkpoint}')
    print(f'pictures of predictions ({len(pictures)}): {osp.dirname(pictures[0]) if pictures else "-"}')
    print(f'this run took {(time.time() - started) / 60:.1f} min')
    print('=' * 64)


if __name__ == '__main__':
    main()
