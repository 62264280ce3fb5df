"""From an official MLLA checkpoint (or an mmengine one) to the weights of the :class:`~mlla_mm.MLLA` backbone."""
import os
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from .download import download_checkpoint, is_url
from .model_checkpoint import ROPE_TABLE_SUFFIX, check_finite
from .safe_load import safe_torch_load, unwrap_state_dict

# Wrappers that prefix keys: DataParallel / DDP ('module.') and a whole detector or segmentor ('backbone.').
WRAPPER_PREFIXES = ('module.', 'backbone.')


def _skip_reason(key: str) -> str:
    """Why a key of the official classification model has no place in the backbone ('' if it has one)."""
    if key.startswith('head.'):
        return 'classifier head'
    if key in ('norm.weight', 'norm.bias'):
        return 'final norm of the classifier'
    if key.endswith(ROPE_TABLE_SUFFIX):
        return 'RoPE tables sized for 224x224 (recomputed for each feature size)'
    return ''


def backbone_state_dict(checkpoint, source: str = 'checkpoint'
                        ) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, List[str]]]:
    """The backbone's weights in ``checkpoint`` (a loaded file) and the keys left out, by reason."""
    state_dict = unwrap_state_dict(checkpoint, source)
    for entry in ('state_dict', 'model'):
        if state_dict is checkpoint and entry in checkpoint and not isinstance(checkpoint[entry], dict):
            raise TypeError(f'{source}: its {entry!r} entry is a {type(checkpoint[entry]).__name__}, not a dict of '
                            f'weights (name -> tensor)')
    weights: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    skipped: Dict[str, List[str]] = {}
    has_backbone_prefix = any(k.startswith('backbone.') or k.startswith('module.backbone.') for k in state_dict)
    for key, value in state_dict.items():
        name = key
        while name.startswith(WRAPPER_PREFIXES):
            name = name.split('.', 1)[1]
        if has_backbone_prefix and 'backbone.' not in key:
            skipped.setdefault('not part of the backbone (neck, heads)', []).append(key)
            continue
        reason = _skip_reason(name)
        if reason:
            skipped.setdefault(reason, []).append(key)
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'{source}: entry {key!r} is a {type(value).__name__}, not a tensor')
        weights[name] = value
    return weights, skipped


def _short_list(keys: List[str], limit: int = 12) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def check_shapes(own: Dict[str, torch.Tensor], weights: Dict[str, torch.Tensor], source: str, hint: str = ''):
    """Raise a ValueError naming the first key whose tensor in ``weights`` has another shape than in ``own``."""
    for key, value in weights.items():
        if key in own and hasattr(value, 'shape') and own[key].shape != value.shape:
            raise ValueError(f'{source}: shape mismatch for {key!r}: checkpoint has {tuple(value.shape)}, '
                             f'the model expects {tuple(own[key].shape)}{hint}')


def load_backbone_weights(module: nn.Module, weights: Dict[str, torch.Tensor], source: str = 'checkpoint',
                          skipped: Dict[str, List[str]] = None) -> str:
    """Copy ``weights`` into ``module`` and return a readable report of what matched and what did not.

    Raises:
        ValueError: a tensor's shape differs from the module's (naming the key and both shapes), no tensor of the
            checkpoint is one of the module's, or a tensor holds NaN or inf values (naming the keys).
    """
    own = module.state_dict()
    check_shapes(own, weights, source, hint=' (is the arch the same?)')
    matching = [key for key in weights if key in own]
    if not matching:
        found = f'its {len(weights)} tensors ({_short_list(list(weights), 3)}) have' if weights else 'it has'
        raise ValueError(f'{source}: no backbone weights: {found} none of the {len(own)} names of the MLLA '
                         f'backbone (e.g. {_short_list(list(own), 2)}); is it an MLLA checkpoint?')
    check_finite({key: weights[key] for key in matching}, source)
    result = module.load_state_dict(weights, strict=False)
    lines = [f'loaded {len(weights) - len(result.unexpected_keys)}/{len(own)} backbone tensors from {source}']
    if result.missing_keys:
        lines.append(f'  missing in the checkpoint ({len(result.missing_keys)}, left at their initial values): '
                     f'{_short_list(result.missing_keys)}')
    if result.unexpected_keys:
        lines.append(f'  in the checkpoint but not in the model ({len(result.unexpected_keys)}, ignored): '
                     f'{_short_list(result.unexpected_keys)}')
    for reason, keys in (skipped or {}).items():
        lines.append(f'  skipped ({reason}): {len(keys)} keys')
    return '\n'.join(lines)


def resolve_checkpoint(path_or_url: str) -> str:
    """A local file for ``path_or_url``: URLs are downloaded once into the checkpoint cache
    (:func:`mlla_mm.checkpoint.download.download_checkpoint`; ``#sha256=<hex>`` after a URL is checked)."""
    if not is_url(path_or_url):
        return path_or_url
    return download_checkpoint(path_or_url)


def load_pretrained_backbone(module: nn.Module, path_or_url: str) -> str:
    """Load a checkpoint (file or URL) into an MLLA backbone safely; return the report."""
    path = resolve_checkpoint(path_or_url)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'pretrained checkpoint not found: {path}\n'
            f'Download the ImageNet-1k weights of the official release (MLLA_T.pth / MLLA_S.pth / MLLA_B.pth, '
            f'linked from the "Pretrained Models" table of github.com/LeapLabTHU/MLLA) and put the file at {path}, '
            f"or point the backbone's init_cfg.checkpoint (e.g. --cfg-options "
            f"model.backbone.init_cfg.checkpoint=PATH) to it; init_cfg=None trains from scratch.")
    checkpoint = safe_torch_load(path)
    weights, skipped = backbone_state_dict(checkpoint, source=path)
    return load_backbone_weights(module, weights, source=path, skipped=skipped)


OFFICIAL_IMAGE_SIZE = 224  # the official model keeps RoPE tables for this input size as buffers


def official_rope_tables(model: nn.Module, prefix: str = '') -> Dict[str, torch.Tensor]:
    """The ``attn.rope.rotations`` buffers that the official code registers in every block of ``model`` (an MLLA
    backbone) for a 224x224 input: (size, size, channels / 2, 2) cos / sin tables. Files in the official layout
    carry them, so that the official code loads them without missing keys."""
    from ..models.layers import rope_tables
    tables = {}
    side = OFFICIAL_IMAGE_SIZE // model.patch_embed.patch_size
    for i, stage in enumerate(model.layers):
        size = side // 2 ** i
        cos, sin = rope_tables(size, size, model.num_features[i], torch.device('cpu'))
        rotations = torch.stack([cos, sin], dim=-1).reshape(size, size, -1, 2)
        for j in range(len(stage.blocks)):
            tables[f'{prefix}layers.{i}.blocks.{j}{ROPE_TABLE_SUFFIX}'] = rotations.clone()
    return tables
