"""The options of MLLA's fast path (``MLLA(fast_cfg=...)``): their defaults and their checks."""
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional

from . import triton_dwconv

# compile_stages: each stage's blocks as one compiled call in training and inference ('all'), in training only
# ('train'), or never (False: one compiled call per block).
COMPILE_STAGES = ('all', 'train', False)

FAST_CFG_DEFAULTS: Mapping[str, Any] = MappingProxyType(dict(
    cuda_graphs=True,  # replay the compiled kernels as CUDA graphs
    triton_dwconv=True,  # the depthwise convolutions through this project's Triton kernels (CUDA)
    compile_convs=False,  # the stem's and the patch mergings' convolutions compiled (when not compiled whole)
    compile_stages='all',  # see COMPILE_STAGES
    compile_backbone=True,  # the whole backbone as one compiled call, for sides that are multiples of 32
    compile=True,  # False: the fused functions run eagerly, nothing is compiled
    compile_training_after=5000,  # with attn_impl='auto': images trained uncompiled before compiling
    compile_inference_after=2000,  # with attn_impl='auto': images inferred uncompiled before compiling
    uncompiled_graphs=0,  # image sizes whose uncompiled train steps replay as CUDA graphs (training at one size)
    uncompiled_inference_graphs=8,  # image sizes whose uncompiled inference replays as CUDA graphs
    strict=False,  # True: a compiler failure raises instead of falling back to a slower path
))


def check_fast_cfg(fast_cfg: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """``fast_cfg`` over the defaults, as a new dict; unknown keys and bad values raise a ValueError naming them."""
    if fast_cfg is None:
        fast_cfg = {}
    if not isinstance(fast_cfg, dict):
        raise ValueError(f'fast_cfg must be a dict of fast-path options or None, got {type(fast_cfg).__name__}')
    unknown = sorted(set(fast_cfg) - set(FAST_CFG_DEFAULTS))
    if unknown:
        raise ValueError(f'fast_cfg: unknown key {unknown[0]!r}; the keys are {sorted(FAST_CFG_DEFAULTS)}')
    cfg = {**FAST_CFG_DEFAULTS, **fast_cfg}
    for key, value in cfg.items():
        if key == 'compile_stages':
            if not any(value is allowed or (isinstance(value, str) and value == allowed) for allowed in COMPILE_STAGES):
                raise ValueError(f'fast_cfg: compile_stages must be one of {COMPILE_STAGES}, got {value!r}')
        elif key in ('compile_training_after', 'compile_inference_after'):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f'fast_cfg: {key} must be a number of images >= 0 or None (never), got {value!r}')
        elif key in ('uncompiled_graphs', 'uncompiled_inference_graphs'):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f'fast_cfg: {key} must be a number of image sizes >= 0, got {value!r}')
        elif not isinstance(value, bool):
            raise ValueError(f'fast_cfg: {key} must be True or False, got {value!r}')
    return cfg


def has_triton_kernels(cfg: Mapping[str, Any]) -> bool:
    """Whether the fast path with the options ``cfg`` runs its depthwise convolutions through the Triton kernels
    (``triton_dwconv`` on and Triton installed; on CUDA inputs)."""
    return bool(cfg['triton_dwconv']) and triton_dwconv.available()
