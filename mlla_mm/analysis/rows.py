"""The rows a benchmark measures: which backbone (MLLA with its path and fast-path options, or a peer), built alone
or inside a config's whole model, and the batch it runs on.

Peers are the backbones a user would pick instead: Swin-T (mmdet's and mmseg's SwinTransformer with their
configs' settings), ResNet-50 (mmdet) and ConvNeXt-T (timm). In a whole model the peer replaces the config's
backbone and the neck and heads are re-wired to its channels, everything else the same.
"""
import copy
from typing import Callable, Dict, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from ..models.fast.config import FAST_CFG_DEFAULTS

PEERS = ('mlla', 'swin_t', 'resnet50', 'convnext_t')
PEER_NAMES = {'swin_t': 'Swin-T', 'resnet50': 'ResNet-50', 'convnext_t': 'ConvNeXt-T'}
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
ATTN_IMPLS = ('auto', 'plain', 'fast')
# MLLA's fast_cfg keys (its defaults apply to the keys not given)
FAST_CFG_KEYS = tuple(FAST_CFG_DEFAULTS)
ARCH_LETTERS = {'t': 'T', 'tiny': 'T', 's': 'S', 'small': 'S', 'b': 'B', 'base': 'B'}


class Row(NamedTuple):
    """One backbone to measure: a peer's key, and for MLLA its ``attn_impl`` and ``fast_cfg`` (None: defaults)."""
    peer: str
    attn_impl: Optional[str] = None
    fast_cfg: Optional[Dict] = None


def parse_fast_cfg(items: Sequence[str]) -> Dict:
    """``['cuda_graphs=false', 'compile_stages=all']`` -> ``{'cuda_graphs': False, 'compile_stages': 'all'}``:
    true/false as booleans, whole numbers as ints, anything else as a string; keys must be MLLA's fast_cfg keys."""
    fast_cfg = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'fast_cfg option {item!r} is not KEY=VALUE')
        if key not in FAST_CFG_KEYS:
            raise ValueError(f'fast_cfg key {key!r} is not one of {list(FAST_CFG_KEYS)}')
        lowered = value.lower()
        fast_cfg[key] = (lowered == 'true' if lowered in ('true', 'false')
                         else int(value) if value.lstrip('-').isdigit() else value)
    return fast_cfg


def row_variants(peers: Sequence[str], attn_impls: Sequence[str], fast_cfgs: Sequence[Dict]) -> list:
    """The rows of a run, in order: MLLA once per ``attn_impls`` entry (``'plain'`` once; ``'fast'`` / ``'auto'``
    once per ``fast_cfgs`` entry), each other peer once."""
    rows = []
    for peer in peers:
        if peer not in PEERS:
            raise ValueError(f'peer {peer!r} is not one of {list(PEERS)}')
        if peer != 'mlla':
            rows.append(Row(peer))
            continue
        for impl in attn_impls:
            if impl not in ATTN_IMPLS:
                raise ValueError(f'attn_impl {impl!r} is not one of {list(ATTN_IMPLS)}')
            if impl == 'plain':
                rows.append(Row(peer, impl))
            else:
                rows.extend(Row(peer, impl, dict(fast_cfg) or None) for fast_cfg in (fast_cfgs or [{}]))
    return rows


def arch_letter(arch) -> str:
    """``'tiny'`` -> ``'T'``: the letter of an MLLA arch name (a dict arch: ``'custom'``)."""
    if isinstance(arch, str):
        return ARCH_LETTERS.get(arch.lower(), arch)
    return 'custom'


def row_name(row: Row, arch='tiny', channels_last: bool = False) -> str:
    """``'MLLA-T fast'``, ``'MLLA-T fast cuda_graphs=False'``, ``'Swin-T'``, ...; ``' channels-last'`` appended
    when the model runs in that memory format."""
    if row.peer == 'mlla':
        name = f'MLLA-{arch_letter(arch)} {row.attn_impl}'
        name += ''.join(f' {key}={value}' for key, value in (row.fast_cfg or {}).items())
    else:
        name = PEER_NAMES[row.peer]
    return name + (' channels-last' if channels_last else '')


class TimmFeatures(nn.Module):
    """A timm model as a multi-scale backbone (features_only), with timm imported only when used."""

    def __init__(self, name: str):
        super().__init__()
        import timm
        self.model = timm.create_model(name, pretrained=False, features_only=True)

    def forward(self, x):
        return tuple(self.model(x))


def measured_fast_cfg(row: Row) -> Optional[Dict]:
    """The ``fast_cfg`` a row's MLLA is built with: the row's, and for ``'auto'`` training and inference compiled
    at once (``compile_training_after=0``, ``compile_inference_after=0`` unless the row sets them), since a
    benchmark measures the steady state."""
    fast_cfg = dict(row.fast_cfg or {})
    if row.attn_impl == 'auto':
        fast_cfg.setdefault('compile_training_after', 0)
        fast_cfg.setdefault('compile_inference_after', 0)
    return fast_cfg or None


def mlla_kwargs(row: Row, arch='tiny', with_cp: bool = False) -> Dict:
    """MLLA's arguments for a backbone-level row: no drop path (a fixed step), and ``fast_cfg`` only when given
    (:func:`measured_fast_cfg`)."""
    kwargs = dict(arch=arch, drop_path_rate=0.0, with_cp=with_cp, attn_impl=row.attn_impl)
    fast_cfg = measured_fast_cfg(row)
    if fast_cfg:
        kwargs['fast_cfg'] = fast_cfg
    return kwargs


def build_backbone(name: str, kwargs: Optional[Dict] = None) -> nn.Module:
    """``mlla`` (MLLA with ``kwargs``), ``swin_t``, ``resnet50`` or ``convnext_t``."""
    if name == 'mlla':
        from mlla_mm import MLLA
        return MLLA(**(kwargs or {}))
    if name == 'convnext_t':
        return TimmFeatures('convnext_tiny')
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    return MODELS.build(copy.deepcopy(PEER_BACKBONES[name]))


def backbone_batch(batch_size: int, shape: Sequence[int], device: torch.device) -> Callable[[], Dict]:
    """The maker of a random ``(batch_size, 3, H, W)`` batch for a backbone, the same for inference and training."""
    def make():
        x = torch.randn(batch_size, 3, *shape, device=device)
        return dict(predict=dict(x=x), train=dict(x=x))
    return make


def config_variant(cfg, row: Row):
    """A copy of the config whose model has MLLA's ``attn_impl`` / ``fast_cfg`` set from ``row``, or its backbone
    replaced by ``row``'s peer (neck and heads re-wired to the peer's channels); no pretrained weights."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    model.backbone.pop('init_cfg', None)
    if row.peer == 'mlla':
        if str(model.backbone.get('type')).split('.')[-1] != 'MLLA':
            raise ValueError(f'{getattr(cfg, "filename", "the config")}: model.backbone is '
                             f'{model.backbone.get("type")!r}, not MLLA')
        model.backbone.attn_impl = row.attn_impl
        fast_cfg = measured_fast_cfg(row)
        if fast_cfg:
            model.backbone.fast_cfg = fast_cfg
        return cfg
    if row.peer == 'convnext_t':
        raise ValueError('convnext_t is a backbone-level peer only (timm); whole models take swin_t or resnet50')
    model.backbone = copy.deepcopy(PEER_BACKBONES[row.peer])
    channels = PEER_CHANNELS[row.peer]
    if 'neck' in model:
        model.neck.in_channels = channels
    if 'decode_head' in model:
        model.decode_head.in_channels = channels
        if 'auxiliary_head' in model:
            model.auxiliary_head.in_channels = channels[2]
    return cfg


def task_name(cfg) -> str:
    """``'backbone'`` (no config), ``'mask_rcnn'``, ``'upernet'``, or the model's type in lower case."""
    if cfg is None:
        return 'backbone'
    model = cfg.model
    if model.get('type') == 'MaskRCNN':
        return 'mask_rcnn'
    if 'uper' in str(model.get('decode_head', {}).get('type', '')).lower():
        return 'upernet'
    return str(model.get('type', 'model')).lower()


def model_batch(task: str, data_preprocessor, batch_size: int, shape: Sequence[int], device: torch.device):
    """The maker of a preprocessed batch with ground truth: six boxes and masks per image (``task`` 'mmdet') or a
    class map ('mmseg'), the same batch for inference and training."""
    height, width = shape
    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 255, (3, height, width), dtype=torch.uint8, generator=generator))
        meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                    scale_factor=(1.0, 1.0))
        if task == 'mmdet':
            import numpy as np
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            boxes = []
            masks = np.zeros((6, height, width), dtype=np.uint8)
            for i in range(6):
                x0 = torch.randint(0, width // 2, (1, ), generator=generator).item()
                y0 = torch.randint(0, height // 2, (1, ), generator=generator).item()
                w, h = width // 4, height // 4
                boxes.append([x0, y0, x0 + w, y0 + h])
                masks[i, y0:y0 + h, x0:x0 + w] = 1
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                               labels=torch.randint(0, 3, (6, ), generator=generator),
                                               masks=BitmapMasks(masks, height, width))
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, height, width), generator=generator))
        samples.append(sample)
    data = data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    data = dict(inputs=data['inputs'].to(device), data_samples=[s.to(device) for s in data['data_samples']])

    def make():
        return dict(train=dict(inputs=data['inputs'], data_samples=data['data_samples'], mode='loss'),
                    predict=dict(inputs=data['inputs'], data_samples=data['data_samples'], mode='predict'))
    return make


def use_configs_cudnn_setting(cfg) -> bool:
    """cuDNN's autotuning as the config's ``env_cfg`` sets it for training (this project's configs and mmdet's: off;
    mmseg's: on); returns it."""
    torch.backends.cudnn.benchmark = bool(cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
    return torch.backends.cudnn.benchmark


def model_and_batch(cfg, row: Row, batch_size: int, shape: Sequence[int], device: torch.device):
    """The config's model with ``row``'s backbone, SyncBN turned into BatchNorm for one process, and the maker of
    its preprocessed batch (:func:`model_batch`)."""
    from mmengine.model import revert_sync_batchnorm

    from ..apis.config import build_model, task_of
    model = revert_sync_batchnorm(build_model(config_variant(cfg, row)))
    return model, model_batch(task_of(cfg), model.data_preprocessor.to(device), batch_size, shape, device)


def to_channels_last(model: nn.Module, make: Callable[[], Dict]):
    """``model`` with its 4-D weights in channels-last memory, and a batch maker whose 4-D inputs are too.

    Why measure it: under fp16 autocast cuDNN's fastest convolutions read and write NHWC, and a convolution whose
    input or weight is channels-last returns channels-last, so converting the weights carries the format through a
    head's convolutions, norms, resizes and concatenations."""
    model = model.to(memory_format=torch.channels_last)

    def convert(value):
        if isinstance(value, torch.Tensor) and value.dim() == 4:
            return value.contiguous(memory_format=torch.channels_last)
        return value

    def make_channels_last():
        return {mode: {key: convert(value) for key, value in inputs.items()} for mode, inputs in make().items()}
    return model, make_channels_last
