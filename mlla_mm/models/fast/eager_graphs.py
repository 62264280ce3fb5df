"""Uncompiled train steps of the backbone replayed as CUDA graphs at input shapes met again (experimental).

Why: uncompiled, a train step of the backbone is bound by the host launching its thousands of small kernels while
the GPU idles (docs/fast_path.md); a CUDA graph launches them all at once. Unlike ``torch.compile`` it costs no
compile time: capturing records one more forward and backward. A graph keeps the memory of one step's activations
for as long as it is kept, so only the first ``uncompiled_graphs`` input shapes met
:data:`MEETINGS_BEFORE_CAPTURE` times are captured: fixed-size training (segmentation crops) replays every step,
training on many sizes mostly runs eagerly.

A graph replays what it recorded: the parameters, buffers, train/eval modes and stochastic-depth rates of the model
at capture. Any change of them drops the model's graphs, and they are captured again.
"""
import functools
import inspect
import warnings
import weakref
from collections import Counter
from typing import Callable, Dict, Hashable, Iterable, Optional, Sequence, Tuple

import torch
from torch import nn

from . import compile as compiling

# A size's train steps run eagerly this many times before it is captured: the first meeting sets up what runs
# lazily (Triton's kernels, cuBLAS and cuDNN), and a size met once only is not worth a graph's memory.
MEETINGS_BEFORE_CAPTURE = 2


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


class _ModelGraphs:
    """One model's captured train steps by input key, how often each key was met, and the state of the model they
    were captured in (:func:`model_state`)."""

    def __init__(self):
        self.steps: Dict[Hashable, _Step] = {}
        self.meetings: Counter = Counter()
        self.state: Optional[tuple] = None


# Per model, weakly: the graphs hold its parameters, not the model, so they go with it
_GRAPHS: 'weakref.WeakKeyDictionary[nn.Module, _ModelGraphs]' = weakref.WeakKeyDictionary()


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
    return graphs is not None and bool(graphs.steps)


def release(model: nn.Module) -> None:
    """Drop ``model``'s graphs and their memory: it now trains compiled."""
    _GRAPHS.pop(model, None)


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


def run(model: nn.Module, x: torch.Tensor, cfg: dict, features: Callable) -> Optional[Tuple[torch.Tensor, ...]]:
    """``features(model, x, cfg)`` as a captured train step, captured now if ``x``'s key has been met often enough
    and fewer than ``cfg['uncompiled_graphs']`` keys are captured; None where the step is to run eagerly (also while
    the backward of the key's last replay is pending: a second forward before it)."""
    graphs = _GRAPHS.setdefault(model, _ModelGraphs())
    state = model_state(model)
    if graphs.steps and state != graphs.state:
        graphs.steps.clear()
    key = input_key(x, cfg)
    if key not in graphs.steps:
        if len(graphs.steps) >= cfg['uncompiled_graphs']:
            return None
        graphs.meetings[key] += 1
        if graphs.meetings[key] <= MEETINGS_BEFORE_CAPTURE:
            return None
        step = capture(model, x, tuple(p for p in model.parameters() if p.requires_grad), cfg, features)
        if step is None:
            return None
        graphs.steps[key], graphs.state = step, state
    step = graphs.steps[key]
    return None if step.awaiting_backward() else step(x)


def capture(model: nn.Module, x: torch.Tensor, params: Tuple[torch.Tensor, ...], cfg: dict,
            features: Callable) -> Optional[_Step]:
    """``features(model, ., cfg)`` captured by ``torch.cuda.make_graphed_callables`` for inputs like ``x``, as a
    function of the input and ``params`` (the model's trainable parameters, whose gradients it returns), or None
    (with a warning, and no capture again in this process) should capturing fail, out of memory included.

    Capturing runs one step to warm its stream up; the buffers (the BatchNorms' running statistics) are put back
    after it, so that the captured model trains on as the eager one would. The forward runs under the caller's
    autocast without its weight cache (a graph cannot use a cast made outside it), the backward outside autocast,
    as an eager backward does. Where this torch can, CUDA calls of other threads (a data loader pinning memory) may
    go on while capturing."""
    device = x.device
    autocast = dict(device_type=device.type, dtype=torch.get_autocast_dtype(device.type),
                    enabled=torch.is_autocast_enabled(device.type), cache_enabled=False)
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
        with torch.autocast(device.type, enabled=False):
            graphed = torch.cuda.make_graphed_callables(step, (x.clone(), *params), **options)
    except Exception as error:  # noqa: BLE001 - a failed capture must not stop training
        if cfg['strict']:
            raise
        compiling.FAILED.add('eager-graphs')
        message = str(error).strip().splitlines()[0] if str(error).strip() else ''
        warnings.warn(f'MLLA fast path: capturing an uncompiled train step as a CUDA graph failed '
                      f'({type(error).__name__}: {message}); from now on these steps run eagerly')
        return None
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
    return _Step(graphed, params, needs_grad)
