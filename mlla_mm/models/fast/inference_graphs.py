"""Uncompiled inference of the backbone replayed as CUDA graphs at input shapes met again.

Why: uncompiled, a forward of one or a few images is bound by the host launching the backbone's many small kernels
while the GPU idles (docs/fast_path.md), and a test job runs thousands of them at a few sizes. A CUDA graph launches
them all at once; recording one costs one more forward, no compiling.

All graphs of a model share one memory pool: they never run at the same time, each replay's outputs are copied out
at once, and each graph's own outputs stay allocated, so a graph may reuse the memory only of intermediate tensors
of another, which no later read needs. What a graph keeps beyond the pool is its input and outputs, so only the
first ``uncompiled_inference_graphs`` shapes met :data:`.shape_graphs.MEETINGS_BEFORE_CAPTURE` times are captured.

A graph replays the parameters and buffers of the model at capture (in-place changes of their values, such as
loading weights, are read at every replay); new tensors drop the model's graphs, and they are captured again
(:mod:`.shape_graphs`).
"""
import weakref
from typing import Callable, Optional, Tuple

import torch
from torch import nn

from . import compile as compiling
from .shape_graphs import ShapeGraphs, caller_autocast, capture_failed, input_key


class _Forward:
    """One captured forward: the graph, the input it reads and the outputs it writes."""

    def __init__(self, graph: 'torch.cuda.CUDAGraph', static_input: torch.Tensor,
                 static_outputs: Tuple[torch.Tensor, ...]):
        self.graph, self.static_input, self.static_outputs = graph, static_input, static_outputs

    def __call__(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self.static_input.copy_(x)
        self.graph.replay()
        # copies: the next replay of this graph, or of another one sharing its pool, rewrites the memory
        return tuple(out.clone() for out in self.static_outputs)


class _ModelForwards(ShapeGraphs):
    """One model's captured forwards (:class:`.shape_graphs.ShapeGraphs`) and the memory pool they share."""

    def __init__(self):
        super().__init__()
        self.pool = None

    def pool_for_next(self):
        """The pool for the next capture: the one the kept graphs share, a new one where none is kept."""
        if self.pool is None or not self.graphs:
            self.pool = torch.cuda.graph_pool_handle()
        return self.pool


# Per model, weakly: the graphs hold its parameters, not the model, so they go with it
_GRAPHS: 'weakref.WeakKeyDictionary[nn.Module, _ModelForwards]' = weakref.WeakKeyDictionary()


def applies(model: nn.Module, x: torch.Tensor, cfg: dict) -> bool:
    """Whether ``model(x)`` may run as a captured forward: a CUDA input without gradients, the model in eval mode
    (a training forward updates the BatchNorms' statistics and draws stochastic depth), on the uncompiled fast path
    (``compile`` off or failed), with ``cuda_graphs`` and ``uncompiled_inference_graphs`` on, outside
    ``torch.compile`` and outside another capture, and capturing has not failed before."""
    return (cfg['cuda_graphs'] and cfg['uncompiled_inference_graphs'] > 0 and x.is_cuda
            and not torch.is_grad_enabled() and not any(m.training for m in model.modules())
            and not compiling.compiles(x, cfg) and 'inference-graphs' not in compiling.FAILED
            and not torch.compiler.is_compiling() and not torch.cuda.is_current_stream_capturing())


def release(model: nn.Module) -> None:
    """Drop ``model``'s captured forwards and their memory: it now infers compiled."""
    _GRAPHS.pop(model, None)


def run(model: nn.Module, x: torch.Tensor, cfg: dict, features: Callable) -> Optional[Tuple[torch.Tensor, ...]]:
    """``features(model, x, cfg)`` as a captured forward, captured now if ``x``'s key (under ``torch.inference_mode``
    or not) has been met often enough and fewer than ``cfg['uncompiled_inference_graphs']`` keys are captured
    (:meth:`.shape_graphs.ShapeGraphs.get`); None where it is to run eagerly."""
    graphs = _GRAPHS.setdefault(model, _ModelForwards())
    forward = graphs.get(model, (input_key(x, cfg), torch.is_inference_mode_enabled()),
                         cfg['uncompiled_inference_graphs'],
                         lambda: capture(model, x, cfg, features, graphs.pool_for_next()))
    return None if forward is None else forward(x)


def capture(model: nn.Module, x: torch.Tensor, cfg: dict, features: Callable, pool) -> Optional[_Forward]:
    """``features(model, ., cfg)`` recorded as a CUDA graph (:func:`record`) for inputs like ``x`` in the memory pool
    ``pool``, or None (with a warning, and no capture again in this process) should capturing fail, out of memory
    included. It runs under the caller's autocast without its weight cache (a graph cannot use a cast made outside
    it)."""
    device = x.device
    autocast = caller_autocast(device)
    static_input = x.clone()

    def forward() -> Tuple[torch.Tensor, ...]:
        with torch.autocast(**autocast):
            return tuple(features(model, static_input, cfg))

    try:
        graph, static_outputs = record(forward, device, pool)
    except Exception as error:  # noqa: BLE001 - a failed capture must not stop inference
        capture_failed(error, cfg, 'inference-graphs', 'an uncompiled forward', 'forwards')
        return None
    return _Forward(graph, static_input, static_outputs)


def record(forward: Callable[[], Tuple[torch.Tensor, ...]], device: torch.device,
           pool) -> Tuple['torch.cuda.CUDAGraph', Tuple[torch.Tensor, ...]]:
    """``forward()`` recorded as a CUDA graph in ``pool``, and the outputs it writes. As
    ``torch.cuda.make_graphed_callables`` does, one call on a side stream comes first."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        forward()
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.empty_cache()  # while capturing, the allocator cannot free cached blocks to make room
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, capture_error_mode='thread_local'):
        outputs = forward()
    return graph, outputs
