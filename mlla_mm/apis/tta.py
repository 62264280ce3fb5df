"""Test-time augmentation for ``tools/test.py --tta``: the config's ``tta_model`` / ``tta_pipeline``, or mmdet's
``DetTTAModel`` / mmseg's ``SegTTAModel`` with a horizontal flip of the test pipeline."""
import copy
from typing import Any, List

from mmengine.config import Config

from .config import add_note


def _has_key(node: Any, key: str) -> bool:
    """Whether a config (sub)tree has ``key`` set to something other than None."""
    if isinstance(node, dict):
        return (node.get(key, None) is not None) or any(_has_key(v, key) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_key(v, key) for v in node)
    return False


def _find_pack_transform(pipeline: List[dict]) -> int:
    for i in range(len(pipeline) - 1, -1, -1):
        if str(pipeline[i].get('type', '')).split('.')[-1].startswith('Pack'):
            return i
    raise ValueError('cannot build a flip test-time-augmentation pipeline: the test pipeline has no Pack* '
                     'transform; add tta_pipeline to the config')


def _default_tta_pipeline(cfg: Config, task: str) -> List[dict]:
    """The test pipeline with its final Pack* transform replaced by horizontal flip / no flip."""
    ds = cfg.test_dataloader.dataset
    while isinstance(ds.get('dataset'), dict):
        ds = ds['dataset']
    pipeline = copy.deepcopy(list(ds.pipeline))
    i = _find_pack_transform(pipeline)
    pack = dict(pipeline[i])
    if 'meta_keys' in pack:
        pack['meta_keys'] = tuple(pack['meta_keys']) + tuple(k for k in ('flip', 'flip_direction')
                                                             if k not in pack['meta_keys'])
    flips = [dict(type='RandomFlip', prob=1., direction='horizontal'),
             dict(type='RandomFlip', prob=0., direction='horizontal')]
    pipeline[i] = dict(type='TestTimeAug', transforms=[flips, [pack]])
    return pipeline


def apply_tta(cfg: Config, task: str) -> None:
    """Wrap ``cfg.model`` in the test-time-augmentation model and give the test set the TTA pipeline (in place)."""
    if 'tta_model' not in cfg:
        if task == 'mmdet':
            cfg.tta_model = dict(type='DetTTAModel',
                                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        else:
            cfg.tta_model = dict(type='SegTTAModel')
        add_note(cfg, f'--tta: no tta_model in the config, using {cfg.tta_model}')
    if (task == 'mmdet' and str(cfg.tta_model.get('type', '')).split('.')[-1] == 'DetTTAModel'
            and _has_key(cfg.model, 'mask_head')):
        raise ValueError('--tta: mmdet 3.x test-time augmentation (DetTTAModel) merges boxes only and fails '
                         'on instance masks, which this model predicts (it has a mask_head); test without '
                         '--tta, or set a tta_model that merges masks')
    if 'tta_pipeline' not in cfg:
        cfg.tta_pipeline = _default_tta_pipeline(cfg, task)
        add_note(cfg, '--tta: no tta_pipeline in the config, using the test pipeline with horizontal flip')
    tta_model = copy.deepcopy(cfg.tta_model)
    tta_model['module'] = cfg.model
    cfg.model = tta_model
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
