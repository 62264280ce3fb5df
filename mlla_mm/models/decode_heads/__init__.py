"""Segmentation heads for mmseg (registered only where mmseg is installed)."""
from .matmul_resize import bilinear_resize

# each head here and the mmseg head it computes, with the same parameters (FLOP counts use mmseg's: the matrix
# products of a resize are an interpolation's, which the paper's counting leaves out)
MMSEG_EQUIVALENTS = {'MatmulResizeUPerHead': 'UPerHead', 'MatmulResizeFCNHead': 'FCNHead'}

try:
    from .matmul_resize_heads import MatmulResizeFCNHead, MatmulResizeUPerHead, pixel_accuracy
except ImportError:  # mmseg absent: the backbone alone still serves mmdet
    __all__ = ['MMSEG_EQUIVALENTS', 'bilinear_resize']
else:
    __all__ = ['MMSEG_EQUIVALENTS', 'bilinear_resize', 'MatmulResizeFCNHead', 'MatmulResizeUPerHead',
               'pixel_accuracy']
