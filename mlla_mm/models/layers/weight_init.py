"""The truncated normal initialiser the official MLLA code takes from timm: uniform draws mapped through the normal
distribution's inverse CDF.

Why not ``torch.nn.init.trunc_normal_``: recent torch draws it by another method, so the same seed gives other
weights; this one gives the official code's, without importing timm.
"""
import math

import torch


def trunc_normal_(tensor: torch.Tensor, mean: float = 0., std: float = 1., a: float = -2.,
                  b: float = 2.) -> torch.Tensor:
    """Fill ``tensor`` in place from the normal distribution ``N(mean, std**2)`` truncated to ``[a, b]``."""

    def normal_cdf(x):
        return (1. + math.erf(x / math.sqrt(2.))) / 2.

    with torch.no_grad():
        low, high = normal_cdf((a - mean) / std), normal_cdf((b - mean) / std)
        tensor.uniform_(2 * low - 1, 2 * high - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.)).add_(mean)
        return tensor.clamp_(min=a, max=b)
