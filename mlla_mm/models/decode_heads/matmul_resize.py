"""Bilinear resizing as two matrix products, whose backward needs no atomic additions.

``F.interpolate(x, size, mode='bilinear')`` computes each output pixel from its four nearest inputs. Its CUDA
backward scatters each output gradient back onto those four inputs with atomic additions, and when an input is
upsampled k times, about k^2 outputs land on every input: the additions queue on the same addresses. UperNet's
losses upsample 150-class logits from 1/4 and 1/16 of the image to its full size, where that backward is slow.

Bilinear resizing is separable: ``out = R @ x @ C^T`` per image and channel, where ``R`` (out_h x in_h) and ``C``
(out_w x in_w) hold at most two non-zero weights per row. As matrix products its backward is matrix products too
(``R^T @ g @ C``), computed without atomics on tensor cores. The weights are those of ``F.interpolate`` (no
antialiasing), so the result is the same up to rounding.
"""
import functools
from typing import Sequence

import torch


@functools.lru_cache(maxsize=128)
def interpolation_matrix(in_size: int, out_size: int, align_corners: bool, device: torch.device,
                         dtype: torch.dtype) -> torch.Tensor:
    """The (out_size, in_size) matrix of 1-D linear interpolation, as ``F.interpolate`` samples for a ``size``.

    Output position ``i`` samples the input at ``s = i * (in - 1) / (out - 1)`` with ``align_corners``, else at
    ``s = (i + 0.5) * in / out - 0.5`` clamped at 0; it weighs ``floor(s)`` by ``1 - frac(s)`` and the next input
    (the last one, at the edge) by ``frac(s)``."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f'cannot resize between sizes {in_size} and {out_size}')
    # cached for later calls: made under torch.inference_mode() it would be an inference tensor, which a later
    # training step could not save for its backward
    with torch.inference_mode(False):
        return _interpolation_matrix(in_size, out_size, align_corners).to(device=device, dtype=dtype)


def _interpolation_matrix(in_size: int, out_size: int, align_corners: bool) -> torch.Tensor:
    positions = torch.arange(out_size, dtype=torch.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        source = positions * scale
    else:
        source = ((positions + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    lower = source.floor().long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    upper_weight = source - lower
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    matrix.index_put_((rows, lower), 1 - upper_weight, accumulate=True)
    matrix.index_put_((rows, upper), upper_weight, accumulate=True)  # adds to ``lower`` at the last input
    return matrix


def bilinear_resize(x: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=align_corners)`` for an (N, C, H, W) tensor, as
    matrix products (see the module's docstring). Under autocast the products run in its precision."""
    if x.dim() != 4:
        raise ValueError(f'bilinear_resize expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}')
    (in_h, in_w), (out_h, out_w) = x.shape[-2:], tuple(int(s) for s in size)
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    rows = interpolation_matrix(in_h, out_h, align_corners, x.device, dtype)
    cols = interpolation_matrix(in_w, out_w, align_corners, x.device, dtype)
    # widths first: (N*C*H, W) @ (W, out_w) is one matrix product; then the heights, one product per image and
    # channel against the same (out_h, H) matrix (broadcast, not copied)
    return torch.matmul(rows, torch.matmul(x.to(dtype), cols.t()))
