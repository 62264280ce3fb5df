"""The Runner of a prepared config, with data loaders whose errors name the files involved."""
import copy

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..engine.checked_loading import install_checkpoint_rules
from ..engine.config_format_cache import install_config_format_cache
from .config import NOTES_KEY, task_of
from .dataloader_check import checked_dataloader_builder
from .distributed import init_cpu_distributed


def build_runner(cfg: Config):
    """Build the Runner of a prepared config: the registry runner of mmdet / mmseg when the config sets
    ``runner_type``, mmengine's ``Runner.from_cfg`` otherwise (after ``init_default_scope``). The runner's copies of
    the config text are formatted once (:mod:`..engine.config_format_cache`)."""
    install_config_format_cache()
    task = task_of(cfg)
    cfg = copy.deepcopy(cfg)
    notes = list(cfg.pop(NOTES_KEY, None) or [])
    init_default_scope(task)

    launcher = cfg.get('launcher', 'none')
    if launcher != 'none' and not torch.cuda.is_available() and not torch.distributed.is_initialized():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}) or {})
        init_cpu_distributed(launcher, dist_cfg)

    if 'runner_type' in cfg:
        if task == 'mmdet':
            from mmdet.registry import RUNNERS
        else:
            from mmseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
    runner.build_dataloader = checked_dataloader_builder(runner.build_dataloader)
    install_checkpoint_rules(runner)  # load_from / resume / test checkpoints must fit the model
    for note in notes:
        runner.logger.info(note)
    return runner
