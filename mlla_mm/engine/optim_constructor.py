"""An optimizer wrapper constructor that keeps mmengine's per-parameter rules but not one group per parameter.

mmengine's ``DefaultOptimWrapperConstructor`` applies ``paramwise_cfg`` (here: no weight decay on norms) by giving
every parameter a parameter group of its own: 521 groups for Mask R-CNN with MLLA-T. torch's optimizers run their
multi-tensor (``foreach``) or fused kernels once per group, so an AdamW step then costs hundreds of small kernel
launches and as many passes of Python bookkeeping, on a train step that is already bound by the host on a GPU
(docs/speed.md). :class:`GroupedOptimWrapperConstructor` applies the same rules, then merges the parameters whose
options are equal into one group each: two for the MLLA recipes (with and without weight decay).
"""
from typing import Dict, List, Optional, Union

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


def merge_param_groups(groups: List[Dict]) -> List[Dict]:
    """Groups with equal options (every key but ``params``) as one group each, in order of first appearance;
    parameters keep their order within the merged groups."""
    merged: Dict[tuple, Dict] = {}
    for group in groups:
        options = {key: value for key, value in group.items() if key != 'params'}
        # repr: options may hold unhashable values (betas as lists from a config); floats repr exactly
        key = tuple(sorted((name, repr(value)) for name, value in options.items()))
        if key not in merged:
            merged[key] = dict(params=[], **options)
        merged[key]['params'].extend(group['params'])
    return list(merged.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (same ``paramwise_cfg`` keys, same options for every parameter), with the
    per-parameter groups merged by :func:`merge_param_groups`.

    In a config:
    ``optim_wrapper = dict(constructor='GroupedOptimWrapperConstructor', optimizer=..., paramwise_cfg=...)``.
    An optimizer state saved with one group per parameter (by the default constructor) does not load into it: torch
    checks the number of groups.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        if prefix:  # a submodule, reached by the parent class's walk from the model: its rules as they are
            super().add_params(params, module, prefix, is_dcn_module)
            return
        one_per_parameter: List[dict] = []
        super().add_params(one_per_parameter, module, prefix, is_dcn_module)
        params.extend(merge_param_groups(one_per_parameter))
