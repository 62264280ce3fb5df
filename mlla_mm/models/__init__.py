from . import decode_heads  # noqa: F401  registers the segmentation heads where mmseg is installed
from .backbones import MLLA

__all__ = ['MLLA']
