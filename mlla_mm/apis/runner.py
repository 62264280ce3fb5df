"""Shared logic of ``tools/train.py`` and ``tools/test.py``: one set of tools for detection (mmdet) and semantic
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
"""
from __future__ import annotations

import copy
import importlib
import os
import os.path as osp
import subprocess
import sys
from datetime import timedelta
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS, init_default_scope

from ..engine.checked_loading import install_checkpoint_rules
from ..engine.resume_checkpoint import find_resumable_checkpoint

__all__ = [
    'TASKS', 'DataError', 'load_config', 'task_of', 'build_model', 'convert_syncbn', 'check_dataset_paths',
    'check_checkpoint', 'prepare_train_config', 'prepare_test_config', 'build_runner', 'CPUDistributedDataParallel'
]

TASKS = {'mmdet': 'detection', 'mmseg': 'semantic segmentation'}
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')
NOTES_KEY = '_mlla_mm_notes'  # what the preparation changed; logged by build_runner, then removed from the config


class DataError(RuntimeError):
    """A dataset or a data sample could not be loaded; the message names the files involved."""


# ----------------------------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------------------------
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


def _note(cfg: Config, message: str) -> None:
    notes = list(cfg.get(NOTES_KEY, []) or [])
    notes.append(message)
    cfg[NOTES_KEY] = notes


def convert_syncbn(node: Any) -> int:
    """Replace SyncBN norm layers by BN in a config (sub)tree, in place; return how many were replaced."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += convert_syncbn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += convert_syncbn(value)
    return count


def _is_remote(path: str) -> bool:
    return '://' in str(path)


def _join(root: Optional[str], path: str) -> str:
    """How mmengine's BaseDataset joins ``data_root`` and a relative path."""
    if root and not osp.isabs(path) and not _is_remote(path):
        return osp.join(root, path)
    return path


def _leaf_datasets(ds_cfg: Any) -> Iterable[Dict]:
    """The dataset configs inside dataset wrappers (``dataset=`` / ``datasets=[...]``), including plain ones."""
    if not isinstance(ds_cfg, dict):
        return
    inner = [ds_cfg['dataset']] if isinstance(ds_cfg.get('dataset'), dict) else []
    if isinstance(ds_cfg.get('datasets'), (list, tuple)):
        inner += [d for d in ds_cfg['datasets'] if isinstance(d, dict)]
    if inner:
        for d in inner:
            yield from _leaf_datasets(d)
    else:
        yield ds_cfg


def _check_file(path: str, what: str) -> None:
    if _is_remote(path):
        return
    if not osp.exists(path):
        raise FileNotFoundError(f'{what}: {path} does not exist (current directory: {os.getcwd()})')
    if osp.isfile(path) and osp.getsize(path) == 0:
        raise DataError(f'{what}: {path} is empty (0 bytes)')


def check_dataset_paths(cfg: Config, splits: Sequence[str]) -> None:
    """Check that the data root, annotation file(s) and data folders of ``<split>_dataloader`` for each split
    exist and that annotation files are not empty, as the datasets will join them; also the ``ann_file`` of
    ``<split>_evaluator`` (COCO metrics). Raises FileNotFoundError / DataError naming the file."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader', None)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        for ds in _leaf_datasets(loader['dataset']):
            where = f'{split}_dataloader dataset ({ds.get("type", "?")})'
            data_root = ds.get('data_root', None)
            if data_root and not _is_remote(data_root) and not osp.isdir(data_root):
                raise FileNotFoundError(f'{where}: data_root {data_root} does not exist '
                                        f'(current directory: {os.getcwd()})')
            ann_file = ds.get('ann_file', None)
            if ann_file:
                _check_file(_join(data_root, ann_file), f'{where}: ann_file')
            prefixes = ds.get('data_prefix', None)
            if isinstance(prefixes, dict):
                for key, prefix in prefixes.items():
                    if isinstance(prefix, str) and prefix:
                        _check_file(_join(data_root, prefix), f'{where}: data_prefix.{key}')
        evaluators = cfg.get(f'{split}_evaluator', None)
        for ev in (evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]):
            if isinstance(ev, dict) and isinstance(ev.get('ann_file'), str) and ev['ann_file']:
                _check_file(ev['ann_file'], f'{split}_evaluator ({ev.get("type", "?")}): ann_file')


def check_checkpoint(path: Optional[str], what: str = 'checkpoint') -> None:
    """A local checkpoint path must be an existing file (URLs and other schemes are left to the loaders)."""
    if path is None or _is_remote(path):
        return
    full = osp.expanduser(str(path))
    if not osp.isfile(full):
        raise FileNotFoundError(f'{what}: {path} does not exist' + ('' if osp.isabs(full) else
                                                                   f' (current directory: {os.getcwd()})'))


def _pretrained_checkpoints(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
            yield node['checkpoint']
        for value in node.values():
            yield from _pretrained_checkpoints(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _pretrained_checkpoints(value)


def _default_work_dir(cfg: Config) -> str:
    name = osp.splitext(osp.basename(cfg.filename))[0] if getattr(cfg, 'filename', None) else 'mlla_mm'
    return osp.join('work_dirs', name)


def _distributed_settings(cfg: Config, launcher: str) -> None:
    """Launcher, SyncBN and CPU-only distributed settings, shared by training and testing."""
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    cfg.launcher = launcher
    distributed = launcher != 'none'
    cuda = torch.cuda.is_available()
    if not distributed or not cuda:
        why = 'not distributed' if not distributed else 'no CUDA: SyncBN needs GPUs and NCCL'
        n = sum(convert_syncbn(cfg[key]) for key in list(cfg.keys()) if key != NOTES_KEY)
        if n:
            _note(cfg, f'SyncBN -> BN: converted {n} SyncBN norm layer config(s) to BN ({why})')
        if distributed and cfg.get('sync_bn', None):
            _note(cfg, f'sync_bn={cfg.sync_bn!r} ignored ({why})')
            cfg.sync_bn = None
    if distributed and not cuda:
        env_cfg = cfg.get('env_cfg', None) or ConfigDict()
        dist_cfg = env_cfg.get('dist_cfg', None) or ConfigDict()
        if dist_cfg.get('backend', 'nccl') != 'gloo':
            _note(cfg, f"distributed backend {dist_cfg.get('backend', 'nccl')!r} -> 'gloo' (no CUDA)")
        dist_cfg['backend'] = 'gloo'
        env_cfg['dist_cfg'] = dist_cfg
        cfg.env_cfg = env_cfg
        wrapper = cfg.get('model_wrapper_cfg', None)
        if wrapper is None:
            cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', broadcast_buffers=False,
                                         find_unused_parameters=cfg.get('find_unused_parameters', False))
        elif wrapper.get('type', 'MMDistributedDataParallel') in ('MMDistributedDataParallel',
                                                                 'mmengine.MMDistributedDataParallel'):
            wrapper['type'] = 'CPUDistributedDataParallel'
    # torch's DataLoader refuses persistent workers without workers; configs often set it for the GPU case
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader', None)
        if isinstance(loader, dict) and loader.get('persistent_workers') and not loader.get('num_workers', 0):
            loader['persistent_workers'] = False


# ----------------------------------------------------------------------------------------------------------------
# training / testing configs
# ----------------------------------------------------------------------------------------------------------------
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
        cfg.work_dir = _default_work_dir(cfg)

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
            _note(cfg, fallback_note)
        if latest is None:
            _note(cfg, f'resume: no checkpoint recorded in {marker}; training starts from the beginning')
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
        for path in _pretrained_checkpoints(cfg.model):
            check_checkpoint(path, "pretrained checkpoint (init_cfg type='Pretrained') "
                                   "[set it with --cfg-options model.backbone.init_cfg.checkpoint=PATH]")

    _distributed_settings(cfg, launcher)
    splits = ['train']
    if cfg.get('val_cfg', None) and cfg.get('val_dataloader', None) and cfg.get('val_evaluator', None):
        splits.append('val')
    check_dataset_paths(cfg, splits)
    return cfg


def _has_key(node: Any, key: str) -> bool:
    """Whether a config (sub)tree has ``key`` set to something other than None."""
    if isinstance(node, dict):
        return (node.get(key, None) is not None) or any(_has_key(v, key) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_key(v, key) for v in node)
    return False


def _find_pack_transform(pipeline: List[dict]) -> int:
    for i in range(len(pipeline) - 1, -1, -1):
        if str(pipeline[i].get('type', '')).split('.')[-1].startswith('Pack'):
            return i
    raise ValueError('cannot build a flip test-time-augmentation pipeline: the test pipeline has no Pack* '
                     'transform; add tta_pipeline to the config')


def _default_tta_pipeline(cfg: Config, task: str) -> List[dict]:
    """The test pipeline with its final Pack* transform replaced by horizontal flip / no flip."""
    ds = cfg.test_dataloader.dataset
    while isinstance(ds.get('dataset'), dict):
        ds = ds['dataset']
    pipeline = copy.deepcopy(list(ds.pipeline))
    i = _find_pack_transform(pipeline)
    pack = dict(pipeline[i])
    if 'meta_keys' in pack:
        pack['meta_keys'] = tuple(pack['meta_keys']) + tuple(k for k in ('flip', 'flip_direction')
                                                             if k not in pack['meta_keys'])
    flips = [dict(type='RandomFlip', prob=1., direction='horizontal'),
             dict(type='RandomFlip', prob=0., direction='horizontal')]
    pipeline[i] = dict(type='TestTimeAug', transforms=[flips, [pack]])
    return pipeline


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
        cfg.work_dir = _default_work_dir(cfg)
    check_checkpoint(checkpoint, 'checkpoint to test')
    cfg.load_from = checkpoint
    cfg.resume = False

    if show or show_dir:
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

    if tta:
        if 'tta_model' not in cfg:
            if task == 'mmdet':
                cfg.tta_model = dict(type='DetTTAModel',
                                     tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
            else:
                cfg.tta_model = dict(type='SegTTAModel')
            _note(cfg, f'--tta: no tta_model in the config, using {cfg.tta_model}')
        if (task == 'mmdet' and str(cfg.tta_model.get('type', '')).split('.')[-1] == 'DetTTAModel'
                and _has_key(cfg.model, 'mask_head')):
            raise ValueError('--tta: mmdet 3.x test-time augmentation (DetTTAModel) merges boxes only and fails '
                             'on instance masks, which this model predicts (it has a mask_head); test without '
                             '--tta, or set a tta_model that merges masks')
        if 'tta_pipeline' not in cfg:
            cfg.tta_pipeline = _default_tta_pipeline(cfg, task)
            _note(cfg, '--tta: no tta_pipeline in the config, using the test pipeline with horizontal flip')
        tta_model = copy.deepcopy(cfg.tta_model)
        tta_model['module'] = cfg.model
        cfg.model = tta_model
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    if out:
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

    _distributed_settings(cfg, launcher)
    check_dataset_paths(cfg, ['test'])
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# runner
# ----------------------------------------------------------------------------------------------------------------
@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU models: mmengine's Runner always passes
    ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for a module on the CPU."""

    def __init__(self, module, detect_anomalous_params: bool = False, **kwargs):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)


def _init_cpu_distributed(launcher: str, dist_cfg: dict) -> None:
    """mmengine's init_dist calls torch.cuda.set_device, which fails without a GPU: set the process group up here
    (the Runner then finds it initialised)."""
    env = os.environ
    if launcher == 'slurm':
        env['RANK'] = env['SLURM_PROCID']
        env['WORLD_SIZE'] = env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        if 'MASTER_ADDR' not in env:
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')
        env.setdefault('MASTER_PORT', str(dist_cfg.get('port', None) or 29500))
    elif launcher == 'mpi':
        env['RANK'] = env['OMPI_COMM_WORLD_RANK']
        env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
        env['LOCAL_RANK'] = env['OMPI_COMM_WORLD_LOCAL_RANK']
        env.setdefault('MASTER_ADDR', '127.0.0.1')
        env.setdefault('MASTER_PORT', '29500')
    kwargs = {}
    if dist_cfg.get('timeout', None) is not None:
        kwargs['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    torch.distributed.init_process_group(backend=dist_cfg.get('backend', 'gloo'), **kwargs)


class _PipelineWithFileNames:
    """Calls a dataset's pipeline; an error raised for a sample gets the sample's file names in its message."""

    KEYS = ('img_path', 'seg_map_path')

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __call__(self, data_info):
        try:
            return self.pipeline(data_info)
        except Exception as e:
            files = [str(data_info[k]) for k in self.KEYS if isinstance(data_info, dict) and data_info.get(k)]
            if not files or all(f in str(e) for f in files):
                raise
            raise DataError(f'failed to load {" / ".join(files)}: {type(e).__name__}: {e}') from e

    def __getattr__(self, name):  # transforms, __repr__ helpers, ...
        if name == 'pipeline':
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self):
        return repr(self.pipeline)


def exit_distributed_run() -> None:
    """End the process of a finished distributed run here, before the interpreter's and C++'s teardown.

    Why: a gloo process (CPU training) that has finished its run (checkpoint written, logs and visualizer closed
    by mmengine's LoggerHook) can still abort while C++ destroys its static objects ("terminate called without
    an active exception", SIGABRT, with no Python frame left), and torchrun then reports the whole run as failed.
    Measured here on two CPU processes training the demo: 1 run in 4 to 1 in 10, with or without
    ``destroy_process_group``. Single-process runs return normally and never reach the hard exit.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _leaves(dataset) -> List:
    inner = []
    if hasattr(dataset, 'datasets'):
        inner = list(dataset.datasets)
    elif hasattr(dataset, 'dataset'):
        inner = [dataset.dataset]
    return [leaf for d in inner for leaf in _leaves(d)] if inner else [dataset]


def _describe(dataset) -> str:
    ann = getattr(dataset, 'ann_file', None)
    prefix = getattr(dataset, 'data_prefix', None)
    parts = []
    if ann:
        parts.append(f'annotation file {ann}')
    if isinstance(prefix, dict) and prefix:
        parts.append(', '.join(f'{k}={v}' for k, v in prefix.items()))
    return f'{type(dataset).__name__}(' + '; '.join(parts) + ')'


def _describe_cfg(dataloader_cfg) -> str:
    parts = []
    ds_cfg = dataloader_cfg.get('dataset', None) if isinstance(dataloader_cfg, dict) else None
    for ds in _leaf_datasets(ds_cfg):
        root = ds.get('data_root', None)
        bits = []
        if ds.get('ann_file'):
            bits.append(f'annotation file {_join(root, ds["ann_file"])}')
        if isinstance(ds.get('data_prefix'), dict):
            bits.append(', '.join(f'{k}={_join(root, v)}' for k, v in ds['data_prefix'].items()
                                  if isinstance(v, str)))
        elif root:
            bits.append(f'data_root={root}')
        parts.append(f'{ds.get("type", "?")}(' + '; '.join(bits) + ')')
    return ', '.join(parts) or repr(ds_cfg)


_EMPTY_HINT = 'no images in its annotation file / image folder, or none left after filter_cfg'


def _checked_dataloader_builder(build):
    """Wrap ``Runner.build_dataloader``: dataset errors name the dataset's files, empty datasets are refused and
    data-pipeline errors name the sample's files."""

    def build_dataloader(dataloader, *args, **kwargs):
        if not isinstance(dataloader, dict):
            return build(dataloader, *args, **kwargs)
        try:
            loader = build(dataloader, *args, **kwargs)
        except DataError:
            raise
        except Exception as e:
            where = _describe_cfg(dataloader)
            if 'need at least one array to concatenate' in str(e):  # mmengine serialising an empty data list
                raise DataError(f'the dataset {where} has no samples ({_EMPTY_HINT})') from e
            raise DataError(f'could not build the dataset {where}: {type(e).__name__}: {e}') from e
        dataset = loader.dataset
        for leaf in _leaves(dataset):
            if len(leaf) == 0:
                raise DataError(f'the dataset {_describe(leaf)} has no samples ({_EMPTY_HINT})')
            if callable(getattr(leaf, 'pipeline', None)) and not isinstance(leaf.pipeline, _PipelineWithFileNames):
                leaf.pipeline = _PipelineWithFileNames(leaf.pipeline)
        return loader

    return build_dataloader


def build_runner(cfg: Config):
    """Build the Runner of a prepared config: the registry runner of mmdet / mmseg when the config sets
    ``runner_type``, mmengine's ``Runner.from_cfg`` otherwise (after ``init_default_scope``)."""
    task = task_of(cfg)
    cfg = copy.deepcopy(cfg)
    notes = list(cfg.pop(NOTES_KEY, None) or [])
    init_default_scope(task)

    launcher = cfg.get('launcher', 'none')
    if launcher != 'none' and not torch.cuda.is_available() and not torch.distributed.is_initialized():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}) or {})
        _init_cpu_distributed(launcher, dist_cfg)

    if 'runner_type' in cfg:
        if task == 'mmdet':
            from mmdet.registry import RUNNERS
        else:
            from mmseg.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
    runner.build_dataloader = _checked_dataloader_builder(runner.build_dataloader)
    install_checkpoint_rules(runner)  # load_from / resume / test checkpoints must fit the model
    for note in notes:
        runner.logger.info(note)
    return runner
