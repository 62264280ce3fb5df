"""The training config of ``tools/train.py``: work dir, resuming, mixed precision, learning-rate scaling and
launcher settings applied to a loaded config, with its inputs checked."""
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config

from ..engine.resume_checkpoint import find_resumable_checkpoint
from .checks import check_checkpoint, check_dataset_paths, pretrained_checkpoints
from .config import add_note, default_work_dir, task_of
from .distributed import apply_launcher


def prepare_train_config(cfg: Config,
                         work_dir: Optional[str] = None,
                         resume: Union[None, bool, str] = None,
                         amp: bool = False,
                         auto_scale_lr: bool = False,
                         launcher: str = 'none') -> Config:
    """Apply the training options of ``tools/train.py`` to ``cfg`` (in place; also returned) and check inputs.

    Args:
        work_dir: overrides ``cfg.work_dir``; default ``work_dirs/<config name>``.
        resume: None / False: no resuming. ``'auto'`` or True: resume from the latest checkpoint in the work_dir
            (``last_checkpoint``), or start afresh (keeping ``load_from``) when there is none. A path: resume from
            that checkpoint.
        amp: float16 mixed precision (mmengine ``AmpOptimWrapper``, dynamic loss scale); needs a CUDA GPU.
        auto_scale_lr: scale the learning rate by the real batch size over ``auto_scale_lr.base_batch_size``.
        launcher: 'none', 'pytorch', 'slurm' or 'mpi'.
    """
    task_of(cfg)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir', None):
        cfg.work_dir = default_work_dir(cfg)

    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp (float16 automatic mixed precision) needs a CUDA GPU, and '
                               'torch.cuda.is_available() is False here; train without --amp on this machine')
        optim_wrapper = cfg.get('optim_wrapper', None)
        if not isinstance(optim_wrapper, dict):
            raise ValueError('--amp needs an optim_wrapper in the config')
        if optim_wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f"--amp replaces optim_wrapper type 'OptimWrapper' by 'AmpOptimWrapper', but the "
                             f"config uses {optim_wrapper.get('type')!r}")
        optim_wrapper['type'] = 'AmpOptimWrapper'
        optim_wrapper['dtype'] = 'float16'  # mmcv's RoIAlign has no bfloat16 kernel
        optim_wrapper.setdefault('loss_scale', 'dynamic')

    if auto_scale_lr:
        asl = cfg.get('auto_scale_lr', None)
        if not isinstance(asl, dict) or 'base_batch_size' not in asl:
            raise ValueError('--auto-scale-lr needs auto_scale_lr=dict(enable=False, base_batch_size=N) in the '
                             'config (N: the total batch size its learning rate is meant for)')
        asl['enable'] = True

    if resume in ('auto', True):
        marker = osp.join(cfg.work_dir, 'last_checkpoint')
        latest, fallback_note = find_resumable_checkpoint(cfg.work_dir)  # newest complete one if marker is stale
        if fallback_note:
            add_note(cfg, fallback_note)
        if latest is None:
            add_note(cfg, f'resume: no checkpoint recorded in {marker}; training starts from the beginning')
            cfg.resume = False
        else:
            check_checkpoint(latest, f'latest checkpoint recorded in {marker}')
            cfg.resume = True
            cfg.load_from = latest
    elif resume:
        check_checkpoint(resume, '--resume checkpoint')
        cfg.resume = True
        cfg.load_from = resume
    check_checkpoint(cfg.get('load_from', None), 'load_from checkpoint')
    if not cfg.get('resume', False):
        for path in pretrained_checkpoints(cfg.model):
            check_checkpoint(path, "pretrained checkpoint (init_cfg type='Pretrained') "
                                   "[set it with --cfg-options model.backbone.init_cfg.checkpoint=PATH]")

    apply_launcher(cfg, launcher)
    splits = ['train']
    if cfg.get('val_cfg', None) and cfg.get('val_dataloader', None) and cfg.get('val_evaluator', None):
        splits.append('val')
    check_dataset_paths(cfg, splits)
    return cfg
