"""Uncompiled train steps replayed as CUDA graphs (``fast_cfg['uncompiled_graphs']``) against the same steps run
eagerly, on CUDA (skipped without a GPU).

A replay runs the kernels the eager step runs, so the two agree to 1e-3 (only atomics may reorder sums); a stale
input, an overwritten gradient or BatchNorm statistics updated twice would be far off.
"""
import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import eager_graphs
from replay_checks import ARCH, rel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def pair(**kwargs):
    """Two 'auto' models with the same weights, uncompiled train steps replayed as CUDA graphs in the first only."""
    compiling.reset()
    torch.manual_seed(0)
    graphed = MLLA(ARCH, attn_impl='auto', fast_cfg=dict(strict=True, uncompiled_graphs=1), **kwargs).cuda()
    eager = MLLA(ARCH, attn_impl='auto', fast_cfg=dict(strict=True, uncompiled_graphs=0), **kwargs).cuda()
    eager.load_state_dict(graphed.state_dict())
    return graphed.train(), eager.train()


def forward_backward(model, x, seed):
    with torch.autocast('cuda', dtype=torch.float16):
        outs = model(x)
    generator = torch.Generator(device='cuda').manual_seed(seed)
    # means, not sums: gradients of a size that SGD steps at lr 0.05 do not blow up, so that the atomics' rounding
    # differences between two runs stay far below the tolerance
    sum((o.float() * torch.randn(o.shape, generator=generator, device='cuda')).mean() for o in outs).backward()
    return [o.detach() for o in outs]


@pytest.mark.parametrize('frozen_stages', [-1, 1])
def test_replayed_train_steps_match_eager_steps(frozen_stages):
    """SGD steps at one size (captured at the third), one at another size (eager: one graph only), then the first
    size again: outputs at every step, then weights and BatchNorm statistics, as the eager model's."""
    graphed, eager = pair(drop_path_rate=0., frozen_stages=frozen_stages)
    optimizers = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
                  for m in (graphed, eager)]
    sizes = [(128, 160)] * 5 + [(96, 160), (128, 160)]
    for step, size in enumerate(sizes):
        x = torch.randn(2, 3, *size, device='cuda')
        outs = []
        for model, optimizer in zip((graphed, eager), optimizers):
            optimizer.zero_grad(set_to_none=True)
            outs.append(forward_backward(model, x, seed=step))
            optimizer.step()
        assert all(rel(a, b) < 1e-3 for a, b in zip(*outs)), step
    for (name, a), b in zip(graphed.state_dict().items(), eager.state_dict().values()):
        assert (a == b).all() if name.endswith('num_batches_tracked') else rel(a, b) < 1e-3, name
    assert len(eager_graphs._GRAPHS[graphed].graphs) == 1
    assert not compiling.COMPILED and not compiling.FAILED


def test_accumulated_gradients_match_eager():
    """Gradients set to None after the step that captures (as ``zero_grad`` does), then three backward passes
    without zeroing (mmengine's ``accumulative_counts``), all replayed: a replay must not overwrite the gradients
    that earlier ones handed over."""
    graphed, eager = pair(drop_path_rate=0.)
    inputs = [torch.randn(2, 3, 128, 160, device='cuda') for _ in range(6)]
    for model in (graphed, eager):
        for step, x in enumerate(inputs):
            if step <= 3:
                model.zero_grad(set_to_none=True)
            forward_backward(model, x, seed=step)
    for (name, a), b in zip(graphed.named_parameters(), eager.parameters()):
        assert rel(a.grad, b.grad) < 1e-3, name
    assert len(eager_graphs._GRAPHS[graphed].graphs) == 1


def test_two_forwards_before_a_backward_match_eager():
    """Two forwards at the captured size before one backward (the second runs eagerly: a replay would overwrite the
    first one's activations): the gradients are the eager model's."""
    graphed, eager = pair(drop_path_rate=0.)
    inputs = [torch.randn(2, 3, 128, 160, device='cuda') for _ in range(5)]
    for model in (graphed, eager):
        for step, x in enumerate(inputs[:3]):  # captured at the third
            model.zero_grad(set_to_none=True)
            forward_backward(model, x, seed=step)
        model.zero_grad(set_to_none=True)
        with torch.autocast('cuda', dtype=torch.float16):
            outs = model(inputs[3]) + model(inputs[4])
        sum(o.float().square().mean() for o in outs).backward()
    for (name, a), b in zip(graphed.named_parameters(), eager.parameters()):
        assert rel(a.grad, b.grad) < 1e-3, name


def test_a_second_backward_of_a_replay_raises():
    """``backward(retain_graph=True)`` then ``backward()`` through a replay: the first backward has reused the
    memory of the activations it read, so the second raises rather than return wrong gradients."""
    graphed, _ = pair(drop_path_rate=0.)
    for step in range(3):  # captured at the third
        forward_backward(graphed, torch.randn(2, 3, 128, 160, device='cuda'), seed=step)
    with torch.autocast('cuda', dtype=torch.float16):
        outs = graphed(torch.randn(2, 3, 128, 160, device='cuda'))
    loss = sum(o.float().square().mean() for o in outs)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='second backward'):
        loss.backward()


def test_replays_draw_fresh_stochastic_depth():
    """With stochastic depth, two replays of the same input and weights drop different paths: the random draws are
    part of the graph, not frozen into it."""
    graphed, _ = pair(drop_path_rate=0.5)
    x = torch.randn(4, 3, 128, 160, device='cuda')
    outs = [forward_backward(graphed, x, seed=0) for _ in range(5)]
    assert len(eager_graphs._GRAPHS[graphed].graphs) == 1
    assert all(torch.isfinite(o).all() for step in outs for o in step)
    assert rel(outs[3][-1], outs[4][-1]) > 1e-2


def test_a_failed_capture_warns_and_the_steps_run_on_eagerly(captures_fail):
    """A capture that CUDA ends in an error (here a host synchronisation while capturing): a warning, then the
    steps run eagerly, random draws on the device included (a failed capture must not leave the generator in its
    capturing state), and match the eager model's."""
    compiling.reset()
    torch.manual_seed(0)
    graphed = MLLA(ARCH, attn_impl='auto', drop_path_rate=0., fast_cfg=dict(uncompiled_graphs=1)).cuda().train()
    eager = MLLA(ARCH, attn_impl='auto', drop_path_rate=0., fast_cfg=dict(uncompiled_graphs=0)).cuda().train()
    eager.load_state_dict(graphed.state_dict())
    with pytest.warns(UserWarning, match='capturing an uncompiled train step as a CUDA graph failed'):
        for step in range(3):  # the capture is tried at the third
            x = torch.randn(2, 3, 128, 160, device='cuda')
            outs = [forward_backward(model, x, seed=step) for model in (graphed, eager)]
    for step in range(3, 5):
        x = torch.randn(2, 3, 128, 160, device='cuda')
        outs = [forward_backward(model, x, seed=step) for model in (graphed, eager)]
        assert all(rel(a, b) < 1e-3 for a, b in zip(*outs)), step
    assert 'eager-graphs' in compiling.FAILED
    graphs = eager_graphs._GRAPHS.get(graphed)
    assert graphs is None or not graphs.graphs
