"""Uncompiled train steps of the backbone replayed as CUDA graphs at input shapes met again.

Why: uncompiled, a train step of the backbone is bound by the host launching its thousands of small kernels while
the GPU idles (docs/fast_path.md); a CUDA graph launches them all at once. Unlike ``torch.compile`` it costs no
compile time: capturing records one more forward and backward. A graph keeps the memory of one step's activations
for as long as it is kept, so only the first ``uncompiled_graphs`` input shapes met
:data:`.shape_graphs.MEETINGS_BEFORE_CAPTURE` times are captured: fixed-size training (segmentation crops) replays
every step, training on many sizes mostly runs eagerly.

A graph replays what it recorded: the parameters, buffers, train/eval modes and stochastic-depth rates of the model
at capture. Any change of them drops the model's graphs, and they are captured again (:mod:`.shape_graphs`).
"""
import functools
import inspect
import weakref
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple

import torch
from torch import nn

from . import compile as compiling
from .shape_graphs import ShapeGraphs, caller_autocast, capture_failed, input_key


class _Step:
    """One captured train step: the graphed function, the trainable parameters it takes, which of its outputs need
    gradients (those of frozen stages do not), weak references to the outputs of its last replay where a backward
    is to follow, how many replays it ran, and the number of the last one whose backward began."""

    def __init__(self, graphed: Callable, params: Tuple[torch.Tensor, ...], needs_grad: Sequence[bool]):
        self.graphed, self.params, self.needs_grad = graphed, params, tuple(needs_grad)
        self.outputs: list = []
        self.replays, self.backward_of = 0, 0

    def awaiting_backward(self) -> bool:
        """Whether the last replay's outputs are alive and their backward has not begun: a replay now would
        overwrite the activations that backward reads."""
        return self.backward_of != self.replays and any(ref() is not None for ref in self.outputs)

    def __call__(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        raw = self.graphed(x, *self.params)
        self.replays += 1
        # copies: the graph's outputs are overwritten by its next replay
        outs = tuple(o.clone() if needs else o.detach().clone() for o, needs in zip(raw, self.needs_grad))
        node = next((o.grad_fn for o in raw if o.grad_fn is not None), None)
        self.outputs = []
        if node is not None:
            node.register_prehook(functools.partial(self._before_backward, self.replays))
            self.outputs = [weakref.ref(o) for o in outs]
        return outs

    def _before_backward(self, replay: int, grad_outputs):
        """Before the backward replay of replay number ``replay``: gradients that an earlier backward of this graph
        handed over still live in the memory this one rewrites (accumulation): copy them out. A backward that
        would read activations already overwritten raises: a second one of the same replay (``retain_graph``;
        the first backward reuses the memory of the activations it has read), or one after a later replay."""
        if replay != self.replays or replay == self.backward_of:
            raise RuntimeError(
                'MLLA fast path: a second backward through a train step replayed as a CUDA graph, or one after a '
                'later replay, would read overwritten activations; train such steps eagerly with '
                "fast_cfg['uncompiled_graphs'] = 0")
        self.backward_of = replay
        grads_into_own_memory(self.params)


def grads_into_own_memory(params: Iterable[torch.Tensor]) -> None:
    """Give each gradient that ``params`` still hold memory of its own: one handed over by a CUDA graph's backward
    lives in the graph's memory, which its next replay rewrites."""
    for param in params:
        if param.grad is not None:
            param.grad = param.grad.clone()


# Per model, weakly: the graphs hold its parameters, not the model, so they go with it
_GRAPHS: 'weakref.WeakKeyDictionary[nn.Module, ShapeGraphs]' = weakref.WeakKeyDictionary()


def applies(model: nn.Module, x: torch.Tensor, cfg: dict) -> bool:
    """Whether ``model(x)`` may run as a captured train step: a CUDA input with gradients, in training, on the
    uncompiled fast path (``compile`` off or failed), with ``cuda_graphs`` and ``uncompiled_graphs`` on, without
    ``with_cp``, outside ``torch.compile`` and outside another capture, and capturing has not failed before. Not
    with ``SyncBatchNorm``: capturing's warm-up step would run collectives on one process only."""
    return (cfg['cuda_graphs'] and cfg['uncompiled_graphs'] > 0 and x.is_cuda and model.training
            and torch.is_grad_enabled() and not model.with_cp and not compiling.compiles(x, cfg)
            and 'eager-graphs' not in compiling.FAILED and not torch.compiler.is_compiling()
            and not torch.cuda.is_current_stream_capturing()
            and not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()))


def holds_graphs(model: nn.Module) -> bool:
    """Whether ``model`` has captured train steps (whose gradients a replay hands over in the graphs' memory)."""
    graphs = _GRAPHS.get(model)
    return graphs is not None and bool(graphs.graphs)


def release(model: nn.Module) -> None:
    """Drop ``model``'s graphs and their memory: it now trains compiled."""
    _GRAPHS.pop(model, None)


def run(model: nn.Module, x: torch.Tensor, cfg: dict, features: Callable) -> Optional[Tuple[torch.Tensor, ...]]:
    """``features(model, x, cfg)`` as a captured train step, captured now if ``x``'s key has been met often enough
    and fewer than ``cfg['uncompiled_graphs']`` keys are captured (:meth:`.shape_graphs.ShapeGraphs.get`); None
    where the step is to run eagerly (also while the backward of the key's last replay is pending: a second forward
    before it)."""
    step = _GRAPHS.setdefault(model, ShapeGraphs()).get(
        model, input_key(x, cfg), cfg['uncompiled_graphs'],
        lambda: capture(model, x, tuple(p for p in model.parameters() if p.requires_grad), cfg, features))
    return None if step is None or step.awaiting_backward() else step(x)


def capture(model: nn.Module, x: torch.Tensor, params: Tuple[torch.Tensor, ...], cfg: dict,
            features: Callable) -> Optional[_Step]:
    """``features(model, ., cfg)`` captured by ``torch.cuda.make_graphed_callables`` for inputs like ``x``, as a
    function of the input and ``params`` (the model's trainable parameters, whose gradients it returns), or None
    (with a warning, and no capture again in this process) should capturing fail, out of memory included.

    Capturing runs one step to warm its stream up; the buffers (the BatchNorms' running statistics) are put back
    after it, so that the captured model trains on as the eager one would. The forward runs under the caller's
    autocast without its weight cache (a graph cannot use a cast made outside it), the backward outside autocast,
    as an eager backward does, and through stand-in parameters (:func:`stand_in_leaves`). Where this torch can,
    CUDA calls of other threads (a data loader pinning memory) may go on while capturing."""
    device = x.device
    autocast = caller_autocast(device)
    needs_grad = []

    def step(images, *_):  # called while capturing only: the graph takes the parameters as its inputs
        with torch.autocast(**autocast):
            outs = features(model, images, cfg)
        needs_grad[:] = [out.requires_grad for out in outs]
        return outs

    options = dict(num_warmup_iters=1, allow_unused_input=True)
    if 'capture_error_mode' in inspect.signature(torch.cuda.make_graphed_callables).parameters:
        options['capture_error_mode'] = 'thread_local'
    buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]
    torch.cuda.empty_cache()  # while capturing, the allocator cannot free cached blocks to make room
    try:
        with torch.autocast(device.type, enabled=False), stand_in_leaves(model, params) as leaves:
            graphed = torch.cuda.make_graphed_callables(step, (x.clone(), *leaves), **options)
    except Exception as error:  # noqa: BLE001 - a failed capture must not stop training
        capture_failed(error, cfg, 'eager-graphs', 'an uncompiled train step', 'steps')
        return None
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    return _Step(graphed, params, needs_grad)


@contextmanager
def stand_in_leaves(model: nn.Module, params: Tuple[torch.Tensor, ...]) -> Iterator[Tuple[torch.Tensor, ...]]:
    """Within the context, ``model`` holds new leaf parameters in place of ``params``, sharing their memory; yields
    them in the order of ``params``.

    Why: a captured backward ends in each leaf's gradient accumulator, and the autograd engine makes the stream that
    accumulator was made on wait for the capturing stream, which CUDA forbids for the default stream. Under
    ``DistributedDataParallel`` the parameters' accumulators live on from DDP's construction, on the default stream
    (DDP's gradient hooks hang on them); the stand-ins get accumulators of their own while capturing. A replay takes
    the real parameters, whose accumulators (and DDP's hooks) then run eagerly."""
    leaves = {id(p): nn.Parameter(p.detach(), requires_grad=True) for p in params}
    swapped = []
    try:
        for module in model.modules():
            for name, param in module._parameters.items():
                if param is not None and id(param) in leaves:
                    swapped.append((module, name, param))
        for module, name, param in swapped:
            module._parameters[name] = leaves[id(param)]
        yield tuple(leaves[id(p)] for p in params)
    finally:
        for module, name, param in swapped:
            module._parameters[name] = param
