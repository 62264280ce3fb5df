"""Training / testing entry points shared by ``tools/train.py``, ``tools/test.py`` and scripts."""
from .runner import (TASKS, CPUDistributedDataParallel, DataError, build_model, build_runner,
                     check_checkpoint, check_dataset_paths, convert_syncbn, exit_distributed_run, load_config,
                     prepare_test_config, prepare_train_config, task_of)

__all__ = [
    'TASKS', 'CPUDistributedDataParallel', 'DataError', 'build_model', 'build_runner', 'check_checkpoint',
    'check_dataset_paths', 'convert_syncbn', 'exit_distributed_run', 'load_config', 'prepare_test_config',
    'prepare_train_config', 'task_of'
]
