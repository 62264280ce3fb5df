"""MLLA's fast path: the reference modules' computation as fused functions, compiled by ``torch.compile`` on CUDA.

It depends on the reference (:mod:`mlla_mm.models.layers`), never the reverse: :func:`forward_backbone` runs an
:class:`~mlla_mm.models.backbones.MLLA` module by reading its parameters. ``MLLA(attn_impl=..., fast_cfg=...)``
chooses it, once per forward.
"""
from .backbone import forward_backbone
from .config import COMPILE_STAGES, FAST_CFG_DEFAULTS, check_fast_cfg, has_triton_kernels

__all__ = ['forward_backbone', 'check_fast_cfg', 'has_triton_kernels', 'COMPILE_STAGES', 'FAST_CFG_DEFAULTS']
