"""Segmentation heads for mmseg, registered in mmseg's ``MODELS`` where mmseg is installed.

The heads subclass mmseg's, and importing ``mmseg.models`` takes seconds, which a detection job would pay for
nothing at ``import mlla_mm``. So their module is imported only with mmseg's own models: it is added to the modules
that mmseg's registry imports before it first looks a type up (mmengine's registry ``locations``), or imported at
once where mmseg's models are imported already. ``from mlla_mm.models.decode_heads import MatmulResizeUPerHead``
imports it too. A registry whose parent is mmseg's (a codebase built on mmseg) finds the heads once mmseg's models
are imported, as it finds mmseg's own.
"""
import sys
from importlib import import_module
from importlib.util import find_spec

from .matmul_resize import bilinear_resize

# each head here and the mmseg head it computes, with the same parameters (FLOP counts use mmseg's: the matrix
# products of a resize are an interpolation's, which the paper's counting leaves out)
MMSEG_EQUIVALENTS = {'MatmulResizeUPerHead': 'UPerHead', 'MatmulResizeFCNHead': 'FCNHead'}

HEADS_MODULE = f'{__name__}.matmul_resize_heads'
HEADS_NAMES = ('MatmulResizeFCNHead', 'MatmulResizeUPerHead', 'pixel_accuracy')


def register_with_mmseg() -> None:
    """Have mmseg's ``MODELS`` import the heads' module with its own models (see the module's docstring); nothing
    where mmseg is not installed. Idempotent."""
    try:
        from mmseg.registry import MODELS
    except ImportError:  # mmseg absent: the backbone alone still serves mmdet
        return
    locations = getattr(MODELS, '_locations', None)
    if 'mmseg.models' in sys.modules or getattr(MODELS, '_imported', True) or not isinstance(locations, list):
        import_module(HEADS_MODULE)  # mmseg's models are imported already (or this mmengine imports no locations)
    elif HEADS_MODULE not in locations:
        locations.append(HEADS_MODULE)


def __getattr__(name: str):
    if name in HEADS_NAMES:
        return getattr(import_module(HEADS_MODULE), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


register_with_mmseg()

__all__ = ['MMSEG_EQUIVALENTS', 'bilinear_resize', 'register_with_mmseg']
if find_spec('mmseg') is not None:  # the heads need mmseg
    __all__ += HEADS_NAMES
