"""Speed and memory of MLLA against the backbones a user would pick instead, measured in one process.

Two levels:

- ``backbone``: the backbone alone on a ``(B, 3, H, W)`` batch: MLLA (arch of choice), Swin-T (mmdet),
  ResNet-50 (mmdet) and ConvNeXt-T (timm);
- ``detector`` / ``segmentor``: the whole model of a config (Mask R-CNN or UperNet) with its backbone swapped for
  each peer, everything else the same.

For each: inference latency (median of many timed iterations after warm-up; CUDA events on a GPU, wall clock on
the CPU), images per second, one training step (forward, backward, optimizer step) and the peak GPU memory of that
step. Precisions: fp32, and fp16 / bf16 autocast (``torch.autocast``).
"""
import copy
import statistics
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}

# Backbone settings of the peers, as mmdet's configs give them (stage outputs at strides 4-32).
PEER_BACKBONES = {
    'swin_t': dict(type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                   window_size=7, mlp_ratio=4, qkv_bias=True, drop_path_rate=0.2, patch_norm=True,
                   out_indices=(0, 1, 2, 3), with_cp=False),  # keys both mmdet's and mmseg's Swin take
    'resnet50': dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                     norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch'),
}
PEER_CHANNELS = {'swin_t': [96, 192, 384, 768], 'resnet50': [256, 512, 1024, 2048],
                 'convnext_t': [96, 192, 384, 768]}


class TimmFeatures(nn.Module):
    """A timm model as a multi-scale backbone (features_only), with timm imported only when used."""

    def __init__(self, name: str):
        super().__init__()
        import timm
        self.model = timm.create_model(name, pretrained=False, features_only=True)

    def forward(self, x):
        return tuple(self.model(x))


def build_backbone(name: str, mlla_kwargs: Optional[Dict] = None) -> nn.Module:
    """``mlla`` (with ``mlla_kwargs``), ``swin_t``, ``resnet50`` or ``convnext_t``."""
    if name == 'mlla':
        from mlla_mm import MLLA
        return MLLA(**(mlla_kwargs or {}))
    if name == 'convnext_t':
        return TimmFeatures('convnext_tiny')
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    return MODELS.build(copy.deepcopy(PEER_BACKBONES[name]))


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], None], device: torch.device, warmup: int, iters: int) -> List[float]:
    """Milliseconds of each of ``iters`` calls after ``warmup`` calls (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def _loss_of(outputs) -> torch.Tensor:
    if isinstance(outputs, dict):  # mmdet / mmseg loss dict
        return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                   for k, v in outputs.items() if 'loss' in k)
    return sum(o.float().mean() for o in outputs)


def amp_tools(device: torch.device, precision: str):
    """The autocast context of a step at ``precision`` (none for fp32) and its GradScaler (scaling for fp16 only)."""
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
        loss = _loss_of(model(**inputs))
    mark('loss')
    scaler.scale(loss).backward()
    mark('backward done')
    if optimizer is not None:
        scaler.step(optimizer)
        scaler.update()
    mark('optimizer done')


def measure(model: nn.Module, make_batch: Callable[[], Dict], device: torch.device, precision: str,
            warmup: int, iters: int, batch_size: int, train: bool = True,
            make_optimizer: Optional[Callable[[nn.Module], Optional[torch.optim.Optimizer]]] = None,
            infer: bool = True) -> Dict:
    """Inference and training-step timings of ``model(**make_batch())`` (``mode`` keys for mmdet/mmseg models);
    ``train=False`` skips the training step, ``infer=False`` the inference.

    ``first_train_step_s``: the wall time of the first training step, which for a compiled model is mostly its
    compile (with ``infer=False`` the inference graphs are not compiled before it).

    The training step's optimizer is ``make_optimizer(model)``; by default torch's AdamW in its default
    (multi-tensor) form over the trainable parameters, in one group. Should ``make_optimizer`` return None, the
    step is forward and backward alone.
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
        infer_ms = time_call(run_inference, device, warmup, iters)
        result.update(infer_ms=statistics.median(infer_ms),
                      images_per_s=batch_size * 1e3 / statistics.median(infer_ms))
    if not train:
        return result

    model.train()
    optimizer = (make_optimizer or adamw)(model)

    def step():
        train_step(model, batch['train'], optimizer, scaler, autocast)

    if device.type == 'cuda':
        # The peak is reset before the first step, not after it. Why: CUDA graphs allocate a step's activations
        # once, when they record it (in the first steps), and replays allocate nothing; a peak taken over replays
        # alone misses them (measured on an H100: 482 MiB for a step that needs 3.9 GiB, 2026-11-27).
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    step()
    _sync(device)
    result['first_train_step_s'] = time.perf_counter() - start
    train_ms = time_call(step, device, max(warmup - 1, 0), iters)  # that first step was one of the warm-up
    result['train_step_ms'] = statistics.median(train_ms)
    result['train_step_ms_min'], result['train_step_ms_max'] = min(train_ms), max(train_ms)
    if device.type == 'cuda':
        result['train_peak_mem_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def adamw(model: nn.Module, **options) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters of ``model``, in one group (``options``: e.g. ``fused=True``)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, **options)


def backbone_batch(batch_size: int, shape: Sequence[int], device: torch.device) -> Callable[[], Dict]:
    def make():
        x = torch.randn(batch_size, 3, *shape, device=device)
        return dict(predict=dict(x=x), train=dict(x=x))
    return make


def backbone_flops(model: nn.Module, shape: Sequence[int]) -> float:
    """Multiply-adds of one forward pass of a backbone on one image (mmengine's FlopAnalyzer)."""
    from mmengine.analysis import FlopAnalyzer
    model = copy.deepcopy(model).cpu()
    model.eval()  # not chained: mmdet's Swin.train() returns None
    for module in model.modules():  # the tracer cannot walk `None` children (mmdet's Swin has some)
        for name, child in list(module._modules.items()):
            if child is None:
                del module._modules[name]
                object.__setattr__(module, name, None)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs=(torch.zeros(1, 3, *shape), ))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
        return float(analyzer.total())
