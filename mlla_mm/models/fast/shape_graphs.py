"""What the uncompiled train steps (:mod:`.eager_graphs`) and forwards (:mod:`.inference_graphs`) replayed as CUDA
graphs share: which input shapes a model captures, when its graphs go, and what a failed capture does.

A graph keeps memory for as long as it is kept, so a model captures only its first few input keys met
:data:`MEETINGS_BEFORE_CAPTURE` times. A graph replays the parameters and buffers it recorded: new tensors, or a
change of ``requires_grad``, train/eval mode or stochastic-depth rate (:func:`model_state`), drop the model's
graphs, and they are captured again.
"""
import warnings
from collections import Counter
from typing import Any, Callable, Dict, Hashable, Optional

import torch
from torch import nn

from . import compile as compiling

# A key's calls run eagerly this many times before it is captured: the first meeting sets up what runs lazily
# (Triton's kernels, cuBLAS and cuDNN), and a size met once only is not worth a graph's memory.
MEETINGS_BEFORE_CAPTURE = 2


def input_key(x: torch.Tensor, cfg: dict) -> Hashable:
    """What a graph is captured for: the input's shape (batch size included), dtype, device and ``requires_grad``,
    autocast's state, the Triton kernels."""
    autocast = torch.is_autocast_enabled(x.device.type)
    return (tuple(x.shape), x.dtype, x.device, x.requires_grad,
            autocast and torch.get_autocast_dtype(x.device.type), cfg['triton_dwconv'])


def model_state(model: nn.Module) -> tuple:
    """What a graph recorded of the model: each parameter's memory and ``requires_grad``, each buffer's memory, each
    module's train/eval mode and stochastic-depth rate."""
    return (tuple((p.data_ptr(), p.requires_grad) for p in model.parameters()),
            tuple(b.data_ptr() for b in model.buffers()),
            tuple((m.training, getattr(m, 'drop_prob', None)) for m in model.modules()))


class ShapeGraphs:
    """One model's captured graphs by input key, how often each key was met, and the state of the model they were
    captured in (:func:`model_state`)."""

    def __init__(self):
        self.graphs: Dict[Hashable, Any] = {}
        self.meetings: Counter = Counter()
        self.state: Optional[tuple] = None

    def get(self, model: nn.Module, key: Hashable, limit: int, capture: Callable[[], Optional[Any]]) -> Optional[Any]:
        """The graph for ``key``: the one captured before (all of them dropped first if ``model``'s state has
        changed), or one that ``capture()`` makes now, at the key's meeting after :data:`MEETINGS_BEFORE_CAPTURE`
        where fewer than ``limit`` keys are captured; None where the call is to run eagerly (``capture()`` failed
        included)."""
        state = model_state(model)
        if self.graphs and state != self.state:
            self.graphs.clear()
        if key not in self.graphs:
            if len(self.graphs) >= limit:
                return None
            self.meetings[key] += 1
            if self.meetings[key] <= MEETINGS_BEFORE_CAPTURE:
                return None
            graph = capture()
            if graph is None:
                return None
            self.graphs[key], self.state = graph, state
        return self.graphs[key]


def caller_autocast(device: torch.device) -> dict:
    """The arguments of ``torch.autocast`` that repeat the caller's autocast on ``device`` without its weight cache:
    a graph cannot use a cast made outside it."""
    return dict(device_type=device.type, dtype=torch.get_autocast_dtype(device.type),
                enabled=torch.is_autocast_enabled(device.type), cache_enabled=False)


def capture_failed(error: Exception, cfg: dict, failure: str, what: str, calls: str) -> None:
    """After capturing ``what`` failed (out of memory included): the random generators made usable again
    (:func:`reset_random_after_failed_capture`); then raise with ``strict``, or else record ``failure`` in
    :data:`.compile.FAILED`, so that nothing of the kind is captured again in this process, and warn that these
    ``calls`` run eagerly from now on."""
    reset_random_after_failed_capture()
    if cfg['strict']:
        raise error
    compiling.FAILED.add(failure)
    warnings.warn(f'MLLA fast path: capturing {what} as a CUDA graph failed ({compiling.describe(error)}); '
                  f'from now on these {calls} run eagerly')


def reset_random_after_failed_capture() -> None:
    """Give each CUDA device's default random generator a fresh state with the same seed and offset.

    Why: a capture records the generators' offsets; one that fails where CUDA ends the capture (an operation the
    capture forbids, say) never hands them back, and every later random draw on the device (dropout, stochastic
    depth, ``torch.randn``) raises. The fresh state goes on from where the old one stood."""
    for generator in torch.cuda.default_generators if torch.cuda.is_initialized() else ():
        if hasattr(generator, 'graphsafe_set_state'):
            generator.graphsafe_set_state(generator.clone_state())
