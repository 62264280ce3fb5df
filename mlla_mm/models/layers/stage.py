"""One stage of MLLA: a run of blocks at one resolution, then (except in the last stage) patch merging."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from .conv_layers import PatchMerging
from .mlla_block import MLLABlock


class MLLAStage(nn.Module):
    """Blocks ``blocks.0 ..`` and an optional ``downsample``, named as the official ``layers.i``.

    Args:
        embed_dims (int): Channels of the stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads.
        drop_path (Sequence[float]): Stochastic depth rate of each block.
        downsample (bool): Whether patch merging follows the blocks.
        with_cp (bool): Recompute each block in the backward pass instead of keeping its activations.
            Defaults to False.
        **block_kwargs: ``mlp_ratio``, ``qkv_bias``, ``drop`` of :class:`MLLABlock`.
    """

    def __init__(self, embed_dims: int, depth: int, num_heads: int, drop_path: Sequence[float],
                 downsample: bool, with_cp: bool = False, **block_kwargs):
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            MLLABlock(embed_dims, num_heads, drop_path=drop_path[i], **block_kwargs) for i in range(depth))
        self.downsample: Optional[PatchMerging] = PatchMerging(embed_dims) if downsample else None

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]
                ) -> Tuple[torch.Tensor, Tuple[int, int], torch.Tensor, Tuple[int, int]]:
        """Return the input of the next stage and its size, and this stage's output (before merging) and size."""
        for block in self.blocks:
            if self.with_cp and torch.is_grad_enabled():
                # Non-reentrant checkpointing: works with frozen inputs and keeps RNG state for drop path.
                x = cp.checkpoint(block, x, hw_shape, use_reentrant=False)
            else:
                x = block(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_shape = self.downsample(x, hw_shape)
        return x_down, down_shape, x, hw_shape
