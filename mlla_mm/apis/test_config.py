"""The test config of ``tools/test.py``: checkpoint, work dir, drawing, saving predictions, test-time augmentation
and launcher settings applied to a loaded config, with its inputs checked."""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .checks import check_checkpoint, check_dataset_paths
from .config import default_work_dir, task_of
from .distributed import apply_launcher
from .tta import apply_tta


def prepare_test_config(cfg: Config,
                        checkpoint: Optional[str],
                        work_dir: Optional[str] = None,
                        out: Optional[str] = None,
                        show: bool = False,
                        show_dir: Optional[str] = None,
                        wait_time: float = 2.,
                        tta: bool = False,
                        launcher: str = 'none') -> Config:
    """Apply the options of ``tools/test.py`` to ``cfg`` (in place; also returned) and check inputs.

    Args:
        checkpoint: weights to test (``load_from``); must exist when it is a local path.
        out: detection: a ``.pkl`` file for the raw predictions. Segmentation: a ``.pkl`` file, or a folder for
            the predicted label maps as PNG files.
        show / show_dir: draw predictions (on screen / into ``show_dir``: detection writes
            ``show_dir/<image name>``, segmentation ``show_dir/vis_data/vis_image/``). A relative ``show_dir`` is
            relative to the current directory.
        tta: test-time augmentation with ``tta_model`` / ``tta_pipeline`` from the config; when absent,
            mmdet's ``DetTTAModel`` / mmseg's ``SegTTAModel`` with horizontal flip.
    """
    task = task_of(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir', None):
        cfg.work_dir = default_work_dir(cfg)
    check_checkpoint(checkpoint, 'checkpoint to test')
    cfg.load_from = checkpoint
    cfg.resume = False

    if show or show_dir:
        _draw_predictions(cfg, task, show, show_dir, wait_time)
    if tta:
        apply_tta(cfg, task)
    if out:
        _save_predictions(cfg, task, out)
    apply_launcher(cfg, launcher)
    check_dataset_paths(cfg, ['test'])
    return cfg


def _draw_predictions(cfg: Config, task: str, show: bool, show_dir: Optional[str], wait_time: float) -> None:
    """``--show`` / ``--show-dir``: switch on the config's visualization hook."""
    hooks = cfg.get('default_hooks', None) or {}
    vis = hooks.get('visualization', None)
    if not isinstance(vis, dict):
        raise ValueError('--show / --show-dir need a visualization hook in default_hooks '
                         "(e.g. visualization=dict(type='DetVisualizationHook'))")
    vis['draw'] = True
    if show:
        vis['show'] = True
        vis['wait_time'] = wait_time
    if show_dir:
        show_dir = osp.abspath(show_dir)
        os.makedirs(show_dir, exist_ok=True)
        if task == 'mmdet':
            vis['test_out_dir'] = show_dir
        else:
            cfg.visualizer['save_dir'] = show_dir
            vis['interval'] = 1  # every test image, as in detection


def _save_predictions(cfg: Config, task: str, out: str) -> None:
    """``--out``: a dump evaluator for a .pkl file, or the IoUMetric's output folder (segmentation)."""
    pickle_out = out.endswith(('.pkl', '.pickle'))
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    if pickle_out:
        out_dir = osp.dirname(osp.abspath(out))
        os.makedirs(out_dir, exist_ok=True)
        evaluators.append(dict(type='DumpDetResults' if task == 'mmdet' else 'DumpResults', out_file_path=out))
        cfg.test_evaluator = evaluators
    elif task == 'mmdet':
        raise ValueError(f'--out must be a .pkl / .pickle file for detection, got {out}')
    else:
        for ev in evaluators:
            if isinstance(ev, dict) and str(ev.get('type', '')).endswith('IoUMetric'):
                ev['output_dir'] = out
                break
        else:
            raise ValueError('--out FOLDER (segmentation) needs an IoUMetric test_evaluator; '
                             'use --out FILE.pkl to dump the raw results instead')
