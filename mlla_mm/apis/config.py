"""Reading a config and what every tool asks of it: its task (mmdet or mmseg, from ``default_scope``), its model,
its default work dir, and the notes the preparation leaves for the runner's log."""
import importlib
import os.path as osp
from typing import Any, Dict, Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

TASKS = {'mmdet': 'detection', 'mmseg': 'semantic segmentation'}
NOTES_KEY = '_mlla_mm_notes'  # what the preparation changed; logged by build_runner, then removed from the config


def load_config(path: str, cfg_options: Optional[Dict[str, Any]] = None) -> Config:
    """Read a config file and merge ``cfg_options`` (``{'a.b.c': value}``, as ``--cfg-options`` gives them)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def task_of(cfg: Config) -> str:
    """'mmdet' or 'mmseg', from the config's ``default_scope``."""
    scope = cfg.get('default_scope', None)
    if scope not in TASKS:
        where = f' ({cfg.filename})' if getattr(cfg, 'filename', None) else ''
        raise ValueError(f"the config{where} has default_scope={scope!r}; these tools need default_scope='mmdet' "
                         f"(detection) or 'mmseg' (semantic segmentation)")
    return scope


def build_model(cfg: Config) -> torch.nn.Module:
    """The config's model, built in its task's registry with the task as default scope (no weights are loaded:
    that is ``init_weights``' job)."""
    task = task_of(cfg)
    init_default_scope(task)
    return importlib.import_module(f'{task}.registry').MODELS.build(cfg.model)


def add_note(cfg: Config, message: str) -> None:
    notes = list(cfg.get(NOTES_KEY, []) or [])
    notes.append(message)
    cfg[NOTES_KEY] = notes


def default_work_dir(cfg: Config) -> str:
    name = osp.splitext(osp.basename(cfg.filename))[0] if getattr(cfg, 'filename', None) else 'mlla_mm'
    return osp.join('work_dirs', name)
