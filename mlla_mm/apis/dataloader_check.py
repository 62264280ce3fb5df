"""Data loaders whose errors name files: a dataset that cannot be built or has no samples names its annotation
file and folders, and a data-pipeline error (e.g. an unreadable image) names the sample's files."""
from typing import List

from .checks import DataError, join_data_root, leaf_datasets


class _PipelineWithFileNames:
    """Calls a dataset's pipeline; an error raised for a sample gets the sample's file names in its message."""

    KEYS = ('img_path', 'seg_map_path')

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __call__(self, data_info):
        try:
            return self.pipeline(data_info)
        except Exception as e:
            files = [str(data_info[k]) for k in self.KEYS if isinstance(data_info, dict) and data_info.get(k)]
            if not files or all(f in str(e) for f in files):
                raise
            raise DataError(f'failed to load {" / ".join(files)}: {type(e).__name__}: {e}') from e

    def __getattr__(self, name):  # transforms, __repr__ helpers, ...
        if name == 'pipeline':
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self):
        return repr(self.pipeline)


def _leaves(dataset) -> List:
    inner = []
    if hasattr(dataset, 'datasets'):
        inner = list(dataset.datasets)
    elif hasattr(dataset, 'dataset'):
        inner = [dataset.dataset]
    return [leaf for d in inner for leaf in _leaves(d)] if inner else [dataset]


def _describe(dataset) -> str:
    ann = getattr(dataset, 'ann_file', None)
    prefix = getattr(dataset, 'data_prefix', None)
    parts = []
    if ann:
        parts.append(f'annotation file {ann}')
    if isinstance(prefix, dict) and prefix:
        parts.append(', '.join(f'{k}={v}' for k, v in prefix.items()))
    return f'{type(dataset).__name__}(' + '; '.join(parts) + ')'


def _describe_cfg(dataloader_cfg) -> str:
    parts = []
    ds_cfg = dataloader_cfg.get('dataset', None) if isinstance(dataloader_cfg, dict) else None
    for ds in leaf_datasets(ds_cfg):
        root = ds.get('data_root', None)
        bits = []
        if ds.get('ann_file'):
            bits.append(f'annotation file {join_data_root(root, ds["ann_file"])}')
        if isinstance(ds.get('data_prefix'), dict):
            bits.append(', '.join(f'{k}={join_data_root(root, v)}' for k, v in ds['data_prefix'].items()
                                  if isinstance(v, str)))
        elif root:
            bits.append(f'data_root={root}')
        parts.append(f'{ds.get("type", "?")}(' + '; '.join(bits) + ')')
    return ', '.join(parts) or repr(ds_cfg)


_EMPTY_HINT = 'no images in its annotation file / image folder, or none left after filter_cfg'


def checked_dataloader_builder(build):
    """Wrap ``Runner.build_dataloader``: dataset errors name the dataset's files, empty datasets are refused and
    data-pipeline errors name the sample's files."""

    def build_dataloader(dataloader, *args, **kwargs):
        if not isinstance(dataloader, dict):
            return build(dataloader, *args, **kwargs)
        try:
            loader = build(dataloader, *args, **kwargs)
        except DataError:
            raise
        except Exception as e:
            where = _describe_cfg(dataloader)
            if 'need at least one array to concatenate' in str(e):  # mmengine serialising an empty data list
                raise DataError(f'the dataset {where} has no samples ({_EMPTY_HINT})') from e
            raise DataError(f'could not build the dataset {where}: {type(e).__name__}: {e}') from e
        dataset = loader.dataset
        for leaf in _leaves(dataset):
            if len(leaf) == 0:
                raise DataError(f'the dataset {_describe(leaf)} has no samples ({_EMPTY_HINT})')
            if callable(getattr(leaf, 'pipeline', None)) and not isinstance(leaf.pipeline, _PipelineWithFileNames):
                leaf.pipeline = _PipelineWithFileNames(leaf.pipeline)
        return loader

    return build_dataloader
