"""Which uncompiled forwards are captured as CUDA graphs (mlla_mm/models/fast/inference_graphs.py), on the CPU.

Recording needs a GPU (tests/gpu/test_eager_graphs_gpu.py replays it against eager forwards); here a stand-in for
:func:`inference_graphs.record` runs the forward and "replays" it by running it again into the same output tensors,
so that the choice of sizes, the copies in and out, the dropping of graphs when the model changes and the failure
path are checked without one.
"""
import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models import fast
from mlla_mm.models.fast import backbone as fast_backbone
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import inference_graphs, shape_graphs
from mlla_mm.models.fast.backbone import features

SMALL = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])


class FakeRecord:
    """Stands for :func:`inference_graphs.record`: notes each recording's pool, runs the forward once, and returns
    a "graph" whose replay runs it again, writing into the outputs of the recording (a graph's static outputs)."""

    def __init__(self):
        self.pools, self.replays = [], 0

    def __call__(self, forward, device, pool):
        self.pools.append(pool)
        outputs = forward()
        fake = self

        class Graph:
            def replay(self):
                fake.replays += 1
                for out, new in zip(outputs, forward()):
                    out.copy_(new)
        return Graph(), outputs


@pytest.fixture
def fake_record(monkeypatch):
    record = FakeRecord()
    monkeypatch.setattr(inference_graphs, 'record', record)
    monkeypatch.setattr(torch.cuda, 'graph_pool_handle', lambda: object())
    compiling.reset()
    yield record
    compiling.reset()


def model_and_cfg(**fast_cfg):
    torch.manual_seed(0)
    model = MLLA(SMALL, attn_impl='fast', fast_cfg=dict(dict(compile=False), **fast_cfg))
    model.eval()
    return model, model.fast_cfg


@torch.no_grad()
def infer(model, cfg, x):
    return inference_graphs.run(model, x, cfg, features)


def captured(x):
    """A model with its options that has met ``x``'s size often enough to capture it, and the outputs of the call
    that captured it."""
    model, cfg = model_and_cfg()
    for _ in range(shape_graphs.MEETINGS_BEFORE_CAPTURE + 1):
        outs = infer(model, cfg, x)
    return model, cfg, outs


def test_a_size_is_captured_at_its_third_meeting_and_replays_new_inputs(fake_record):
    model, cfg = model_and_cfg()
    images = [torch.randn(1, 3, 64, 96) for _ in range(4)]
    assert [infer(model, cfg, x) for x in images[:shape_graphs.MEETINGS_BEFORE_CAPTURE]] == [None, None]
    assert fake_record.pools == []
    for x in images[2:]:
        outs = infer(model, cfg, x)
        with torch.no_grad():
            expected = features(model, x, cfg)
        assert len(outs) == 4 and all(torch.equal(o, e) for o, e in zip(outs, expected)), 'the new input is read'
    assert len(fake_record.pools) == 1 and fake_record.replays == 2


def test_outputs_are_copies_of_the_graphs_outputs(fake_record):
    model, cfg, outs = captured(torch.randn(1, 3, 64, 64))
    kept = [o.clone() for o in outs]
    infer(model, cfg, torch.randn(1, 3, 64, 64))
    assert all(torch.equal(o, k) for o, k in zip(outs, kept)), 'a later replay left earlier outputs alone'


def test_graphs_of_a_model_share_one_pool_and_stop_at_the_limit(fake_record):
    model, cfg = model_and_cfg(uncompiled_inference_graphs=2)
    sizes = [(64, 64), (64, 96), (96, 64)]
    for size in sizes:
        for _ in range(3):
            out = infer(model, cfg, torch.randn(1, 3, *size))
    assert out is None, 'the third size runs eagerly'
    assert len(fake_record.pools) == 2 and fake_record.pools[0] is fake_record.pools[1]
    assert infer(model, cfg, torch.randn(1, 3, 64, 96)) is not None, 'a captured size still replays'


def test_inference_mode_and_autocast_are_part_of_the_key(fake_record):
    x = torch.randn(1, 3, 64, 64)
    model, cfg, _ = captured(x)
    with torch.inference_mode():
        assert inference_graphs.run(model, x, cfg, features) is None, 'met once under inference_mode'
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert infer(model, cfg, x) is None, 'met once under autocast'
    assert len(fake_record.pools) == 1


@pytest.mark.parametrize('change', ['weights', 'buffers'])
def test_new_tensors_in_the_model_drop_its_graphs(fake_record, change):
    """New parameter or buffer tensors (``model.to``, assignments) drop the graphs, which read the old ones; the
    size, met often enough already, is captured again at once, in a new pool."""
    x = torch.randn(1, 3, 64, 64)
    model, cfg, _ = captured(x)
    if change == 'weights':
        model.norm0.weight = torch.nn.Parameter(torch.randn_like(model.norm0.weight))
    else:
        stem_bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        stem_bn.running_mean = torch.randn_like(stem_bn.running_mean)
    outs = infer(model, cfg, x)
    assert len(fake_record.pools) == 2 and fake_record.pools[0] is not fake_record.pools[1], 'a new pool'
    with torch.no_grad():
        assert torch.equal(outs[0], features(model, x, cfg)[0]), 'the new tensors are read'


def test_weights_loaded_in_place_are_read_by_the_replay(fake_record):
    x = torch.randn(1, 3, 64, 64)
    model, cfg, _ = captured(x)
    with torch.no_grad():
        model.norm3.weight.mul_(2)
        outs = infer(model, cfg, x)
        assert torch.equal(outs[3], features(model, x, cfg)[3])
    assert len(fake_record.pools) == 1, 'kept'


def test_a_failed_capture_warns_and_is_not_tried_again(monkeypatch):
    calls = []

    def failing(forward, device, pool):
        calls.append(1)
        raise RuntimeError('operation not permitted when stream is capturing')

    monkeypatch.setattr(inference_graphs, 'record', failing)
    monkeypatch.setattr(torch.cuda, 'graph_pool_handle', lambda: object())
    compiling.reset()
    try:
        model, cfg = model_and_cfg()
        x = torch.randn(1, 3, 64, 64)
        for _ in range(2):
            infer(model, cfg, x)
        with pytest.warns(UserWarning, match='capturing an uncompiled forward as a CUDA graph failed.*not permitted'):
            assert infer(model, cfg, x) is None
        assert 'inference-graphs' in compiling.FAILED and calls == [1]
        model, cfg = model_and_cfg(strict=True)
        for _ in range(2):
            infer(model, cfg, x)
        with pytest.raises(RuntimeError, match='not permitted'):
            infer(model, cfg, x)
    finally:
        compiling.reset()


def test_graphs_apply_to_uncompiled_cuda_inference_of_a_model_in_eval_mode_only():
    model, cfg = model_and_cfg()
    with torch.no_grad():
        assert not inference_graphs.applies(model, torch.randn(1, 3, 32, 32), cfg), 'a CPU input'
    cuda_like = torch.randn(1, 3, 32, 32)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(torch.Tensor, 'is_cuda', property(lambda self: True))
    monkey.setattr(torch.cuda, 'is_current_stream_capturing', lambda: False)
    try:
        with torch.no_grad():
            assert inference_graphs.applies(model, cuda_like, cfg)
            assert not inference_graphs.applies(model, cuda_like, {**cfg, 'uncompiled_inference_graphs': 0})
            assert not inference_graphs.applies(model, cuda_like, {**cfg, 'cuda_graphs': False})
            model.layers[0].train()
            assert not inference_graphs.applies(model, cuda_like, cfg), 'a part in training mode'
            model.eval()
        assert not inference_graphs.applies(model, cuda_like, cfg), 'with gradients'
    finally:
        monkey.undo()
    assert fast.check_fast_cfg(None)['uncompiled_inference_graphs'] == 8
    with pytest.raises(ValueError, match='uncompiled_inference_graphs must be a number of image sizes'):
        fast.check_fast_cfg(dict(uncompiled_inference_graphs=-1))


def test_the_backbone_replays_a_captured_forward_and_drops_it_once_compiled(fake_record, monkeypatch):
    """Through ``MLLA.forward``: the third forward of a size replays, with the plain path's outputs; once the
    forward compiles, the graphs go."""
    monkeypatch.setattr(inference_graphs, 'applies', lambda model, x, cfg: not compiling.compiles(x, cfg))
    torch.manual_seed(0)
    model = MLLA(SMALL, attn_impl='fast', fast_cfg=dict(compile=False)).eval()
    plain = MLLA(SMALL, attn_impl='plain').eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for _ in range(3):
            outs = model(x)
        expected = plain(x)
    assert len(fake_record.pools) == 1 and fake_record.replays == 1
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert model in inference_graphs._GRAPHS
    monkeypatch.setattr(fast_backbone.compiling, 'compiles', lambda x, cfg: True)
    monkeypatch.setattr(fast_backbone, '_compiles_whole', lambda model, x, cfg: False)
    monkeypatch.setattr(fast_backbone, 'features', lambda model, x, cfg: ())
    with torch.no_grad():
        fast_backbone.forward_backbone(model, x, model.fast_cfg)
    assert model not in inference_graphs._GRAPHS, 'released once compiled'
