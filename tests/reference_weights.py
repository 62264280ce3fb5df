"""Deterministic weights and inputs for comparing MLLA with the official implementation.

The reference numbers in ``tests/data/official_reference.pt`` were produced by the official LeapLabTHU/MLLA
downstream backbone (eval mode, drop path 0) with the weights from :func:`fill_reference_weights`, which depend only
on each tensor's name and shape, so any implementation with the same key names gets the same model.
``tests/data/make_official_reference.py`` writes them from a checkout of the official code. How, and why:

- in float64, then rounded to float32. On torch 2.14.1's CPU kernels the official code's own float32 input
  gradients are off by up to 1% (its channels-last views meet a BatchNorm-eval backward that mishandles them),
  while in float64 they agree with finite differences to 1e-8; mlla-mm's float32 gradients agree with them to 1e-6.
- for a batch of one, inside a batch of two (the second a copy that the loss ignores), for the same reason.
"""
import zlib

import numpy as np
import torch

# Arches and input shapes of the reference cases: non-square sizes, sides that are not multiples of 32, odd
# feature sizes at several stages, batch > 1, heads of 16 and 32 channels.
REFERENCE_CASES = {
    'tiny_67x93': dict(arch='tiny', input_shape=(1, 3, 67, 93)),
    'custom_2x45x130': dict(arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
                            input_shape=(2, 3, 45, 130)),
    'base_50x38': dict(arch='base', input_shape=(1, 3, 50, 38)),
}


def _uniform(name: str, shape, low: float, high: float) -> torch.Tensor:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return torch.from_numpy(rng.uniform(low, high, size=tuple(shape))).float()


def fill_reference_weights(model: torch.nn.Module) -> None:
    """Overwrite every parameter and BatchNorm buffer with values that depend only on its name and shape."""
    state = model.state_dict()
    new_state = {}
    for name, tensor in state.items():
        if name.endswith('num_batches_tracked') or name.endswith('rope.rotations'):
            new_state[name] = tensor
            continue
        shape = tensor.shape
        if name.endswith('running_var'):
            value = _uniform(name, shape, 0.5, 1.5)
        elif name.endswith('running_mean'):
            value = _uniform(name, shape, -0.1, 0.1)
        elif 'norm' in name and name.endswith('weight') and len(shape) == 1:
            value = _uniform(name, shape, 0.8, 1.2)
        elif name.endswith('bias'):
            value = _uniform(name, shape, -0.05, 0.05)
        else:  # conv / linear weight: uniform with the variance of a fan-in initialisation
            fan_in = int(np.prod(shape[1:]))
            bound = (3.0 / fan_in) ** 0.5
            value = _uniform(name, shape, -bound, bound)
        new_state[name] = value
    model.load_state_dict(new_state)


def reference_input(case: str) -> torch.Tensor:
    return _uniform(f'input/{case}', REFERENCE_CASES[case]['input_shape'], -2.0, 2.0)


def reference_loss(outputs) -> torch.Tensor:
    """A scalar whose gradient reaches every output element with a distinct weight."""
    total = 0
    for out in outputs:
        # formed in float64 so that float32 and float64 runs weigh their outputs identically
        weights = torch.sin(torch.arange(out.numel(), dtype=torch.float64) * 0.37).reshape(out.shape)
        weights = weights.to(out.dtype)
        total = total + (out * weights).sum()
    return total
