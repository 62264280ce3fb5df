"""The module that goes into an ONNX file: a config's segmentor, or a detector's backbone or neck, in eval mode.

What changes against training, and why (each change is returned as a note for the user):

* the MLLA backbone runs its plain path (``attn_impl='plain'``), module by module: the fast path's compiled,
  fused functions are not exportable, and the weights are the same;
* SyncBN becomes BN (one process, eval mode: the same computation);
* this project's matrix-product-resize heads become the mmseg heads they compute (same parameters and keys;
  :data:`~mlla_mm.models.decode_heads.MMSEG_EQUIVALENTS`): their interpolation matrices are built in Python for
  each input size and would be frozen into the graph, where ``F.interpolate`` exports as one ONNX ``Resize`` that
  follows the input's size;
* with a checkpoint, ``init_cfg`` entries of type ``Pretrained`` are cleared (the checkpoint holds every weight);
  without one, those naming a missing local file are cleared and the config's random initialisation is used.
"""
import copy
import logging
import os.path as osp
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from ..apis import build_model, convert_syncbn, task_of
from ..apis.inference import load_fitting_checkpoint
from ..models.decode_heads import MMSEG_EQUIVALENTS

PARTS = ('model', 'backbone', 'neck')


class SegmentorLogits(nn.Module):
    """An mmseg segmentor as one function: normalised ``(N, 3, H, W)`` images -> ``(N, classes, H, W)`` logits.

    The segmentor's ``tensor`` mode (backbone, neck, decode head), then the bilinear resize to the input's size
    that the decode head's ``predict_by_feat`` applies (with its ``align_corners``)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor._forward(inputs)
        return F.interpolate(logits, size=inputs.shape[2:], mode='bilinear',
                             align_corners=self.segmentor.decode_head.align_corners)


class Features(nn.Module):
    """The backbone's feature maps, or the neck's on them: images -> a tuple of ``(N, C_i, H_i, W_i)`` maps."""

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module] = None):
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        features = self.backbone(inputs)
        return tuple(self.neck(features) if self.neck is not None else features)


def _pretrained_init_cfgs(node: Any, path: str = 'model') -> List[Tuple[dict, str]]:
    """Every ``(owner, key path)`` whose ``init_cfg`` is of type ``Pretrained`` in a config tree."""
    found = []
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            found.append((node, f'{path}.init_cfg'))
        for key, value in node.items():
            if key != 'init_cfg':
                found += _pretrained_init_cfgs(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _pretrained_init_cfgs(value, f'{path}[{i}]')
    return found


def prepare_export_config(cfg: Config, checkpoint: Optional[str]) -> Tuple[Config, List[str]]:
    """A copy of ``cfg`` set up for export (see the module's docstring), and notes on what was changed."""
    cfg = copy.deepcopy(cfg)
    notes = []
    model = cfg.model
    backbone = model.get('backbone')
    if isinstance(backbone, dict) and backbone.get('type') == 'MLLA':
        backbone['attn_impl'] = 'plain'
        notes.append("model.backbone.attn_impl = 'plain' (the exported graph is the reference path)")
    if convert_syncbn(model):
        notes.append('SyncBN -> BN (one process, eval mode)')
    for key in ('decode_head', 'auxiliary_head'):
        heads = model.get(key)
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            if isinstance(head, dict) and head.get('type') in MMSEG_EQUIVALENTS:
                old, head['type'] = head['type'], MMSEG_EQUIVALENTS[head['type']]
                notes.append(f'model.{key}: {old} -> {head["type"]} (same parameters; its resizes export as '
                             f'ONNX Resize, which follows the input size)')
    for owner, where in _pretrained_init_cfgs(model):
        weights = owner['init_cfg'].get('checkpoint')
        if checkpoint is not None:
            owner['init_cfg'] = None
            notes.append(f'{where} (Pretrained {weights}) cleared: the checkpoint {checkpoint} holds the weights')
        elif isinstance(weights, str) and '://' not in weights and not osp.isfile(weights):
            owner['init_cfg'] = None
            notes.append(f'{where}: Pretrained file {weights} not found, cleared: the exported weights are the '
                         f"config's random initialisation")
    return cfg, notes


def build_export_module(cfg: Config, checkpoint: Optional[str] = None, part: str = 'model'
                        ) -> Tuple[nn.Module, nn.Module, List[str]]:
    """``(module to export, PyTorch reference, notes)`` for a config and an optional checkpoint, both on the CPU
    in eval mode with the same weights.

    ``part``: ``'model'`` (a segmentor whole: :class:`SegmentorLogits`), ``'backbone'`` or ``'neck'`` (the
    backbone's or the neck's feature maps: :class:`Features`). The reference is the same part built from the
    config as written (its own heads, with SyncBN as BN), so that the comparison covers the head swap too.
    """
    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')
    task = task_of(cfg)
    if part == 'model' and task == 'mmdet':
        raise ValueError('a whole detector exports through mmdeploy, which this stack cannot install (see '
                         'docs/deployment.md): export --part backbone or --part neck')
    if part == 'neck' and not cfg.model.get('neck'):
        raise ValueError(f'--part neck: the config {cfg.filename} has no model.neck')
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')

    export_cfg, notes = prepare_export_config(cfg, checkpoint)
    model = build_model(export_cfg)
    if checkpoint is None:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # init_weights logs every tensor it initialises
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        load_fitting_checkpoint(model, checkpoint)  # the rule every whole-model checkpoint meets
    model.eval()

    reference_cfg = copy.deepcopy(cfg)
    reference_cfg.model = copy.deepcopy(export_cfg.model)
    for key in ('decode_head', 'auxiliary_head'):
        if key in cfg.model:
            reference_cfg.model[key] = copy.deepcopy(cfg.model[key])
            convert_syncbn(reference_cfg.model[key])
    reference = build_model(reference_cfg)
    reference.load_state_dict(model.state_dict(), strict=True)
    reference.eval()

    if part == 'model':
        return SegmentorLogits(model), SegmentorLogits(reference), notes
    neck = part == 'neck'
    return (Features(model.backbone, model.neck if neck else None),
            Features(reference.backbone, reference.neck if neck else None), notes)
