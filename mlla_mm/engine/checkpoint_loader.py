"""mmengine's checkpoint loading, made to work on torch >= 2.6 without unsafe unpickling.

mmengine 0.10.7 reads checkpoints with plain ``torch.load(file)``. Since torch 2.6 that means
``weights_only=True``, which rejects mmengine's own checkpoints (their message hub holds ``HistoryBuffer`` objects
and numpy scalars), so ``resume`` and ``load_from`` fail. Passing ``weights_only=False`` would let any downloaded
file run code. Here the loaders of local files and of http(s) URLs are replaced by ones that use
:func:`mlla_mm.checkpoint.safe_torch_load`: torch's restricted unpickler plus known plain-data classes.
"""
import os

import torch
from mmengine.dist import get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint.official import resolve_checkpoint
from ..checkpoint.safe_load import safe_torch_load


def load_local_checkpoint(filename, map_location=None):
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return safe_torch_load(filename, map_location=map_location)


def load_url_checkpoint(filename, map_location=None):
    # Download on rank 0 first so that the other ranks find the file in the cache.
    rank, world_size = get_dist_info()
    if rank == 0:
        path = resolve_checkpoint(filename)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = resolve_checkpoint(filename)
    return safe_torch_load(path, map_location=map_location)


def install_safe_checkpoint_loader():
    """Make mmengine load local and http(s) checkpoints through :func:`safe_torch_load`. Idempotent."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_url_checkpoint, force=True)
