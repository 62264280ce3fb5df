"""One stage of MLLA: a run of blocks at one resolution, then (except in the last stage) patch merging."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from .conv_layers import PatchMerging
from .fast_block import run_stage_fast, stage_compiles, use_fast_path
from .mlla_block import MLLABlock


# MLLA's and MLLAStage's compile_stages: never, in training (True is 'train'), in training and inference
COMPILE_STAGES = (False, True, 'train', 'all')


class MLLAStage(nn.Module):
    """Blocks ``blocks.0 ..`` and an optional ``downsample``, named as the official ``layers.i``.

    Args:
        embed_dims (int): Channels of the stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads.
        drop_path (Sequence[float]): Stochastic depth rate of each block.
        downsample (bool): Whether patch merging follows the blocks.
        with_cp (bool): Recompute each block in the backward pass instead of keeping its activations.
        attn_impl (str): ``'auto'``, ``'plain'`` or ``'fast'``, see :class:`MLLABlock`. Defaults to ``'plain'``.
        cuda_graphs (bool): CUDA graphs on the fast path, see :class:`MLLABlock`; not combined with ``with_cp``
            (recomputing a block inside backward would record graphs inside a graph's backward). Defaults to False.
        triton_dwconv (bool): Triton depthwise convolutions on the fast path, see :class:`MLLABlock`.
        compile_convs (bool): On the fast path, run the patch merging's convolutions compiled
            (:func:`.fast_block.run_compiled`). Defaults to False.
        compile_stages (bool | str): On the fast path, run the blocks as one compiled call
            (:func:`.fast_block.run_stage_fast`) instead of one per block: ``'train'`` (or ``True``) in training,
            ``'all'`` in inference too, ``False`` never; never with ``with_cp``. Defaults to False.
        **block_kwargs: ``mlp_ratio``, ``qkv_bias``, ``drop``, ``residual_masks`` of :class:`MLLABlock`.
    """

    def __init__(self, embed_dims: int, depth: int, num_heads: int, drop_path: Sequence[float],
                 downsample: bool, with_cp: bool = False, attn_impl: str = 'plain', cuda_graphs: bool = False,
                 triton_dwconv: bool = False, compile_convs: bool = False,
                 compile_stages: Union[bool, str] = False,
                 **block_kwargs):
        super().__init__()
        self.with_cp = with_cp
        self.attn_impl = attn_impl
        self.compile_convs = compile_convs
        if compile_stages not in COMPILE_STAGES:
            raise ValueError(f'compile_stages must be one of {COMPILE_STAGES}, got {compile_stages!r}')
        self.compile_stages = 'train' if compile_stages is True else compile_stages
        self.blocks = nn.ModuleList(
            MLLABlock(embed_dims, num_heads, drop_path=drop_path[i], attn_impl=attn_impl,
                      cuda_graphs=cuda_graphs and not with_cp, triton_dwconv=triton_dwconv, **block_kwargs)
            for i in range(depth))
        self.downsample: Optional[PatchMerging] = PatchMerging(embed_dims) if downsample else None

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]
                ) -> Tuple[torch.Tensor, Tuple[int, int], torch.Tensor, Tuple[int, int]]:
        """Return the input of the next stage and its size, and this stage's output (before merging) and size."""
        blocks_out = self._blocks_as_one_call(x, hw_shape)
        if blocks_out is not None:
            x = blocks_out
        else:
            for block in self.blocks:
                if self.with_cp and torch.is_grad_enabled():
                    # Non-reentrant checkpointing: works with frozen inputs and keeps RNG state for drop path.
                    x = cp.checkpoint(block, x, hw_shape, use_reentrant=False)
                else:
                    x = block(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        compiled = self.compile_convs and use_fast_path(self.attn_impl, x)
        x_down, down_shape = self.downsample(x, hw_shape, compiled=compiled)
        return x_down, down_shape, x, hw_shape

    def _blocks_as_one_call(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> Optional[torch.Tensor]:
        """The blocks through :func:`.fast_block.run_stage_fast`, or None where each block runs on its own: not the
        fast path, checkpointing (it recomputes block by block), or no compiled stage to be had (among others,
        without gradients unless ``compile_stages='all'``: :func:`.fast_block.stage_compiles`). Traced by
        ``torch.compile`` (MLLA's compiled backbone, ``compile_backbone``), the blocks on the fast path are always
        one call, whatever ``compile_stages`` says."""
        wanted = torch.compiler.is_compiling() or (
            self.compile_stages and stage_compiles(x, in_inference=self.compile_stages == 'all'))
        if self.with_cp or not wanted or not all(block.takes_fast_path(x) for block in self.blocks):
            return None  # before drawing the masks below, so that the blocks' own path draws the same ones
        first = self.blocks[0]
        return run_stage_fast(x.contiguous(), hw_shape[0], hw_shape[1], first.attn.num_heads,
                              [block.fast_arguments() for block in self.blocks],
                              [block.residual_factors(x) for block in self.blocks],
                              cuda_graphs=first.cuda_graphs, triton_dwconv=first.triton_dwconv)
