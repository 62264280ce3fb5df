"""The MLLA block: Mamba's macro design with linear attention in place of the selective scan."""
from typing import Tuple

import torch
import torch.nn as nn
from timm.layers import DropPath

from .fast_block import check_attn_impl, run_block_fast, use_fast_path
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
        attn_impl (str): ``'plain'``: these modules, the reference (and the CPU path); ``'fast'``: the same
            computation as one function (:mod:`.fast_block`), compiled with ``torch.compile`` on CUDA; ``'auto'``:
            fast for CUDA tensors, plain otherwise. The parameters are the same either way. Defaults to ``'plain'``.
        cuda_graphs (bool): On the fast path, replay the compiled kernels as CUDA graphs (torch.compile's
            ``'reduce-overhead'`` mode). Its parameter gradients then live in the graphs' memory until the next
            step: accumulating them over steps needs :meth:`MLLA.forward`'s guard. Defaults to False.
        triton_dwconv (bool): On the fast path, the depthwise convolutions through this project's Triton kernels
            (:mod:`.triton_dwconv`) on CUDA instead of cuDNN. Defaults to False.
        residual_masks (bool): On the fast path in training, pass per-sample residual factors even where
            ``drop_path`` is 0 (ones, then), so that this block shares the compiled graph of the blocks that do drop
            paths instead of compiling one of its own. :class:`MLLA` sets it when its ``drop_path_rate`` is
            positive (the first block's rate is 0). Defaults to False.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., drop_path: float = 0., attn_impl: str = 'plain', cuda_graphs: bool = False,
                 triton_dwconv: bool = False, residual_masks: bool = False):
        super().__init__()
        self.embed_dims = embed_dims
        self.attn_impl = check_attn_impl(attn_impl)
        self.cuda_graphs = cuda_graphs
        self.residual_masks = residual_masks
        self.triton_dwconv = triton_dwconv
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
        if self.takes_fast_path(x):
            return self.forward_fast(x, hw_shape)
        return self.forward_plain(x, hw_shape)

    def takes_fast_path(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward` runs ``x`` through the fast path (which has no dropout)."""
        return use_fast_path(self.attn_impl, x) and not (self.training and self.mlp.drop.p > 0)

    def _drop_path_mask(self, x: torch.Tensor):
        """Per-sample ``(B, 1, 1)`` stochastic-depth factor as :class:`timm.layers.DropPath` draws it, or None
        (ones with ``residual_masks``) where no path is dropped."""
        if not (self.training and isinstance(self.drop_path, DropPath) and self.drop_path.drop_prob > 0):
            return x.new_ones(x.shape[0], 1, 1, dtype=torch.float32) if self.training and self.residual_masks else None
        keep = 1 - self.drop_path.drop_prob
        mask = x.new_empty(x.shape[0], 1, 1, dtype=torch.float32).bernoulli_(keep)
        return mask.div_(keep) if self.drop_path.scale_by_keep else mask

    def fast_arguments(self) -> tuple:
        """The block's tensors (and LayerNorm eps) in the order :func:`.fast_block.mlla_block_fast` takes them."""
        attn, mlp = self.attn, self.mlp
        return (self.cpe1.weight, self.cpe1.bias, self.norm1.weight, self.norm1.bias, self.norm1.eps,
                self.act_proj.weight, self.act_proj.bias, self.in_proj.weight, self.in_proj.bias,
                self.dwc.weight, self.dwc.bias, attn.qk.weight, attn.qk.bias, attn.lepe.weight, attn.lepe.bias,
                self.out_proj.weight, self.out_proj.bias, self.cpe2.weight, self.cpe2.bias,
                self.norm2.weight, self.norm2.bias, self.norm2.eps,
                mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias)

    def forward_fast(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """The block through :func:`.fast_block.mlla_block_fast` (same parameters, same result)."""
        mask1, mask2 = self.residual_factors(x)
        return run_block_fast(x.contiguous(), hw_shape[0], hw_shape[1], self.attn.num_heads, *self.fast_arguments(),
                              mask1=mask1, mask2=mask2, triton_dwconv=self.triton_dwconv, cuda_graphs=self.cuda_graphs)

    def residual_factors(self, x: torch.Tensor) -> tuple:
        """``(mask1, mask2)`` of :func:`.fast_block.mlla_block_fast` for this call: fresh stochastic-depth draws."""
        return self._drop_path_mask(x), self._drop_path_mask(x)

    def forward_plain(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """The reference computation, module by module."""
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
