"""One rule for the weights of a whole model (detector or segmentor): a checkpoint loads only if it fits.

``tools/test.py``, ``load_from``, ``--resume``, ``tools/demo.py`` and :mod:`mlla_mm.apis.inference` all load through
:func:`fit_model_checkpoint`. A checkpoint fits when every tensor of the model is in it with the model's shape and it
holds nothing else, except known and explained differences:

- the RoPE tables (``...attn.rope.rotations``) of the official release, sized for a 224x224 input: the backbone
  computes them for each feature size, so they are skipped with one line of report;
- ``num_batches_tracked`` counters of BatchNorm layers, which older files may lack.

Anything else (missing, extra or reshaped tensors, no weights at all, NaN or inf values) is refused with the keys
named: a partly random model would give a wrong answer without saying so.
"""
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

ROPE_TABLE_SUFFIX = '.attn.rope.rotations'
ROPE_TABLE_REASON = 'RoPE tables of the official release, sized for 224x224 (recomputed for each input size)'
OPTIONAL_SUFFIXES = ('num_batches_tracked', )
WRAPPER_PREFIX = 'module.'  # DataParallel / DistributedDataParallel


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into; the message names the file and the keys."""


def short_list(keys: List[str], limit: int = 5) -> str:
    """``a, b, c, ... (N more)``: a few keys and how many others."""
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def whole_model_state_dict(checkpoint: Any, source: str) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a loaded checkpoint (``state_dict`` or ``model`` entry, or the file itself), without the
    ``module.`` prefix of a wrapped model.

    Raises:
        TypeError: the file is not a dict of tensors (the message names the file and the entry).
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{source}: expected a dict of weights, got a {type(checkpoint).__name__}')
    state_dict = checkpoint
    for entry in ('state_dict', 'model'):
        if entry in checkpoint:
            if not isinstance(checkpoint[entry], dict):
                raise TypeError(f'{source}: its {entry!r} entry is a {type(checkpoint[entry]).__name__}, not a '
                                f'dict of weights (name -> tensor)')
            state_dict = checkpoint[entry]
            break
    weights: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'{source}: entry {key!r} is a {type(value).__name__}, not a tensor: the file does not '
                            f'hold the weights of a model')
        weights[key[len(WRAPPER_PREFIX):] if key.startswith(WRAPPER_PREFIX) else key] = value
    return weights


def check_finite(weights: Dict[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError naming the tensors that hold NaN or inf values."""
    bad = [key for key, value in weights.items()
           if value.is_floating_point() or value.is_complex()
           if not bool(torch.isfinite(value).all())]
    if bad:
        raise ValueError(f'{source}: {len(bad)} tensor(s) hold NaN or inf values: {short_list(bad)} '
                         f'(the training that wrote it diverged, or the file is damaged)')


def fit_model_checkpoint(model: nn.Module, checkpoint: Any, source: str
                         ) -> Tuple['OrderedDict[str, torch.Tensor]', Optional[str]]:
    """The weights of ``checkpoint`` for ``model`` and a one-line report of what was skipped (None: nothing).

    Raises:
        TypeError: the file does not hold a dict of tensors.
        CheckpointMismatchError: tensors missing, extra or of other shapes (named with the file).
        ValueError: NaN or inf values (named).
    """
    weights = whole_model_state_dict(checkpoint, source)
    own = model.state_dict()
    rope_tables = [key for key in weights if key.endswith(ROPE_TABLE_SUFFIX) and key not in own]
    for key in rope_tables:
        del weights[key]
    missing = [key for key in own if key not in weights and not key.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [key for key in weights if key not in own]
    reshaped = [f'{key!r} {tuple(value.shape)} (model: {tuple(own[key].shape)})'
                for key, value in weights.items() if key in own and own[key].shape != value.shape]
    if missing or unexpected or reshaped:
        problems = []
        if not weights:
            problems.append('it holds no weights at all')
        elif missing:
            problems.append(f'{len(missing)} of the model\'s {len(own)} tensors are not in it: {short_list(missing)}')
        if unexpected:
            problems.append(f'{len(unexpected)} of its tensors are not in the model: {short_list(unexpected)}')
        if reshaped:
            problems.append(f'{len(reshaped)} tensor(s) have another shape: {short_list(reshaped, 3)}')
        hint = ''
        if weights and all(not key.startswith(('backbone.', 'neck.', 'decode_head.')) for key in weights):
            hint = (" (a backbone or ImageNet checkpoint? load it with the backbone's "
                    "init_cfg=dict(type='Pretrained', checkpoint=...))")
        raise CheckpointMismatchError(f'checkpoint {source} does not fit the config{hint}: ' + '; '.join(problems))
    check_finite(weights, source)
    report = f'{source}: skipped {len(rope_tables)} {ROPE_TABLE_REASON}' if rope_tables else None
    return weights, report


def load_model_checkpoint(model: nn.Module, checkpoint: Any, source: str) -> Optional[str]:
    """Copy a fitting checkpoint into ``model`` (see :func:`fit_model_checkpoint`); return its report line."""
    weights, report = fit_model_checkpoint(model, checkpoint, source)
    model.load_state_dict(weights, strict=False)  # only optional counters can be absent after the fit check
    return report


def checkpoint_dataset_meta(checkpoint: Any) -> Dict[str, Any]:
    """Class names and palette saved in a checkpoint, as mmengine's ``dataset_meta`` (``classes``, ``palette``).

    mmengine checkpoints keep ``meta['dataset_meta']``; files of mmdet 2.x / mmseg 0.x (the official release) keep
    ``meta['CLASSES']`` and ``meta['PALETTE']``.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        return {}
    if isinstance(meta.get('dataset_meta'), dict) and meta['dataset_meta']:
        return {key.lower(): value for key, value in meta['dataset_meta'].items()}
    dataset_meta = {}
    if meta.get('CLASSES') is not None:
        dataset_meta['classes'] = tuple(meta['CLASSES'])
    if meta.get('PALETTE') is not None:
        dataset_meta['palette'] = [tuple(int(c) for c in colour) for colour in meta['PALETTE']]
    return dataset_meta


def drop_official_rope_tables(module: nn.Module, state_dict: Dict[str, Any], prefix: str, *args) -> None:
    """Load-state-dict pre-hook of the MLLA backbone: remove the official release's RoPE tables (which the
    backbone recomputes) from a state dict loaded by any API (mmdet's ``init_detector``, mmseg's ``init_model``,
    ``load_state_dict``), reporting them in one line instead of a list of unexpected keys."""
    own = set(module.state_dict(prefix=prefix))
    tables = [key for key in state_dict
              if key.startswith(prefix) and key.endswith(ROPE_TABLE_SUFFIX) and key not in own]
    for key in tables:
        del state_dict[key]
    if tables:
        from mmengine.logging import print_log
        print_log(f'skipped {len(tables)} {ROPE_TABLE_REASON}', logger='current')
