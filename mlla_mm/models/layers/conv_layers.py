"""Convolutional parts of MLLA: the stem and the patch merging between stages.

Both use BatchNorm (unlike the blocks, which use LayerNorm): that is what ``norm_eval`` of the backbone freezes.
"""
from typing import Optional, Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layout import image_to_tokens, tokens_to_image


class ConvLayer(nn.Sequential):
    """Conv2d, then optional BatchNorm and activation, with the official key names ``conv`` / ``norm``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = True, norm: bool = True,
                 act: Optional[Type[nn.Module]] = nn.ReLU):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              groups=groups, bias=bias)
        if norm:
            self.norm = nn.BatchNorm2d(out_channels)
        if act is not None:
            self.act = act()


class Stem(nn.Module):
    """Overlapping convolutional stem: image ``(B, 3, H, W)`` -> tokens at stride 4.

    conv3x3/2 -> residual pair of conv3x3 -> conv3x3/2 to ``4 C`` -> conv1x1 to ``C``. An image whose sides
    are not multiples of 4 is padded with zeros on the bottom/right first, as in the official model.
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 96, patch_size: int = 4):
        super().__init__()
        self.patch_size = patch_size
        half = embed_dims // 2
        self.conv1 = ConvLayer(in_channels, half, 3, stride=2, padding=1, bias=False)
        self.conv2 = nn.Sequential(
            ConvLayer(half, half, 3, padding=1, bias=False),
            ConvLayer(half, half, 3, padding=1, bias=False, act=None))
        self.conv3 = nn.Sequential(
            ConvLayer(half, embed_dims * 4, 3, stride=2, padding=1, bias=False),
            ConvLayer(embed_dims * 4, embed_dims, 1, bias=False, act=None))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zeros on the bottom/right up to multiples of the patch size."""
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            x = F.pad(x, (0, -width % self.patch_size, 0, -height % self.patch_size))
        return x

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions, on an image whose sides are multiples of the patch size."""
        x = self.conv1(x)
        x = self.conv2(x) + x
        return self.conv3(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """``(B, C, H, W)`` image -> ``(B, H/4 * W/4, embed_dims)`` tokens and their grid size."""
        x = self.convolve(self.pad(x))
        return image_to_tokens(x), tuple(x.shape[-2:])


class PatchMerging(nn.Module):
    """Downsampling between stages: an inverted bottleneck with a 3x3/2 depthwise conv, ``C`` -> ``2 C``.

    conv1x1 to ``8 C`` + ReLU -> depthwise conv3x3/2 + ReLU -> conv1x1 to ``2 C`` + BatchNorm. An odd side is
    padded with one zero row/column *before* the first 1x1 conv, exactly as the official model does (the padded
    positions then carry ReLU(bias), not zeros).
    """

    def __init__(self, embed_dims: int, ratio: float = 4.0):
        super().__init__()
        out_channels = 2 * embed_dims
        hidden = int(out_channels * ratio)
        self.conv = nn.Sequential(
            ConvLayer(embed_dims, hidden, 1, norm=False),
            ConvLayer(hidden, hidden, 3, stride=2, padding=1, groups=hidden, norm=False),
            ConvLayer(hidden, out_channels, 1, act=None))

    @staticmethod
    def pad(x: torch.Tensor, hw_shape: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """``(B, H*W, C)`` tokens with a zero row/column added to an odd side, and their new grid size.

        Padded as tokens, so that the image the convolutions see is a view of tokens either way (a compiled call
        of the fast path guards on the layout of its input's base).
        """
        height, width = hw_shape
        if not (height % 2 or width % 2):
            return x, hw_shape
        b, _, channels = x.shape
        hw_shape = (height + height % 2, width + width % 2)
        padded = x.new_zeros(b, hw_shape[0] * hw_shape[1], channels)
        padded.view(b, *hw_shape, channels)[:, :height, :width] = x.reshape(b, height, width, channels)
        return padded, hw_shape

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """``(B, H*W, C)`` tokens -> ``(B, ceil(H/2) * ceil(W/2), 2 C)`` tokens and their grid size."""
        x, hw_shape = self.pad(x, hw_shape)
        x = self.conv(tokens_to_image(x, hw_shape))
        return image_to_tokens(x), tuple(x.shape[-2:])
