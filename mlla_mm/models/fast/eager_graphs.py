"""Uncompiled train steps of the backbone replayed as CUDA graphs at image sizes met again.

Why: uncompiled, a train step of the backbone is bound by the host launching its thousands of small kernels while
the GPU idles (docs/fast_path.md); a CUDA graph launches them all at once. Unlike ``torch.compile`` it costs no
compile time: capturing records one more forward and backward. A graph keeps the memory of one step's activations
at its size for as long as it is kept, so only the first ``uncompiled_graphs`` sizes met :data:`MEETINGS_BEFORE_CAPTURE`
times are captured: fixed-size training (segmentation crops) replays every step, training on many sizes mostly
runs eagerly.

A graph replays what it recorded: the parameters, buffers and train/eval modes of the model at capture. Any change
of them (new tensors, ``requires_grad``, ``train()``/``eval()`` of a part) drops the model's graphs, and they are
captured again.
"""
import warnings
import weakref
from collections import Counter
from typing import Callable, Dict, Hashable, Optional, Tuple

import torch
from torch import nn

from . import compile as compiling

# A size's train steps run eagerly this many times before it is captured: the first meeting sets up what runs
# lazily (Triton's kernels, cuBLAS and cuDNN), and a size met once only is not worth a graph's memory.
MEETINGS_BEFORE_CAPTURE = 2


class _ModelGraphs:
    """One model's captured train steps by input key (with the trainable parameters they take), how often each key
    was met, and the state of the model they were captured in (:func:`model_state`)."""

    def __init__(self):
        self.graphs: Dict[Hashable, Tuple[Callable, Tuple[torch.Tensor, ...]]] = {}
        self.meetings: Counter = Counter()
        self.state: Optional[tuple] = None


# Per model, weakly: the graphs hold its parameters, not the model, so they go with it
_GRAPHS: 'weakref.WeakKeyDictionary[nn.Module, _ModelGraphs]' = weakref.WeakKeyDictionary()


def applies(model: nn.Module, x: torch.Tensor, cfg: dict) -> bool:
    """Whether ``model(x)`` may run as a captured train step: a CUDA input with gradients, in training, on the
    uncompiled fast path (``compile`` off or failed), with ``cuda_graphs`` and ``uncompiled_graphs`` on, without
    ``with_cp``, outside ``torch.compile`` and outside another capture, and capturing has not failed before."""
    return (cfg['cuda_graphs'] and cfg['uncompiled_graphs'] > 0 and x.is_cuda and model.training
            and torch.is_grad_enabled() and not model.with_cp and not compiling.compiles(x, cfg)
            and 'eager-graphs' not in compiling.FAILED and not torch.compiler.is_compiling()
            and not torch.cuda.is_current_stream_capturing())


def holds_graphs(model: nn.Module) -> bool:
    """Whether ``model`` has captured train steps (whose gradients a replay hands over in the graphs' memory)."""
    graphs = _GRAPHS.get(model)
    return graphs is not None and bool(graphs.graphs)


def release(model: nn.Module) -> None:
    """Drop ``model``'s graphs and their memory: its train steps are compiled from now on."""
    _GRAPHS.pop(model, None)


def input_key(x: torch.Tensor, cfg: dict) -> Hashable:
    """What a graph is captured for: the input's size, dtype and device, autocast's state, the Triton kernels."""
    autocast = torch.is_autocast_enabled(x.device.type)
    return (tuple(x.shape), x.dtype, x.device, autocast and torch.get_autocast_dtype(x.device.type),
            cfg['triton_dwconv'])


def model_state(model: nn.Module) -> tuple:
    """What a graph recorded of the model: each parameter's memory and ``requires_grad``, each buffer's memory, and
    each module's train/eval mode."""
    return (tuple((p.data_ptr(), p.requires_grad) for p in model.parameters()),
            tuple(b.data_ptr() for b in model.buffers()), tuple(m.training for m in model.modules()))


def run(model: nn.Module, x: torch.Tensor, cfg: dict, features: Callable) -> Optional[Tuple[torch.Tensor, ...]]:
    """``features(model, x, cfg)`` as a captured train step, captured now if ``x``'s key has been met often enough
    and fewer than ``cfg['uncompiled_graphs']`` keys are captured; None where the step is to run eagerly."""
    graphs = _GRAPHS.setdefault(model, _ModelGraphs())
    state = model_state(model)
    if graphs.graphs and state != graphs.state:
        graphs.graphs.clear()
    key = input_key(x, cfg)
    if key not in graphs.graphs:
        if len(graphs.graphs) >= cfg['uncompiled_graphs']:
            return None
        graphs.meetings[key] += 1
        if graphs.meetings[key] <= MEETINGS_BEFORE_CAPTURE:
            return None
        params = tuple(p for p in model.parameters() if p.requires_grad)
        step = capture(model, x, params, cfg, features)
        if step is None:
            return None
        graphs.graphs[key], graphs.state = (step, params), state
    step, params = graphs.graphs[key]
    return tuple(out.clone() for out in step(x, *params))  # a graph's outputs are overwritten by its next replay


def capture(model: nn.Module, x: torch.Tensor, params: Tuple[torch.Tensor, ...], cfg: dict,
            features: Callable) -> Optional[Callable]:
    """``features(model, ., cfg)`` captured by ``torch.cuda.make_graphed_callables`` for inputs like ``x``, as a
    function of the input and ``params`` (the model's trainable parameters, whose gradients it returns), or None
    (with a warning, and no capture again in this process) should capturing fail.

    Capturing runs one step to warm its stream up; the buffers (the BatchNorms' running statistics) are put back
    after it, so that the captured model trains on as the eager one would. Autocast's weight cache is off while
    capturing: a graph cannot use a cast made outside it. CUDA calls of other threads (a data loader pinning memory)
    may go on while capturing."""
    def step(images, *_):  # called while capturing only: the graph takes the parameters as its inputs
        return features(model, images, cfg)

    device = x.device
    buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]
    try:
        with torch.autocast(device.type, dtype=torch.get_autocast_dtype(device.type),
                            enabled=torch.is_autocast_enabled(device.type), cache_enabled=False):
            return torch.cuda.make_graphed_callables(step, (x.clone(), *params), num_warmup_iters=1,
                                                     allow_unused_input=True, capture_error_mode='thread_local')
    except Exception as error:  # noqa: BLE001 - a failed capture must not stop training
        if cfg['strict'] or isinstance(error, torch.OutOfMemoryError):
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
