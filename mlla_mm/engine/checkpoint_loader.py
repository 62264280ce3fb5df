"""mmengine's checkpoint loading, made to work on torch >= 2.6 without unsafe unpickling.

mmengine 0.10.7 reads checkpoints with plain ``torch.load(file)``. Since torch 2.6 that means
``weights_only=True``, which rejects mmengine's own checkpoints (their message hub holds ``HistoryBuffer`` objects
and numpy scalars), so ``resume`` and ``load_from`` fail. Passing ``weights_only=False`` would let any downloaded
file run code. Here the loaders of local files and of http(s) URLs are replaced by ones that use
:func:`mlla_mm.checkpoint.safe_torch_load` (a restricted unpickler; TorchScript and legacy tar files refused), and
URLs are fetched with :func:`mlla_mm.checkpoint.download.download_checkpoint` (one cache entry per URL).
"""
import os

from mmengine.dist import get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint.download import download_checkpoint
from ..checkpoint.safe_load import safe_torch_load


def load_local_checkpoint(filename, map_location=None):
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return safe_torch_load(filename, map_location=map_location)


def load_url_checkpoint(filename, map_location=None):
    """Download ``filename`` (an http(s) URL) into the checkpoint cache and load it safely.

    Every rank calls the download: a file lock lets one process per machine download while the others wait and
    then reuse the file, so no barrier is needed (and a failed download fails every rank alike).
    """
    path = download_checkpoint(filename, quiet=get_dist_info()[0] != 0)
    return safe_torch_load(path, map_location=map_location)


def install_safe_checkpoint_loader():
    """Make mmengine load local and http(s) checkpoints through :func:`safe_torch_load`. Idempotent."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_url_checkpoint, force=True)
