"""GroupedOptimWrapperConstructor: mmengine's paramwise rules in few parameter groups, and the configs that use it."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

from mlla_mm import MLLA
from mlla_mm.engine import merge_param_groups

PARAMWISE = dict(custom_keys={'norm': dict(decay_mult=0.), 'head.bias': dict(lr_mult=10.)})


class Detector(nn.Module):
    """A small MLLA with a head: norms (no decay), a bias with its own learning rate, and a frozen parameter."""

    def __init__(self):
        super().__init__()
        self.backbone = MLLA(dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]), attn_impl='plain')
        self.head = nn.Linear(128, 3)
        self.frozen = nn.Parameter(torch.zeros(2), requires_grad=False)


def optim_wrapper(model, constructor, **optimizer):
    cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, **optimizer),
               paramwise_cfg=copy.deepcopy(PARAMWISE))
    if constructor:
        cfg['constructor'] = constructor
    return build_optim_wrapper(model, cfg)


def options_by_parameter(optimizer):
    return {id(p): {k: v for k, v in group.items() if k != 'params'} for group in optimizer.param_groups
            for p in group['params']}


def test_groups_merge_with_every_parameter_keeping_its_options():
    torch.manual_seed(0)
    model = Detector()
    default = optim_wrapper(model, None).optimizer
    grouped = optim_wrapper(model, 'GroupedOptimWrapperConstructor').optimizer
    trainable = [p for p in model.parameters() if p.requires_grad]  # mmengine leaves frozen ones out
    assert len(default.param_groups) == len(trainable) > 50  # mmengine: one group per parameter
    # norms without decay, the head's bias at 10x, everything else as the optimizer says
    assert len(grouped.param_groups) == 3
    assert options_by_parameter(grouped) == options_by_parameter(default)
    norms = [p for name, p in model.named_parameters() if 'norm' in name]
    no_decay = {id(p) for g in grouped.param_groups if g['weight_decay'] == 0 for p in g['params']}
    assert no_decay == {id(p) for p in norms}
    assert [p for g in grouped.param_groups for p in g['params'] if g['lr'] == pytest.approx(1e-2)] == [model.head.bias]
    # every parameter once, in the model's order within each group
    order = {id(p): i for i, p in enumerate(trainable)}
    flat = [id(p) for g in grouped.param_groups for p in g['params']]
    assert sorted(flat) == sorted(order)
    for group in grouped.param_groups:
        indices = [order[id(p)] for p in group['params']]
        assert indices == sorted(indices)


def test_grouped_steps_equal_per_parameter_steps():
    """Same parameters after three AdamW steps, bit for bit (the single-tensor AdamW on the CPU)."""
    torch.manual_seed(0)
    models = [Detector(), None]
    models[1] = copy.deepcopy(models[0])
    initial = copy.deepcopy(models[0])
    wrappers = [optim_wrapper(models[0], None, foreach=False),
                optim_wrapper(models[1], 'GroupedOptimWrapperConstructor', foreach=False)]
    x = torch.randn(2, 3, 64, 64)
    for step in range(3):
        for model, wrapper in zip(models, wrappers):
            torch.manual_seed(step)
            feature = model.backbone(x)[-1].mean((2, 3))
            wrapper.update_params((model.head(feature) ** 2).mean())
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.equal(a, b), name
    moved = [not torch.equal(a, b) for a, b in zip(initial.parameters(), models[0].parameters())]
    assert sum(moved) > 50


def test_merge_keeps_unhashable_options_apart_by_value():
    a, b, c = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    merged = merge_param_groups([dict(params=[a], betas=[0.9, 0.99]), dict(params=[b], betas=[0.9, 0.999]),
                                 dict(params=[c], betas=[0.9, 0.99])])
    assert [(g['betas'], g['params']) for g in merged] == [([0.9, 0.99], [a, c]), ([0.9, 0.999], [b])]


@pytest.mark.parametrize('config', ['configs/detection/mask_rcnn_mlla_t.py', 'configs/segmentation/upernet_mlla_t.py'])
def test_paper_configs_build_two_groups_of_fused_adamw(config):
    from mlla_mm.apis import build_model, load_config
    cfg = load_config(config)
    cfg.model.backbone.arch = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
    if 'neck' in cfg.model:
        cfg.model.neck.in_channels = [16, 32, 64, 128]
    else:
        cfg.model.decode_head.in_channels = [16, 32, 64, 128]
        cfg.model.auxiliary_head.in_channels = 64
    model = build_model(cfg)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults['fused'] is True
    decay = [g['weight_decay'] for g in optimizer.param_groups]
    assert len(decay) == 2 and sorted(decay) == [0, cfg.optim_wrapper.optimizer.weight_decay], decay
    no_decay = {id(p) for g in optimizer.param_groups if g['weight_decay'] == 0 for p in g['params']}
    assert no_decay == {id(p) for name, p in model.named_parameters() if 'norm' in name}
