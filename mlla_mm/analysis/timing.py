"""Timing of a model's inference and training step, the same way for every backbone and precision.

Inference latency is the median of many timed iterations after warm-up (CUDA events on a GPU, wall clock on the
CPU); a training step is forward, backward and the optimizer's step under ``torch.autocast`` (fp16 / bf16) with a
GradScaler for fp16; its peak GPU memory is recorded with it.
"""
import copy
import functools
import statistics
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
# forms of the training step's optimizer: torch's AdamW (multi-tensor or fused) over all trainable parameters in
# one group, the config's optim_wrapper as training builds it, or none (forward and backward alone)
OPTIMIZER_FORMS = ('foreach', 'fused', 'config', 'none')


def synchronize(device: torch.device) -> None:
    """Wait for the device's work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], None], device: torch.device, warmup: int, iters: int,
              host_ms: Optional[List[float]] = None) -> List[float]:
    """Milliseconds of each of ``iters`` calls after ``warmup`` calls (CUDA events on a GPU). Each call starts on an
    idle device; ``host_ms``, when given, receives the milliseconds the host took to return from each call.

    Why the host's time: a GPU runs the kernels of a step while the host queues the next ones, so a step whose host
    time is close to its time on the device is bound by the host (launch overheads), not by the GPU. A step that
    waits for the GPU inside (e.g. a GradScaler with an optimizer that does not take the scale itself) includes
    that wait. On the CPU the two are the same."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(iters):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        fn()
        host = (time.perf_counter() - t0) * 1e3
        if device.type == 'cuda':
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            times.append(host)
        if host_ms is not None:
            host_ms.append(host)
    return times


def loss_of(outputs) -> torch.Tensor:
    """The summed loss of an mmdet / mmseg loss dict, or the mean of a backbone's feature maps."""
    if isinstance(outputs, dict):
        return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                   for k, v in outputs.items() if 'loss' in k)
    return sum(o.float().mean() for o in outputs)


def amp_tools(device: torch.device, precision: str):
    """The autocast context of a step at ``precision`` (none for fp32) and its GradScaler (scaling for fp16 only)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision {precision!r} is not one of {sorted(PRECISIONS)}')
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else nullcontext()
    return autocast, torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def train_step(model: nn.Module, inputs: Dict, optimizer: Optional[torch.optim.Optimizer], scaler, autocast,
               mark: Optional[Callable[[str], None]] = None) -> None:
    """One training step of ``model(**inputs)``: gradients cleared, forward under ``autocast``, the summed loss's
    backward through ``scaler``, then the optimizer's step (none if ``optimizer`` is None). ``mark(name)``, when
    given, is called after the loss ('loss'), the backward ('backward done') and the optimizer ('optimizer done')."""
    mark = mark or (lambda name: None)
    (model if optimizer is None else optimizer).zero_grad(set_to_none=True)
    with autocast:
        loss = loss_of(model(**inputs))
    mark('loss')
    scaler.scale(loss).backward()
    mark('backward done')
    if optimizer is not None:
        scaler.step(optimizer)
        scaler.update()
    mark('optimizer done')


def adamw(model: nn.Module, **options) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters of ``model``, in one group (``options``: e.g. ``fused=True``)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, **options)


def optimizer_maker(form: str, cfg=None) -> Callable[[nn.Module], Optional[torch.optim.Optimizer]]:
    """``model -> optimizer or None`` for one of :data:`OPTIMIZER_FORMS` (``'config'`` needs the config)."""
    if form == 'config':
        if cfg is None:
            raise ValueError("the optimizer form 'config' needs a config (its optim_wrapper)")
        from mmengine.optim import build_optim_wrapper
        return lambda model: build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)).optimizer
    makers = dict(foreach=adamw, fused=functools.partial(adamw, fused=True), none=lambda model: None)
    if form not in makers:
        raise ValueError(f'optimizer form {form!r} is not one of {list(OPTIMIZER_FORMS)}')
    return makers[form]


def measure(model: nn.Module, make_batch: Callable[[], Dict], device: torch.device, precision: str,
            warmup: int, iters: int, batch_size: int, train: bool = True,
            make_optimizer: Optional[Callable[[nn.Module], Optional[torch.optim.Optimizer]]] = None,
            infer: bool = True) -> Dict:
    """Inference and training-step timings of ``model(**make_batch()[mode])`` (``mode``: 'predict', 'train');
    ``train=False`` skips the training step, ``infer=False`` the inference.

    Keys: ``infer_ms``, ``images_per_s``, ``first_infer_s`` (the wall time of the first inference: for a compiled
    model mostly its compile), ``train_step_ms`` (median), ``train_step_ms_min``/``_max``, ``train_step_host_ms``
    (median of the host's times, :func:`time_call`),
    ``first_train_step_s`` (the wall time of the first training step: for a compiled model mostly its compile) and
    ``train_peak_mem_mib`` (GPU only). The step's optimizer is ``make_optimizer(model)`` (default: :func:`adamw`);
    None makes the step forward and backward alone.
    """
    autocast, scaler = amp_tools(device, precision)
    batch = make_batch()
    model = model.to(device)
    model.eval()

    def run_inference():
        with torch.no_grad(), autocast:
            model(**batch['predict'])

    result = {}
    if infer:
        start = time.perf_counter()
        run_inference()
        synchronize(device)
        result['first_infer_s'] = time.perf_counter() - start
        infer_ms = statistics.median(time_call(run_inference, device, max(warmup - 1, 0), iters))
        result.update(infer_ms=infer_ms, images_per_s=batch_size * 1e3 / infer_ms)
    if not train:
        return result

    model.train()
    optimizer = (make_optimizer or adamw)(model)

    def step():
        train_step(model, batch['train'], optimizer, scaler, autocast)

    if device.type == 'cuda':
        # Reset before the first step, not after it: CUDA graphs allocate a step's activations when they record it
        # (in the first steps) and replays allocate nothing, so a peak over replays alone would miss them.
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    result['first_train_step_s'] = time.perf_counter() - start
    host_ms = []
    train_ms = time_call(step, device, max(warmup - 1, 0), iters, host_ms)  # the first step was one of the warm-up
    result['train_step_ms'] = statistics.median(train_ms)
    result['train_step_ms_min'], result['train_step_ms_max'] = min(train_ms), max(train_ms)
    result['train_step_host_ms'] = statistics.median(host_ms)
    if device.type == 'cuda':
        result['train_peak_mem_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int = 8192, iters: int = 20) -> float:
    """Measured dense matmul throughput (FLOP/s, a multiply-add counting 2) of this device in ``dtype``."""
    if device.type != 'cuda':
        size, iters = 1024, 3
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = statistics.median(time_call(lambda: a @ b, device, 3, iters))
    return 2 * size ** 3 / (ms / 1e3)
