"""Launcher settings shared by training and testing: SyncBN where it cannot run becomes BN, and distributed runs
work on CPU-only machines (gloo backend, DDP without device ids, a process group set up without CUDA)."""
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .config import NOTES_KEY, add_note

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')


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


def apply_launcher(cfg: Config, launcher: str) -> None:
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
            add_note(cfg, f'SyncBN -> BN: converted {n} SyncBN norm layer config(s) to BN ({why})')
        if distributed and cfg.get('sync_bn', None):
            add_note(cfg, f'sync_bn={cfg.sync_bn!r} ignored ({why})')
            cfg.sync_bn = None
    if distributed and not cuda:
        env_cfg = cfg.get('env_cfg', None) or ConfigDict()
        dist_cfg = env_cfg.get('dist_cfg', None) or ConfigDict()
        if dist_cfg.get('backend', 'nccl') != 'gloo':
            add_note(cfg, f"distributed backend {dist_cfg.get('backend', 'nccl')!r} -> 'gloo' (no CUDA)")
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


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU models: mmengine's Runner always passes
    ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for a module on the CPU."""

    def __init__(self, module, detect_anomalous_params: bool = False, **kwargs):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)


def init_cpu_distributed(launcher: str, dist_cfg: dict) -> None:
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


def exit_distributed_run() -> None:
    """End the process of a finished distributed run here, before the interpreter's and C++'s teardown.

    Why: a gloo process (CPU training) that has finished its run (checkpoint written, logs and visualizer closed
    by mmengine's LoggerHook) can still abort while C++ destroys its static objects ("terminate called without
    an active exception", SIGABRT, with no Python frame left), and torchrun then reports the whole run as failed.
    It happens with or without ``destroy_process_group``. Single-process runs return normally and never reach the
    hard exit.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
