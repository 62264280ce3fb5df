"""What the GPU tests of replayed CUDA graphs (train steps, forwards, under DDP) share: a small backbone's arch, and
the relative error by which a replay is compared with the same call run eagerly."""
import torch

ARCH = dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` (Frobenius norms, in float64)."""
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()
