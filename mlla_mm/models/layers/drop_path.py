"""Stochastic depth: a residual branch dropped for whole samples in training, as the official MLLA code draws it.

The official code takes timm's ``DropPath``; this one draws the same masks for the same random state (one
Bernoulli per sample, kept branches scaled by ``1 / keep``), without importing timm, which brings torchvision with
it: seconds of every job's start-up that mmdet does not otherwise pay.
"""
import torch
from torch import nn


class DropPath(nn.Module):
    """Drop the whole input of a sample with probability ``drop_prob`` in training; scale the kept ones by
    ``1 / (1 - drop_prob)`` (``scale_by_keep``). The identity in eval mode and at ``drop_prob=0``."""

    def __init__(self, drop_prob: float = 0., scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        return x * self.draw_mask(x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)))

    def draw_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Fill ``mask`` (one value per sample, in any shape and dtype) in place with this layer's draw: kept (1)
        with probability ``1 - drop_prob``, scaled by ``1 / (1 - drop_prob)`` with ``scale_by_keep``."""
        keep = 1 - self.drop_prob
        mask.bernoulli_(keep)
        if keep > 0. and self.scale_by_keep:
            mask.div_(keep)
        return mask

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob:.3f}'
