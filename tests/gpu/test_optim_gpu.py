"""The configs' optimizer on a GPU under fp16 AMP: GroupedOptimWrapperConstructor with fused AdamW, in mmengine's
AmpOptimWrapper with gradient clipping (as the demo config trains), steps as mmengine's default constructor with
torch's default AdamW does."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mlla_mm import MLLA

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def _step_updates(lr_scale: float = 1.0):
    """Each step's parameter update of the two optimizers, from the same weights and the same gradients."""
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 16])
    models = [MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda()]
    models.append(copy.deepcopy(models[0]))
    base = dict(type='AmpOptimWrapper', loss_scale=dict(init_scale=2.**10), clip_grad=dict(max_norm=0.05),
                paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
    wrappers = [build_optim_wrapper(models[0], dict(base, optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))),
                build_optim_wrapper(models[1], dict(base, constructor='GroupedOptimWrapperConstructor',
                                                    optimizer=dict(type='AdamW', lr=1e-3 * lr_scale,
                                                                   weight_decay=0.05, fused=True)))]
    assert len(wrappers[0].optimizer.param_groups) > 50 and len(wrappers[1].optimizer.param_groups) == 2
    updates = []
    for step in range(3):
        # Why the same weights and the same gradients for both at each step: fp16 autocast rounds the weights to
        # fp16, where a last-bit difference between fused and foreach AdamW can flip a whole fp16 ulp, and two
        # free runs drift apart; this way each step's difference is the optimizers' alone.
        with torch.no_grad():
            for p, q in zip(models[0].parameters(), models[1].parameters()):
                q.copy_(p)
        before = [p.detach().clone() for p in models[0].parameters()]
        x = torch.randn(2, 3, 96, 128, device='cuda', generator=torch.Generator('cuda').manual_seed(step))
        with wrappers[0].optim_context(models[0]):
            outs = models[0](x)
        # a fixed random projection of the outputs: their mean square would leave the gradients of the LayerNorm-ed
        # outputs at rounding noise, which Adam then amplifies
        generator = torch.Generator('cuda').manual_seed(99)
        # (a mean: a sum's fp16 weight gradients overflow at the loss scale of 2**10)
        wrappers[0].backward(sum((o.float() * torch.randn(o.shape, device='cuda', generator=generator)).mean()
                                 for o in outs))
        for p, q in zip(models[0].parameters(), models[1].parameters()):
            q.grad = p.grad.clone()  # scaled alike: both loss scalers start at 2**10 and skip no step
        wrappers[1].loss_scaler.scale(torch.ones((), device='cuda'))  # starts the scaler, as backward() would
        for wrapper in wrappers:
            wrapper.step()
            wrapper.zero_grad()
        updates.append([torch.cat([(p.detach() - p0).flatten() for p, p0 in zip(m.parameters(), before)])
                        for m in models])
    assert [w.loss_scaler.get_scale() for w in wrappers] == [2.**10] * 2, 'a step was skipped (inf or NaN)'
    return updates


def test_grouped_fused_adamw_under_amp_matches_default_optimizer():
    for default, grouped in _step_updates():
        assert torch.isfinite(grouped).all() and default.norm() > 0  # (a small initial scale: no step skipped)
        # over all parameters at once: the two forms of AdamW round differently, and some parameters (conv biases
        # before a BatchNorm) have gradients at rounding level, where Adam's step is noise
        assert (grouped - default).norm() < 1e-3 * default.norm()


def test_the_comparison_sees_a_one_percent_learning_rate_change():
    differences = [(grouped - default).norm() / default.norm() for default, grouped in _step_updates(1.01)]
    assert min(differences) > 5e-3
