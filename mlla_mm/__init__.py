"""mlla-mm: the MLLA backbone (Mamba-Like Linear Attention) for OpenMMLab detection and segmentation.

``import mlla_mm`` (or ``custom_imports=dict(imports=['mlla_mm'])`` in a config) registers ``type='MLLA'`` in the
model registries, makes mmengine's checkpoint loading work on torch >= 2.6 without unsafe unpickling, and makes
auto resume fall back to the newest complete checkpoint when ``last_checkpoint`` is empty or names a broken file.
"""
from .engine import install_resume_fallback, install_safe_checkpoint_loader
from .models import MLLA

__version__ = '0.1.0'

install_safe_checkpoint_loader()
install_resume_fallback()

__all__ = ['MLLA', '__version__']
