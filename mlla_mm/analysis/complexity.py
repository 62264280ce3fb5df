"""Model complexity (parameters, FLOPs) of a config's whole model on a synthetic input."""
from typing import Dict, Optional, Sequence

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from ..apis.config import build_model, task_of
from ..models.decode_heads import MMSEG_EQUIVALENTS

DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 2048)}


def _with_mmseg_heads(model_cfg) -> None:
    """Heads of this package back to the mmseg heads they compute (``MMSEG_EQUIVALENTS``), in place: their resizes
    are matrix products, which the FLOP counter would count, where an interpolation is not (the paper's rule)."""
    for key in ('decode_head', 'auxiliary_head'):
        heads = model_cfg.get(key)
        for head in (heads if isinstance(heads, list) else [heads] if heads else []):
            head['type'] = MMSEG_EQUIVALENTS.get(head.get('type'), head.get('type'))


def _build_model(cfg: Config):
    scope = task_of(cfg)
    cfg.model.get('backbone', {}).pop('init_cfg', None)  # weights do not matter for counting
    _with_mmseg_heads(cfg.model)
    return scope, revert_sync_batchnorm(build_model(cfg)).eval()


def _synthetic_batch(scope, model, height, width):
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                scale_factor=(1.0, 1.0), batch_input_shape=(height, width))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=meta)
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
    return data['inputs'], data['data_samples']


class _TensorModeForward(torch.nn.Module):
    """The model's ``tensor``-mode forward with its data samples bound: the jit tracer takes tensors only."""

    def __init__(self, model, data_samples):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def count_complexity(cfg: Config, shape: Optional[Sequence[int]] = None) -> Dict:
    """``{'flops', 'params', 'shape', 'table'}`` of the config's model in ``tensor`` mode on one image.

    FLOPs are counted by mmengine's FlopAnalyzer (fvcore's rules: a multiply-add is one FLOP; convolutions,
    linear layers, every matmul / bmm / einsum and normalisations are counted, element-wise operations are not).
    """
    scope, model = _build_model(cfg)
    height, width = shape or DEFAULT_SHAPES[scope]
    inputs, data_samples = _synthetic_batch(scope, model, height, width)
    with torch.no_grad():
        analyzer = FlopAnalyzer(_TensorModeForward(model, data_samples), inputs=(inputs, ))
        # element-wise ops are left out on purpose (the paper's convention): no warning for each of them
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops = analyzer.total()
    params = sum(p.numel() for p in model.parameters())
    return dict(flops=flops, params=params, shape=(height, width), table=complexity_stats_table(analyzer))


def backbone_flops(model: torch.nn.Module, shape: Sequence[int]) -> float:
    """Multiply-adds of one forward pass of a backbone on one ``(3, H, W)`` image (mmengine's FlopAnalyzer)."""
    import copy
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
