"""The MLLA block: Mamba's macro design with linear attention in place of the selective scan."""
from typing import Tuple

import torch
import torch.nn as nn

from .drop_path import DropPath
from .layout import image_to_tokens, tokens_to_image
from .linear_attention import LinearAttention


class Mlp(nn.Module):
    """Two-layer feed-forward network (keys ``fc1`` / ``fc2`` as in the official checkpoints)."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MLLABlock(nn.Module):
    """One MLLA block on ``(B, H*W, C)`` tokens.

    ``x = x + CPE1(x)``; then the Mamba-like token mixer
    ``x = x + out_proj(LinearAttention(SiLU(DWConv(in_proj(LN(x))))) * SiLU(act_proj(LN(x))))``
    (the SiLU branch is the output gate that replaces Mamba's), then ``x = x + CPE2(x)`` and
    ``x = x + MLP(LN(x))``. CPE are 3x3 depthwise convolutions, the conditional position encodings.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden size of the MLP over ``embed_dims``. Defaults to 4.
        qkv_bias (bool): Bias in the query/key projection. Defaults to True.
        drop (float): Dropout after the MLP layers. Defaults to 0.
        drop_path (float): Stochastic depth of both residual branches. Defaults to 0.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., drop_path: float = 0.):
        super().__init__()
        self.embed_dims = embed_dims
        self.cpe1 = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.in_proj = nn.Linear(embed_dims, embed_dims)
        self.act_proj = nn.Linear(embed_dims, embed_dims)
        self.dwc = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.act = nn.SiLU()
        self.attn = LinearAttention(embed_dims, num_heads, qkv_bias=qkv_bias)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.cpe2 = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """``x``: ``(B, H*W, C)`` tokens of an ``hw_shape`` grid; returns the same shape."""
        x = x + image_to_tokens(self.cpe1(tokens_to_image(x, hw_shape)))
        shortcut = x

        x = self.norm1(x)
        gate = self.act(self.act_proj(x))
        x = tokens_to_image(self.in_proj(x), hw_shape)
        x = image_to_tokens(self.act(self.dwc(x)))
        x = self.attn(x, hw_shape)
        x = shortcut + self.drop_path(self.out_proj(x * gate))

        x = x + image_to_tokens(self.cpe2(tokens_to_image(x, hw_shape)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
