"""The MLLA backbone on the fast path: :func:`forward_backbone` runs a reference :class:`MLLA` module's stem, stages
and output norms through :mod:`.runner`, or the whole backbone as one compiled call.

Why the whole backbone as one call: with compiled stages a train step still runs the stem, the patch mergings and
the output norms eagerly between the stages' CUDA-graph replays, and waits on the host. Compiled whole, a step is
one replay forward and one backward, and the BatchNorms fuse with their neighbours.
"""
from typing import Optional, Tuple

import torch

from . import compile as compiling
from . import eager_graphs, inference_graphs
from .functional_block import mlla_block
from .runner import drops_path, run_patch_merging, run_stage_blocks, run_stem


def forward_backbone(model, x: torch.Tensor, cfg: dict) -> Tuple[torch.Tensor, ...]:
    """``model(x)`` (an :class:`~mlla_mm.models.backbones.MLLA` on a checked input) on the fast path with the
    options ``cfg`` (``model.fast_cfg``); the same outputs as its plain forward, without dropout."""
    if model.with_cp:  # recomputing a block in the backward would record CUDA graphs inside a graph's backward
        cfg = {**cfg, 'cuda_graphs': False}
    if cfg['cuda_graphs'] and model.training and torch.is_grad_enabled() and (
            compiling.compiles(x, cfg) or eager_graphs.holds_graphs(model)):
        _move_accumulated_grads_out_of_graphs(model)
    # Channels-last images: the stem's convolutions and BatchNorms then run without layout conversions, and its
    # output turns into (B, H*W, C) tokens as a view.
    x = x.contiguous(memory_format=torch.channels_last)
    if compiling.compiles(x, cfg):
        if model.training and torch.is_grad_enabled():
            eager_graphs.release(model)
        elif not torch.is_grad_enabled():
            inference_graphs.release(model)
    if _compiles_whole(model, x, cfg):
        outs = _run_whole(model, x, cfg)
        if outs is not None:
            return outs
    for graphs in (eager_graphs, inference_graphs):
        if graphs.applies(model, x, cfg):
            outs = graphs.run(model, x, cfg, features)
            if outs is not None:
                return outs
    return features(model, x, cfg)


def features(model, x: torch.Tensor, cfg: dict) -> Tuple[torch.Tensor, ...]:
    """The backbone stage by stage on the fast path; also what the whole compiled backbone traces."""
    residual_masks = model.training and any(drops_path(block) for stage in model.layers for block in stage.blocks)
    x, hw_shape = run_stem(model.patch_embed, x, cfg)
    x = model.pos_drop(x)
    outs = []
    for i, stage in enumerate(model.layers):
        out = run_stage_blocks(stage, x, hw_shape, cfg, residual_masks)
        if i in model.out_indices:
            outs.append(model.output_map(i, out, hw_shape))
        if stage.downsample is not None:
            x, hw_shape = run_patch_merging(stage.downsample, out, hw_shape, cfg)
    return tuple(outs)


def _move_accumulated_grads_out_of_graphs(model) -> None:
    """Copy gradients still held from the last backward into memory of their own, before the graphs run.

    Why: with CUDA graphs, the blocks' parameter gradients are handed to ``param.grad`` in the graphs' memory pool,
    which the next replay reuses. A train step normally drops them first (``zero_grad``), and this costs nothing.
    Accumulating over steps (mmengine's ``accumulative_counts``) keeps them, and the next backward would add to
    overwritten memory; copied here, before any replay of this step, they stay valid.
    """
    eager_graphs.grads_into_own_memory(model.parameters())


def largest_stride(model) -> int:
    """The last stage's stride (32 for MLLA): sides that are multiples of it need no padding at any stage."""
    return model.patch_embed.patch_size * 2 ** (model.num_stages - 1)


def _compiles_whole(model, x: torch.Tensor, cfg: dict) -> bool:
    """Whether ``compile_backbone`` applies to ``x``: sides that need no padding at any stage (the pad sizes are a
    modulo of the image size, which torch.compile with dynamic shapes fails to lower), no checkpointing, nested
    compile regions available, compiling the backbone has not failed in this process, and no backward graph that
    this torch would compile once per image size (:func:`.compile.sizes_specialise_convolution_backward`)."""
    stride = largest_stride(model)
    return (cfg['compile_backbone'] and not model.with_cp and x.shape[-2] % stride == 0
            and x.shape[-1] % stride == 0 and compiling.compiles(x, cfg) and 'backbone' not in compiling.FAILED
            and compiling.block_region(mlla_block) is not None
            and not (torch.is_grad_enabled() and compiling.sizes_specialise_convolution_backward()))


def _traced_features(model, tiles: torch.Tensor, cfg: dict) -> Tuple[torch.Tensor, ...]:
    """:func:`features` of the images that :func:`_as_tiles` cut."""
    batch, channels, rows, tile_h, cols, tile_w = tiles.shape
    return features(model, tiles.reshape(batch, channels, rows * tile_h, cols * tile_w), cfg)


def _as_tiles(x: torch.Tensor, tile: int) -> torch.Tensor:
    """``(B, C, H, W)`` images whose sides are multiples of ``tile`` as ``(B, C, H / tile, tile, W / tile, tile)``,
    in memory of their own, with the channels and the two ``tile`` sizes marked static for Dynamo.

    Why: compiled with dynamic sizes, the graph's symbols are then the numbers of tiles, and every size in the
    backbone is a product of them, where from ``H`` itself each stage nests another floor division, carried through
    every index of every kernel (and sympy's time to compile grows with it). A view of ``x`` would be guarded on its
    base's layout (:func:`.compile.own_tokens`).
    """
    batch, channels, height, width = x.shape
    tiles = x.view(batch, channels, height // tile, tile, width // tile, tile).clone()
    for dim in (1, 3, 5):
        torch._dynamo.mark_static(tiles, dim)
    return tiles


def _compiled_whole(cuda_graphs: bool):
    """The compiled :func:`_traced_features`: the weights' shapes static, floats specialised, sizes dynamic. Dynamo
    traces the modules and treats their parameters and buffers as static inputs, so CUDA graph trees take the
    BatchNorms' in-place updates of their running statistics; the blocks stay one nested region per stage width."""
    return compiling.compile_once(('backbone', cuda_graphs), 'the whole backbone (one block graph per stage width)',
                                  _traced_features, cuda_graphs, False,
                                  inductor_options=compiling.backbone_inductor_options(),
                                  **compiling.specialised_floats())


def _run_whole(model, x: torch.Tensor, cfg: dict) -> Optional[Tuple[torch.Tensor, ...]]:
    """The backbone as one compiled call, or None should compiling fail: it then runs stage by stage from now on."""
    graphs = cfg['cuda_graphs'] and 'graphs' not in compiling.FAILED
    try:
        outs = _compiled_whole(graphs)(model, _as_tiles(x, largest_stride(model)), cfg)
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        compiling.step_down(error, 'backbone', ' on the whole backbone', 'the backbone runs stage by stage',
                            cfg['strict'])
        return None
    return tuple(compiling.out_of_graph_pool(out, graphs) for out in outs)
