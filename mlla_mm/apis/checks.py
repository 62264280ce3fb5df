"""Input checks that fail early and name the file: data roots, annotation files and image folders of the data
loaders that will run, and local checkpoints (``--resume PATH``, ``load_from``, a backbone's ``Pretrained``)."""
import os
import os.path as osp
from typing import Any, Dict, Iterable, Optional, Sequence

from mmengine.config import Config


class DataError(RuntimeError):
    """A dataset or a data sample could not be loaded; the message names the files involved."""


def is_remote(path: str) -> bool:
    return '://' in str(path)


def join_data_root(root: Optional[str], path: str) -> str:
    """How mmengine's BaseDataset joins ``data_root`` and a relative path."""
    if root and not osp.isabs(path) and not is_remote(path):
        return osp.join(root, path)
    return path


def leaf_datasets(ds_cfg: Any) -> Iterable[Dict]:
    """The dataset configs inside dataset wrappers (``dataset=`` / ``datasets=[...]``), including plain ones."""
    if not isinstance(ds_cfg, dict):
        return
    inner = [ds_cfg['dataset']] if isinstance(ds_cfg.get('dataset'), dict) else []
    if isinstance(ds_cfg.get('datasets'), (list, tuple)):
        inner += [d for d in ds_cfg['datasets'] if isinstance(d, dict)]
    if inner:
        for d in inner:
            yield from leaf_datasets(d)
    else:
        yield ds_cfg


def _check_file(path: str, what: str) -> None:
    if is_remote(path):
        return
    if not osp.exists(path):
        raise FileNotFoundError(f'{what}: {path} does not exist (current directory: {os.getcwd()})')
    if osp.isfile(path) and osp.getsize(path) == 0:
        raise DataError(f'{what}: {path} is empty (0 bytes)')


def check_dataset_paths(cfg: Config, splits: Sequence[str]) -> None:
    """Check that the data root, annotation file(s) and data folders of ``<split>_dataloader`` for each split
    exist and that annotation files are not empty, as the datasets will join them; also the ``ann_file`` of
    ``<split>_evaluator`` (COCO metrics). Raises FileNotFoundError / DataError naming the file."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader', None)
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        for ds in leaf_datasets(loader['dataset']):
            where = f'{split}_dataloader dataset ({ds.get("type", "?")})'
            data_root = ds.get('data_root', None)
            if data_root and not is_remote(data_root) and not osp.isdir(data_root):
                raise FileNotFoundError(f'{where}: data_root {data_root} does not exist '
                                        f'(current directory: {os.getcwd()})')
            ann_file = ds.get('ann_file', None)
            if ann_file:
                _check_file(join_data_root(data_root, ann_file), f'{where}: ann_file')
            prefixes = ds.get('data_prefix', None)
            if isinstance(prefixes, dict):
                for key, prefix in prefixes.items():
                    if isinstance(prefix, str) and prefix:
                        _check_file(join_data_root(data_root, prefix), f'{where}: data_prefix.{key}')
        evaluators = cfg.get(f'{split}_evaluator', None)
        for ev in (evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]):
            if isinstance(ev, dict) and isinstance(ev.get('ann_file'), str) and ev['ann_file']:
                _check_file(ev['ann_file'], f'{split}_evaluator ({ev.get("type", "?")}): ann_file')


def check_checkpoint(path: Optional[str], what: str = 'checkpoint') -> None:
    """A local checkpoint path must be an existing file (URLs and other schemes are left to the loaders)."""
    if path is None or is_remote(path):
        return
    full = osp.expanduser(str(path))
    if not osp.isfile(full):
        raise FileNotFoundError(f'{what}: {path} does not exist' + ('' if osp.isabs(full) else
                                                                   f' (current directory: {os.getcwd()})'))


def pretrained_checkpoints(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
            yield node['checkpoint']
        for value in node.values():
            yield from pretrained_checkpoints(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from pretrained_checkpoints(value)
