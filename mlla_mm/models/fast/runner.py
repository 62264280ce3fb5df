"""Runs the reference modules' blocks, stages and convolutions on the fast path, reading their parameters.

The reference modules (:mod:`mlla_mm.models.layers`) hold the weights and know nothing of this: here a block
becomes a call of :func:`.functional_block.mlla_block` with its tensors, a stage's blocks one compiled call, and
the stem's and patch mergings' convolutions a compiled call where asked. Each compiled call falls back to a slower
path should compiling fail (:func:`.compile.step_down`), unless ``strict``.
"""
import functools
from typing import Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp

from ..layers import DropPath, MLLABlock, MLLAStage, PatchMerging, Stem
from ..layers.layout import image_to_tokens, tokens_to_image
from . import compile as compiling
from .config import has_triton_kernels
from .dwconv import dwconv3x3_stride2_tokens
from .functional_block import BLOCK_DIAGONAL_MAX_WIDTH, mlla_block, rope_cos_sin

# What the announcement names for the graphs compiled once per stage width
_PER_WIDTH = 'the blocks for training or compiled stages (one graph per stage width)'


# ---------------------------------------------------------------------------------------------------- block
def block_tensors(block: MLLABlock) -> tuple:
    """The block's tensors (and LayerNorm eps) in the order :func:`.functional_block.mlla_block` takes them."""
    attn, mlp = block.attn, block.mlp
    return (block.cpe1.weight, block.cpe1.bias, block.norm1.weight, block.norm1.bias, block.norm1.eps,
            block.act_proj.weight, block.act_proj.bias, block.in_proj.weight, block.in_proj.bias,
            block.dwc.weight, block.dwc.bias, attn.qk.weight, attn.qk.bias, attn.lepe.weight, attn.lepe.bias,
            block.out_proj.weight, block.out_proj.bias, block.cpe2.weight, block.cpe2.bias,
            block.norm2.weight, block.norm2.bias, block.norm2.eps,
            mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias)


def drops_path(block: MLLABlock) -> bool:
    """Whether the block's stochastic depth drops paths: a :class:`~mlla_mm.models.layers.DropPath` of a positive
    rate (at rate 0 the block holds an ``nn.Identity``)."""
    return isinstance(block.drop_path, DropPath) and block.drop_path.drop_prob > 0


def drop_path_mask(block: MLLABlock, x: torch.Tensor, residual_masks: bool) -> Optional[torch.Tensor]:
    """A per-sample ``(B, 1, 1)`` stochastic-depth factor as :class:`~mlla_mm.models.layers.DropPath` draws it, or
    None where no path is dropped. ``residual_masks``: ones instead of None in training, so that a block that drops
    no path (the first one, whose rate is 0) shares the compiled graph of the blocks that do."""
    if not (block.training and drops_path(block)):
        return x.new_ones(x.shape[0], 1, 1, dtype=torch.float32) if block.training and residual_masks else None
    return block.drop_path.draw_mask(x.new_empty(x.shape[0], 1, 1, dtype=torch.float32))


def residual_factors(block: MLLABlock, x: torch.Tensor, residual_masks: bool) -> tuple:
    """``(mask1, mask2)`` of :func:`.functional_block.mlla_block` for one call: fresh stochastic-depth draws."""
    return drop_path_mask(block, x, residual_masks), drop_path_mask(block, x, residual_masks)


def _compiled_block(cuda_graphs: bool, dynamic_weights: bool):
    """The compiled block function. ``dynamic_weights`` (inference only): one graph serves every stage width up to
    :data:`BLOCK_DIAGONAL_MAX_WIDTH` and one the wider ones. Training compiles once per stage width: with a
    backward, torch 2.11's Inductor fails an assertion in its tiling analysis on graphs with dynamic weights."""
    what = ('the blocks for inference (one graph for all widths, or two if wider than '
            f'{BLOCK_DIAGONAL_MAX_WIDTH} channels)' if dynamic_weights else _PER_WIDTH)
    return compiling.compile_once((cuda_graphs, dynamic_weights), what, mlla_block, cuda_graphs, dynamic_weights)


def call_block(x: torch.Tensor, height: int, width: int, *args, cfg: dict, **kwargs) -> torch.Tensor:
    """:func:`.functional_block.mlla_block`, compiled where :func:`.compile.compiles` says so, eager elsewhere.
    Should compiling fail, it warns and steps down once per failure: weights' shapes static (one graph per width),
    then no CUDA graphs, then eager."""
    if not compiling.compiles(x, cfg):
        return mlla_block(x, height, width, *args, **kwargs)
    graphs = cfg['cuda_graphs'] and 'graphs' not in compiling.FAILED
    dynamic_weights = not torch.is_grad_enabled() and 'dynamic-weights' not in compiling.FAILED
    x = compiling.own_tokens(x)
    try:
        out = _compiled_block(graphs, dynamic_weights)(x, height, width, *args, **kwargs)
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        step = 'dynamic-weights' if dynamic_weights else ('graphs' if graphs else 'compile')
        compiling.step_down(error, step, '', {'dynamic-weights': 'compiling once per stage width',
                                              'graphs': 'without CUDA graphs', 'compile': 'running eagerly'}[step],
                            cfg['strict'])
        return call_block(x, height, width, *args, cfg=cfg, **kwargs)
    return compiling.out_of_graph_pool(out, graphs)


def run_block(block: MLLABlock, x: torch.Tensor, hw_shape: Tuple[int, int], cfg: dict,
              residual_masks: bool = False) -> torch.Tensor:
    """``block(x, hw_shape)`` on the fast path (without its dropout)."""
    mask1, mask2 = residual_factors(block, x, residual_masks)
    return call_block(x.contiguous(), hw_shape[0], hw_shape[1], block.attn.num_heads, *block_tensors(block),
                      cfg=cfg, mask1=mask1, mask2=mask2, triton_dwconv=cfg['triton_dwconv'])


# ---------------------------------------------------------------------------------------------------- stage
def stage_blocks(x: torch.Tensor, height: int, width: int, num_heads: int, block_args: Sequence[tuple],
                 masks: Sequence[tuple], triton_dwconv: bool) -> torch.Tensor:
    """A stage's blocks, one after the other: ``block_args`` holds each block's tensors, ``masks`` its
    ``(mask1, mask2)``. The RoPE tables are formed once for all of them and passed in: formed inside the block,
    Inductor would fuse the angles into the kernel that rotates q and k and compute a ``cos`` and a ``sin`` for
    every element of every image."""
    block = compiling.block_region(mlla_block)
    rope_cos, rope_sin = rope_cos_sin(height, width, x.shape[-1], x.device, x.dtype)
    for args, (mask1, mask2) in zip(block_args, masks):
        x = block(x, height, width, num_heads, *args, mask1, mask2, triton_dwconv, rope_cos, rope_sin)
    return x


def _compiled_stage(cuda_graphs: bool):
    """The compiled :func:`stage_blocks`: the weights' shapes static (one graph per stage width), floats
    specialised (:func:`.compile.specialised_floats`)."""
    return compiling.compile_once(('stage', cuda_graphs), _PER_WIDTH, stage_blocks, cuda_graphs, False,
                                  **compiling.specialised_floats())


def stage_compiles(x: torch.Tensor, cfg: dict) -> bool:
    """Whether a stage's blocks run as one compiled call for ``x``: with ``compile_stages`` 'train' in training,
    'all' in inference too, where this torch has nested compile regions and compiling a stage has not failed.

    Without gradients only with 'all': there the blocks' own compiled calls share one graph for all widths up to
    :data:`BLOCK_DIAGONAL_MAX_WIDTH` and one above (dynamic weight shapes), which a nested region does not take,
    so a compiled stage costs one inference graph per width instead.
    """
    wanted = cfg['compile_stages'] == 'all' or (cfg['compile_stages'] == 'train' and torch.is_grad_enabled())
    return (wanted and compiling.compiles(x, cfg) and 'stages' not in compiling.FAILED
            and compiling.block_region(mlla_block) is not None)


def _stage_as_one_call(stage: MLLAStage, x: torch.Tensor, hw_shape: Tuple[int, int], cfg: dict,
                       residual_masks: bool) -> Optional[torch.Tensor]:
    """The stage's blocks as one compiled call, or None should compiling fail (the blocks then run one by one).
    Traced into a compiled backbone, the blocks are always one call (a nested region), with no call of their own.

    Why: per-block compiled calls leave a train step waiting on the host: a CUDA-graph launch, autograd and
    CUDA-graph bookkeeping and Dynamo's guard checks at every block, forward and backward."""
    num_heads = stage.blocks[0].attn.num_heads
    args = (x.contiguous(), hw_shape[0], hw_shape[1], num_heads, [block_tensors(block) for block in stage.blocks],
            [residual_factors(block, x, residual_masks) for block in stage.blocks], cfg['triton_dwconv'])
    if torch.compiler.is_compiling():
        return stage_blocks(*args)
    graphs = cfg['cuda_graphs'] and 'graphs' not in compiling.FAILED
    try:
        out = _compiled_stage(graphs)(compiling.own_tokens(args[0]), *args[1:])
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        compiling.step_down(error, 'stages', ' on a whole stage', 'each block is compiled on its own', cfg['strict'])
        return None
    return compiling.out_of_graph_pool(out, graphs)


def run_stage_blocks(stage: MLLAStage, x: torch.Tensor, hw_shape: Tuple[int, int], cfg: dict,
                     residual_masks: bool) -> torch.Tensor:
    """The stage's blocks on the fast path: as one compiled call where :func:`stage_compiles` (or while a whole
    backbone is traced), else block by block, recomputed in the backward with the stage's ``with_cp``."""
    checkpointed = stage.with_cp and torch.is_grad_enabled()
    if not checkpointed and (torch.compiler.is_compiling() or stage_compiles(x, cfg)):
        out = _stage_as_one_call(stage, x, hw_shape, cfg, residual_masks)
        if out is not None:
            return out
    for block in stage.blocks:
        if checkpointed:
            x = cp.checkpoint(run_block, block, x, hw_shape, cfg, residual_masks, use_reentrant=False)
        else:
            x = run_block(block, x, hw_shape, cfg, residual_masks)
    return x


# ---------------------------------------------------------------------------------------------------- convolutions
def _call(fn, *args):
    return fn(*args)


def run_convs(fn, x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """``fn(x)``, compiled with ``compile_convs``: the stem's and patch mergings' convolutions, whose BatchNorms and
    activations otherwise run as separate memory-bound passes over the largest tensors of the network. Without
    CUDA graphs (their BatchNorm buffers change in place); eager while a whole backbone is traced."""
    if not (cfg['compile_convs'] and compiling.compiles(x, cfg) and 'convs' not in compiling.FAILED) \
            or torch.compiler.is_compiling():
        return fn(x)
    compiled = compiling.compile_once('convs', 'the convolutions of the stem and the patch merging', _call,
                                      False, False)
    try:
        return compiled(fn, x)
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        compiling.step_down(error, 'convs', ' on the stem or patch merging', 'they run eagerly', cfg['strict'])
        return fn(x)


def run_stem(stem: Stem, x: torch.Tensor, cfg: dict) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """``stem(x)``, its convolutions through :func:`run_convs` (padded outside: the pad sizes are a modulo of the
    image size, which torch.compile with dynamic shapes fails to lower)."""
    x = run_convs(stem.convolve, stem.pad(x), cfg)
    return image_to_tokens(x), tuple(x.shape[-2:])


def merging_convs(merging: PatchMerging, image: torch.Tensor) -> torch.Tensor:
    """``merging.conv(image)`` with its stride-2 depthwise convolution through :func:`.dwconv.dwconv3x3_stride2_tokens`
    and the Triton kernels where they run (see :mod:`.dwconv`): cuDNN would set that convolution up again for every
    new image size. The 1x1 convolutions, activations and BatchNorm are the module's own."""
    expand, depthwise, project = merging.conv
    hidden = expand(image)
    height, width = hidden.shape[-2:]
    hidden = dwconv3x3_stride2_tokens(image_to_tokens(hidden), depthwise.conv.weight, depthwise.conv.bias, height,
                                      width, use_triton=True)
    return project(depthwise.act(hidden))


def run_patch_merging(merging: PatchMerging, x: torch.Tensor, hw_shape: Tuple[int, int],
                      cfg: dict) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """``merging(x, hw_shape)``, its convolutions through :func:`run_convs` (padded outside, as in :func:`run_stem`),
    with ``triton_dwconv`` (and Triton installed) as :func:`merging_convs`."""
    x, hw_shape = merging.pad(x, hw_shape)
    convs = functools.partial(merging_convs, merging) if has_triton_kernels(cfg) else merging.conv
    x = run_convs(convs, tokens_to_image(x, hw_shape), cfg)
    return image_to_tokens(x), tuple(x.shape[-2:])
