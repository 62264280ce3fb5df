"""Which uncompiled train steps are captured as CUDA graphs (mlla_mm/models/fast/eager_graphs.py), on the CPU.

The capture itself needs a GPU (tests/gpu/test_eager_graphs_gpu.py replays it against eager steps); here a stand-in
for ``torch.cuda.make_graphed_callables`` runs the step eagerly, so that the choice of sizes, the dropping of graphs
when the model changes, and the failure path are checked without one.
"""
import inspect

import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models import fast
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import eager_graphs, shape_graphs
from mlla_mm.models.fast.backbone import features

REAL_CAPTURE = torch.cuda.make_graphed_callables
SMALL = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])


class FakeCapture:
    """Stands for ``make_graphed_callables``: records the input shapes it is given and runs the step once (as its
    warm-up does); its "graph" runs the step again at each replay, keeping the outputs (a graph's static
    outputs)."""

    def __init__(self):
        self.captured, self.static_outputs, self.leaves = [], None, None

    def __call__(self, fn, sample_args, **kwargs):
        assert not torch.is_autocast_enabled(), 'the backward is captured outside autocast'
        assert set(kwargs) <= set(inspect.signature(REAL_CAPTURE).parameters), 'what this torch takes'
        self.captured.append(tuple(sample_args[0].shape))
        self.leaves = sample_args[1:]
        fn(*sample_args)  # updates the BatchNorms' statistics, as the warm-up does

        def replay(*args):
            self.static_outputs = fn(*args)
            return self.static_outputs
        return replay


@pytest.fixture
def fake_capture(monkeypatch):
    capture = FakeCapture()
    monkeypatch.setattr(torch.cuda, 'make_graphed_callables', capture)
    compiling.reset()
    yield capture
    compiling.reset()


def model_and_cfg(**fast_cfg):
    torch.manual_seed(0)
    model = MLLA(SMALL, attn_impl='fast', fast_cfg=dict(dict(compile=False, uncompiled_graphs=1), **fast_cfg))
    model.train()
    return model, model.fast_cfg


def step(model, cfg, size):
    return eager_graphs.run(model, torch.randn(2, 3, *size), cfg, features)


def test_a_size_is_captured_at_its_third_meeting_and_replayed_after(fake_capture):
    model, cfg = model_and_cfg()
    assert [step(model, cfg, (64, 64)) for _ in range(shape_graphs.MEETINGS_BEFORE_CAPTURE)] == [None, None]
    assert fake_capture.captured == []
    outs = step(model, cfg, (64, 64))
    assert fake_capture.captured == [(2, 3, 64, 64)] and len(outs) == 4
    assert all(o.requires_grad for o in outs)
    del outs
    assert step(model, cfg, (64, 64)) is not None and fake_capture.captured == [(2, 3, 64, 64)], 'replayed'


def test_the_capture_takes_stand_ins_of_the_trainable_parameters(fake_capture):
    """What is captured takes leaves that share the parameters' memory and stand in for them in the model while
    capturing, not the parameters (whose gradient accumulators DDP holds); replays take the parameters."""
    torch.manual_seed(0)
    model = MLLA(SMALL, attn_impl='fast', frozen_stages=0, fast_cfg=dict(compile=False, uncompiled_graphs=1)).train()
    cfg = model.fast_cfg
    for _ in range(3):
        step(model, cfg, (64, 64))
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(fake_capture.leaves) == len(params) < len(list(model.parameters()))
    assert all(leaf is not p and leaf.data_ptr() == p.data_ptr() and leaf.requires_grad
               for leaf, p in zip(fake_capture.leaves, params))
    (captured,) = eager_graphs._GRAPHS[model].graphs.values()
    assert captured.params == tuple(params)


def test_stand_in_leaves_take_the_parameters_place_while_in_the_context():
    """Inside, the model computes with the stand-ins: gradients reach them and not the parameters, whose
    accumulation hooks do not fire; a shared parameter has one stand-in; after it (an error included), the model
    holds its own parameters again."""
    torch.manual_seed(0)
    first, second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    second.weight = first.weight  # shared
    model = torch.nn.Sequential(first, torch.nn.ReLU(), second)
    params = tuple(model.parameters())
    fired = []
    for p in params:
        p.register_post_accumulate_grad_hook(lambda p: fired.append(p))
    x = torch.randn(3, 4)
    expected = torch.autograd.grad(model(x).square().sum(), params)
    with eager_graphs.stand_in_leaves(model, params) as leaves:
        assert tuple(model.parameters()) == leaves and not set(map(id, leaves)) & set(map(id, params))
        assert [leaf.data_ptr() for leaf in leaves] == [p.data_ptr() for p in params]
        model(x).square().sum().backward()
    assert all(torch.allclose(leaf.grad, e) for leaf, e in zip(leaves, expected))
    assert all(p.grad is None for p in params) and fired == []
    assert tuple(model.parameters()) == params and second.weight is first.weight
    with pytest.raises(ValueError), eager_graphs.stand_in_leaves(model, params):
        raise ValueError
    assert tuple(model.parameters()) == params


def test_a_replay_waits_for_the_last_replays_backward(fake_capture):
    """A second forward at the key before the first one's backward runs eagerly (a replay would overwrite the
    activations that backward reads); the backward copies gradients out of the graph's memory before it runs."""
    model, cfg = model_and_cfg()
    for _ in range(2):
        step(model, cfg, (64, 64))
    outs = step(model, cfg, (64, 64))
    assert step(model, cfg, (64, 64)) is None, 'backward pending'
    param = next(p for p in model.parameters() if p.requires_grad)
    held = param.grad = torch.zeros_like(param)
    sum(o.sum() for o in outs).backward()
    assert param.grad.data_ptr() != held.data_ptr(), 'copied out before the backward added to it'
    assert step(model, cfg, (64, 64)) is not None, 'backward done'


def test_a_backward_that_would_read_overwritten_activations_raises(fake_capture):
    """A replay's backward reuses the memory of the activations it has read, and the next replay rewrites them: a
    second backward of one replay (``retain_graph``) and a backward after a later replay raise, naming the option,
    instead of returning wrong gradients."""
    model, cfg = model_and_cfg()
    for _ in range(2):
        step(model, cfg, (64, 64))
    outs = step(model, cfg, (64, 64))
    loss = sum(o.sum() for o in outs)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match=r"second backward .* fast_cfg\['uncompiled_graphs'\] = 0"):
        loss.backward()
    loss = sum(o.sum() for o in step(model, cfg, (64, 64)))  # the outputs die: no backward pending
    assert step(model, cfg, (64, 64)) is not None, 'replayed again before the first loss went backward'
    with pytest.raises(RuntimeError, match='after a later replay'):
        loss.backward()


def test_outputs_that_need_no_gradient_get_none(fake_capture):
    model, cfg = model_and_cfg()
    model.patch_embed.requires_grad_(False)
    model.layers[0].requires_grad_(False)
    model.norm0.requires_grad_(False)
    for _ in range(3):
        outs = step(model, cfg, (64, 64))
    assert [o.requires_grad for o in outs] == [False, True, True, True]


def test_no_more_sizes_than_uncompiled_graphs_are_captured(fake_capture):
    model, cfg = model_and_cfg(uncompiled_graphs=1)
    for _ in range(3):
        step(model, cfg, (64, 64))
    assert [step(model, cfg, (32, 64)) for _ in range(4)] == [None] * 4
    model, cfg = model_and_cfg(uncompiled_graphs=2)
    for size in [(64, 64)] * 3 + [(32, 64)] * 3:
        step(model, cfg, size)
    assert fake_capture.captured == [(2, 3, 64, 64), (2, 3, 64, 64), (2, 3, 32, 64)]


def test_outputs_are_copies_of_the_graphs_outputs(fake_capture):
    model, cfg = model_and_cfg()
    for _ in range(3):
        step(model, cfg, (32, 32))
    replayed = step(model, cfg, (32, 32))
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr()
               for a, b in zip(replayed, fake_capture.static_outputs))


@pytest.mark.parametrize('change', ['freeze', 'eval', 'new tensor', 'drop rate'])
def test_a_change_of_the_model_drops_its_graphs(fake_capture, change):
    model, cfg = model_and_cfg()
    for _ in range(3):
        step(model, cfg, (64, 64))
    if change == 'freeze':
        model.patch_embed.requires_grad_(False)
    elif change == 'eval':
        model.layers[0].eval()
    elif change == 'new tensor':
        model.norm0.weight.data = model.norm0.weight.data.clone()
    else:
        model.layers[1].blocks[0].drop_path.drop_prob = 0.3
    step(model, cfg, (64, 64))
    assert fake_capture.captured == [(2, 3, 64, 64)] * 2, 'captured again'


def test_capturing_leaves_the_batchnorm_statistics_as_they_were(fake_capture):
    model, cfg = model_and_cfg()
    for _ in range(2):
        step(model, cfg, (64, 64))
    before = {name: b.clone() for name, b in model.named_buffers()}
    x = torch.randn(2, 3, 64, 64)
    step_fn = eager_graphs.capture(model, x, tuple(p for p in model.parameters() if p.requires_grad), cfg, features)
    assert step_fn is not None
    assert all(torch.equal(b, before[name]) for name, b in model.named_buffers())
    assert any('running_mean' in name for name in before)


def test_a_failed_capture_warns_and_is_not_tried_again(monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise RuntimeError('operation not permitted when stream is capturing')

    monkeypatch.setattr(torch.cuda, 'make_graphed_callables', failing)
    compiling.reset()
    try:
        model, cfg = model_and_cfg()
        for _ in range(2):
            step(model, cfg, (64, 64))
        with pytest.warns(UserWarning, match='capturing an uncompiled train step as a CUDA graph failed.*'
                                              'not permitted'):
            assert step(model, cfg, (64, 64)) is None
        assert 'eager-graphs' in compiling.FAILED and calls == [1]
        model, cfg = model_and_cfg(strict=True)
        for _ in range(2):
            step(model, cfg, (64, 64))
        with pytest.raises(RuntimeError, match='not permitted'):
            step(model, cfg, (64, 64))
    finally:
        compiling.reset()


def test_graphs_apply_to_uncompiled_cuda_train_steps_only():
    model, cfg = model_and_cfg()
    assert not eager_graphs.applies(model, torch.randn(1, 3, 32, 32), cfg), 'a CPU input'
    assert fast.check_fast_cfg(None)['uncompiled_graphs'] == 0
