"""Training, testing and inference entry points: one set of tools for detection (mmdet) and semantic
segmentation (mmseg), chosen by the config's ``default_scope``.

Typical use::

    cfg = load_config('configs/demo/mask_rcnn_mlla_t_demo.py', {'train_cfg.max_epochs': 1})
    cfg = prepare_train_config(cfg, work_dir='work_dirs/demo', resume='auto')
    runner = build_runner(cfg)
    runner.train()

What the preparation adds to mmdet's / mmseg's own tools:

* bad input fails early and names the file: missing ``data_root`` / ``ann_file`` / image folders of the data
  loaders that will run, missing or empty annotation files, missing checkpoints (``--resume PATH``, ``load_from``,
  the checkpoint to test, a backbone's local ``Pretrained`` file); datasets that load no image, and data-pipeline
  errors (e.g. an unreadable image) name the dataset's files / the sample's files;
* SyncBN is converted to BN where it cannot run (a single process, or CPU-only distributed runs);
* distributed runs work on CPU-only machines (gloo backend, DDP without device ids);
* ``--amp`` (float16 ``AmpOptimWrapper``) says clearly that it needs a GPU.

Modules: ``config`` (reading a config, its task and model), ``train_config`` / ``test_config`` (the options of
``tools/train.py`` / ``tools/test.py``), ``tta``, ``checks`` (input paths), ``dataloader_check``, ``distributed``
(launcher, SyncBN and CPU-only settings), ``runner`` (``build_runner``), ``inference`` (pictures of predictions).
"""
from .checks import DataError, check_checkpoint, check_dataset_paths
from .config import TASKS, build_model, load_config, task_of
from .distributed import CPUDistributedDataParallel, convert_syncbn, exit_distributed_run
from .runner import build_runner
from .test_config import prepare_test_config
from .train_config import prepare_train_config

__all__ = [
    'TASKS', 'CPUDistributedDataParallel', 'DataError', 'build_model', 'build_runner', 'check_checkpoint',
    'check_dataset_paths', 'convert_syncbn', 'exit_distributed_run', 'load_config', 'prepare_test_config',
    'prepare_train_config', 'task_of'
]
