"""Conversions between ``(B, H*W, C)`` tokens and ``(B, C, H, W)`` images (channels-last views, no copies)."""
from typing import Tuple

import torch


# Both conversions go through (B, H, W, C) so that the gradients flowing back through them have standard
# channels-last strides. The shorter `x.flatten(2).transpose(1, 2)` hands back, for a batch of one, a gradient
# whose batch stride is not the canonical one, and torch 2.14's CPU BatchNorm backward in eval mode returns
# wrong input gradients for such a tensor (tests/test_mlla_reference.py checks against finite differences).
def tokens_to_image(x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)`` (a channels-last view)."""
    b, _, c = x.shape
    return x.reshape(b, *hw_shape, c).permute(0, 3, 1, 2)


def image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H*W, C)``."""
    b, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(b, -1, c)
