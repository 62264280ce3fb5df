"""2-D rotary position embedding (RoPE) as MLLA uses it.

Channels are taken in pairs ``(x[2j], x[2j+1])`` and each pair is rotated by an angle that grows with the token's
position: the first quarter of the pairs (``j < C/4``) by its row index, the second by its column index, with
frequencies ``10000 ** (-j / (C/4))``. The tables depend only on (H, W, C), so they are computed once per feature
size and device and then reused: detection sees many image sizes, but each size recurs every few iterations.
"""
from functools import lru_cache
from typing import Tuple

import torch

ROPE_BASE = 10000


@lru_cache(maxsize=128)
def rope_tables(height: int, width: int, channels: int,
                device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return ``(cos, sin)``, each of shape ``(height * width, channels // 2)``, in float32.

    The angles are formed exactly as the official model forms them (float32, same order of operations), so
    results match it bit for bit on the same device.
    """
    if channels % 4:
        raise ValueError(f'RoPE needs a channel count divisible by 4 (a (row, column) pair per frequency), '
                         f'got {channels}')
    # Built outside inference mode: a table first made under torch.inference_mode() would be an inference
    # tensor, and a later training step could not save it for backward.
    with torch.inference_mode(False), torch.no_grad():
        angles = rope_angles(height, width, channels, device)
        return torch.cos(angles), torch.sin(angles)


def rope_angles(height, width, channels, device) -> torch.Tensor:
    """``(height * width, channels // 2)`` float32 angles: row index times the first quarter's frequencies, column
    index times the second's. Written with broadcasting only, so torch.compile can also form them in-graph."""
    num_freqs = channels // 4
    freqs = 1 / (ROPE_BASE ** (torch.arange(num_freqs, device=device) / num_freqs))
    rows = torch.arange(height, device=device).view(height, 1, 1).expand(height, width, 1)
    cols = torch.arange(width, device=device).view(1, width, 1).expand(height, width, 1)
    angles = torch.cat([rows * freqs, cols * freqs], dim=-1)
    return angles.reshape(height * width, 2 * num_freqs)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs of ``x`` of shape ``(B, H*W, C)`` by tables from :func:`rope_tables`.

    The tables are float32, so a half-precision ``x`` comes out in float32, as in the official model.
    """
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1)
    return rotated.flatten(-2)
