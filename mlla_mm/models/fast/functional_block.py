"""The MLLA block as one pure function of its tensors, written so that TorchInductor fuses it into few kernels.

It computes what :class:`~mlla_mm.models.layers.MLLABlock` computes (without dropout), with these differences of
form, not of result:

- the block runs in the input (autocast) dtype; RoPE's float32 tables are cast to it, and the rotated q/k stay in
  it, so half precision does not promote q/k to float32;
- the attention's normaliser is formed in float32 and applied to the queries before the product with K'V, so fp16
  overflows in neither;
- up to :data:`BLOCK_DIAGONAL_MAX_WIDTH` channels the heads' K'V products are one block-diagonal product in the
  tokens' own layout (no transposing copies); wider, the heads are put first;
- where ``torch.compile`` traces, the LayerNorms are written out and the depthwise convolutions are an opaque
  operator (:mod:`.dwconv`), so a graph compiled with dynamic weight shapes does not specialise on the stage width;
  run uncompiled, it launches few operations (``F.layer_norm``, a cached head mask), as eager steps are bound by
  launching them.
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..layers.rope import rope_angles, rope_tables
from .dwconv import dwconv3x3_tokens

# Up to this width the heads' K'V products are formed as one block-diagonal C x C product (attend_block_diagonal);
# above it (MLLA's last stage), where C x C outgrows the tokens of small images, with the heads first.
BLOCK_DIAGONAL_MAX_WIDTH = 256


# ---------------------------------------------------------------------------------------------------- RoPE
@lru_cache(maxsize=256)
def cached_rope_tables(height: int, width: int, channels: int, device: torch.device,
                       dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`~mlla_mm.models.layers.rope.rope_tables` cast to ``dtype``, cached per (H, W, C, device, dtype); cast
    outside inference mode, as the tables are made, so that a training step can save them for backward."""
    cos, sin = rope_tables(height, width, channels, device)
    with torch.inference_mode(False), torch.no_grad():
        return cos.to(dtype), sin.to(dtype)


def rope_cos_sin(height, width, channels, device, dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """The RoPE tables for a (height, width) grid: formed in the graph while ``torch.compile`` traces (Inductor
    then folds them into the kernels that read them), cached tables in ``dtype`` otherwise."""
    if torch.compiler.is_compiling():
        angles = rope_angles(height, width, channels, device)
        return angles.cos(), angles.sin()
    return cached_rope_tables(int(height), int(width), int(channels), device, dtype)


def rotate_qk(qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate q and k of ``qk`` ``(B, N, 2 C)`` (q then k) with ``(N, C/2)`` tables; result in ``qk.dtype``."""
    b, n, c2 = qk.shape
    pairs = qk.view(b, n, 2, c2 // 4, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.view(n, 1, -1), sin.view(n, 1, -1)
    rotated = torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1)
    return rotated.view(b, n, c2).to(qk.dtype)


# ---------------------------------------------------------------------------------------------------- attention
def attend_block_diagonal(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                          head_dims: int) -> torch.Tensor:
    """Linear attention of ``(B, N, C)`` queries, keys and values with heads of ``head_dims`` channels: each head's
    K'V is that head's diagonal block of the all-channel product ``(B, C, C)``; the other blocks are dropped.

    Why: in the tokens' own layout the scalings fuse into the kernels that form q, k and v, and the matmuls read
    the transposed keys in place, where putting the heads first costs transposing copies. The price is ``heads``
    times the FLOPs of these two matmuls and a C x C K'V, hence :data:`BLOCK_DIAGONAL_MAX_WIDTH`. ``masked_fill``
    drops the other blocks: a product with a 0/1 mask would turn an overflow there into NaN.
    """
    kv = torch.matmul(keys.transpose(1, 2), values)  # (B, C, C)
    kv = kv.masked_fill(other_head_mask(queries.shape[-1], head_dims, kv.device), 0)
    return torch.matmul(queries, kv)


def other_head_mask(channels: int, head_dims: int, device: torch.device) -> torch.Tensor:
    """``(C, C)`` booleans, True where two channels belong to different heads: formed in the graph while
    ``torch.compile`` traces (a constant of the graph), cached per width and device otherwise."""
    if torch.compiler.is_compiling():
        return _channels_of_other_heads(channels, head_dims, device)
    return cached_other_head_mask(int(channels), int(head_dims), device)


@lru_cache(maxsize=64)
def cached_other_head_mask(channels: int, head_dims: int, device: torch.device) -> torch.Tensor:
    """:func:`other_head_mask`, made outside inference mode: ``masked_fill`` saves it for a training step's
    backward."""
    with torch.inference_mode(False), torch.no_grad():
        return _channels_of_other_heads(channels, head_dims, device)


def _channels_of_other_heads(channels, head_dims, device) -> torch.Tensor:
    head_of_channel = torch.arange(channels, device=device) // head_dims
    return head_of_channel[:, None] != head_of_channel[None, :]


def attend_heads_first(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       num_heads: int) -> torch.Tensor:
    """:func:`attend_block_diagonal`'s result with the heads put first: ``(B * heads, N, d)`` products."""
    b, n, c = queries.shape
    head_dims = c // num_heads

    def heads_first(t):  # (B, N, C) -> (B * heads, N, d)
        return t.reshape(b, n, num_heads, head_dims).transpose(1, 2).reshape(b * num_heads, n, head_dims)

    kv = torch.matmul(heads_first(keys).transpose(-2, -1), heads_first(values))  # (B * heads, d, d)
    out = torch.matmul(heads_first(queries), kv)
    return out.view(b, num_heads, n, head_dims).transpose(1, 2).reshape(b, n, c)


def linear_attention(x: torch.Tensor, height, width, num_heads: int, qk_weight: torch.Tensor,
                     qk_bias: Optional[torch.Tensor], lepe_weight: torch.Tensor, lepe_bias: torch.Tensor,
                     triton_dwconv: bool = False, rope_cos: Optional[torch.Tensor] = None,
                     rope_sin: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:class:`~mlla_mm.models.layers.LinearAttention` on ``(B, N, C)`` tokens; ``rope_cos`` / ``rope_sin``: the
    RoPE tables for this size (:func:`rope_cos_sin`), or None to form them here."""
    b, n, c = x.shape
    head_dims = c // num_heads
    qk = F.elu(F.linear(x, qk_weight, qk_bias)) + 1.0
    dtype = qk.dtype  # the compute dtype (autocast's, or the input's)
    v = x.to(dtype)
    if rope_cos is None:
        rope_cos, rope_sin = rope_cos_sin(height, width, c, x.device, dtype)
    qk_rope = rotate_qk(qk, rope_cos, rope_sin)

    # Normaliser 1 / (phi(q_i) . mean_j phi(k_j)) per head, in float32 (no fp16 overflow, no cancellation): the
    # mean is accumulated in float32, and its product with the half-precision queries is promoted to it.
    wide = torch.promote_types(dtype, torch.float32)
    k_mean = qk[..., c:].mean(dim=1, dtype=wide).view(b, 1, num_heads, head_dims)
    normaliser = 1.0 / ((qk[..., :c].view(b, n, num_heads, head_dims) * k_mean).sum(dim=-1, keepdim=True) + 1e-6)

    # Both factors of K'V carry n ** -0.5 before the product, as in the official model: K'V sums over all tokens,
    # and with positive keys and values an unscaled fp16 product overflows at large images.
    scale = n ** -0.5
    keys, queries = qk_rope[..., c:] * scale, qk_rope[..., :c].view(b, n, num_heads, head_dims)
    # The normaliser is applied to the rotated queries before the product: (z_i q_i) . KV is of the order of v,
    # whereas q_i . KV alone can exceed fp16's range when q and k are large.
    queries, values = (queries * normaliser).to(dtype).view(b, n, c), v * scale
    if c <= BLOCK_DIAGONAL_MAX_WIDTH:
        out = attend_block_diagonal(queries, keys, values, head_dims)
    else:
        out = attend_heads_first(queries, keys, values, num_heads)
    return out + dwconv3x3_tokens(v, lepe_weight, lepe_bias, height, width, triton_dwconv)


# ---------------------------------------------------------------------------------------------------- block
def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.layer_norm`` over the last dimension, at least float32 inside, result in ``x.dtype``. Written out where
    ``torch.compile`` traces it (it specialises ``F.layer_norm`` on the normalised width; these reductions fuse as
    well); uncompiled, ``F.layer_norm`` itself, one kernel forward and one backward where the written-out form
    launches one per operation."""
    wide_dtype = torch.promote_types(x.dtype, torch.float32)
    if not torch.compiler.is_compiling():
        return F.layer_norm(x.to(wide_dtype), x.shape[-1:], weight.to(wide_dtype), bias.to(wide_dtype),
                            eps).to(x.dtype)
    wide = x.to(wide_dtype)
    centred = wide - wide.mean(dim=-1, keepdim=True)
    variance = centred.square().mean(dim=-1, keepdim=True)
    return (centred * torch.rsqrt(variance + eps) * weight + bias).to(x.dtype)


def _drop_path(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    return x if mask is None else x * mask.to(x.dtype)


def mlla_block(x: torch.Tensor, height, width, num_heads: int,
               cpe1_w, cpe1_b, norm1_w, norm1_b, norm1_eps: float,
               act_w, act_b, in_w, in_b, dwc_w, dwc_b,
               qk_w, qk_b, lepe_w, lepe_b, out_w, out_b,
               cpe2_w, cpe2_b, norm2_w, norm2_b, norm2_eps: float,
               fc1_w, fc1_b, fc2_w, fc2_b,
               mask1: Optional[torch.Tensor] = None, mask2: Optional[torch.Tensor] = None,
               triton_dwconv: bool = False, rope_cos: Optional[torch.Tensor] = None,
               rope_sin: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:class:`~mlla_mm.models.layers.MLLABlock` (without dropout) on ``(B, H*W, C)`` tokens, its tensors in the
    order of :func:`.runner.block_tensors`. Every tensor is an argument, so one compiled graph serves every block.

    ``mask1`` / ``mask2``: per-sample ``(B, 1, 1)`` stochastic-depth factors of the two residual branches, or None.
    ``triton_dwconv``: the depthwise convolutions through this project's Triton kernels on CUDA (:mod:`.dwconv`).
    ``rope_cos`` / ``rope_sin``: RoPE tables for ``(height, width)`` (:func:`rope_cos_sin`), or None to form them.
    """
    x = x + dwconv3x3_tokens(x, cpe1_w, cpe1_b, height, width, triton_dwconv)
    shortcut = x
    y = layer_norm(x, norm1_w, norm1_b, norm1_eps)
    gate = F.silu(F.linear(y, act_w, act_b))
    y = F.linear(y, in_w, in_b)
    y = F.silu(dwconv3x3_tokens(y, dwc_w, dwc_b, height, width, triton_dwconv))
    y = linear_attention(y, height, width, num_heads, qk_w, qk_b, lepe_w, lepe_b, triton_dwconv, rope_cos, rope_sin)
    y = F.linear(y * gate, out_w, out_b)
    x = shortcut + _drop_path(y, mask1)

    x = x + dwconv3x3_tokens(x, cpe2_w, cpe2_b, height, width, triton_dwconv)
    y = layer_norm(x, norm2_w, norm2_b, norm2_eps)
    y = F.linear(F.gelu(F.linear(y, fc1_w, fc1_b)), fc2_w, fc2_b)
    return x + _drop_path(y, mask2)
