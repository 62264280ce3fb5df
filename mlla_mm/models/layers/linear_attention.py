"""Linear attention with RoPE and LePE, the token mixer of the MLLA block."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import apply_rope, rope_tables


class LinearAttention(nn.Module):
    """Multi-head linear attention over a (H, W) token grid.

    For each head, with the kernel ``phi(x) = elu(x) + 1`` (positive, so the normaliser never changes sign)::

        out_i = phi(q_i)' . sum_j R(k_j) v_j'  /  (phi(q_i) . mean_j phi(k_j))  +  LePE(v)_i

    where ``R`` is RoPE applied to ``phi(q)`` and ``phi(k)``. The cost is linear in the number of tokens ``n``:
    the ``d x d`` matrix ``K'V`` is formed once per head. Both of its factors are scaled by ``n ** -0.5`` so the
    sum stays of order one at any resolution. Values are the input itself (no value projection), and the
    locally-enhanced positional encoding (LePE) is a 3x3 depthwise convolution of the values.

    Args:
        embed_dims (int): Channels ``C``; divisible by ``num_heads`` and by 4 (RoPE).
        num_heads (int): Heads; each works on ``C / num_heads`` channels.
        qkv_bias (bool): Bias in the query/key projection. Defaults to True.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        # Named as in the official model so its checkpoints load: `qk` projects to queries and keys together.
        self.qk = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.lepe = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """``x``: ``(B, H*W, C)`` tokens in row-major order; returns the same shape."""
        b, n, c = x.shape
        h, w = hw_shape
        heads, head_dims = self.num_heads, c // self.num_heads

        q, k = (F.elu(self.qk(x)) + 1.0).chunk(2, dim=-1)
        v = x
        cos, sin = rope_tables(h, w, c, x.device)
        q_rope, k_rope = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        def split_heads(t):  # (B, N, C) -> (B, heads, N, head_dims)
            return t.reshape(b, n, heads, head_dims).transpose(1, 2)

        q, k, v, q_rope, k_rope = map(split_heads, (q, k, v, q_rope, k_rope))

        normaliser = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)  # (B, heads, N, 1)
        scale = n ** -0.5
        kv = (k_rope.transpose(-2, -1) * scale) @ (v * scale)  # (B, heads, d, d)
        out = q_rope @ kv * normaliser

        out = out.transpose(1, 2).reshape(b, n, c)
        v_image = x.transpose(1, 2).reshape(b, c, h, w)
        return out + self.lepe(v_image).flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f'embed_dims={self.embed_dims}, num_heads={self.num_heads}'
