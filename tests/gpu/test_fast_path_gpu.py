"""The compiled fast path of the MLLA block on CUDA against the plain reference (skipped without a GPU).

Errors are measured as ||fast - plain|| / ||plain|| over a whole tensor (outputs, the input gradient and every
parameter gradient), against a float64 plain reference, so both paths' rounding is judged on the same scale:

- float32: both paths within 1e-3 of float64 (cuDNN may use TF32 in the convolutions);
- bf16 / fp16 autocast: the fast path's error is at most 1.5x the plain path's error plus 2e-3 (so the fast path
  is no less accurate than the reference in half precision), and below 4e-2 (bf16) / 1e-2 (fp16) outright.
"""
import copy

import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models.fast import check_fast_cfg
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import runner
from mlla_mm.models.layers import MLLABlock

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


# Every fast model here is strict: a compiler failure must fail these tests, not fall back quietly to a slower path.
STRICT = dict(strict=True)
BLOCK_CFG = check_fast_cfg(dict(cuda_graphs=False, strict=True))


class FastBlock(MLLABlock):
    """The reference block with its forward through the compiled fast path: same parameters, same names."""

    def forward(self, x, hw_shape):
        return runner.run_block(self, x, hw_shape, BLOCK_CFG)

# (batch, H, W, channels, heads): odd and non-square sizes, all four MLLA-T stage widths, batch 1..4.
CASES = [(1, 7, 5, 64, 2), (2, 33, 50, 64, 2), (3, 13, 8, 128, 4), (4, 25, 42, 256, 8), (2, 12, 21, 512, 16),
         (1, 1, 1, 512, 16), (2, 67, 91, 64, 2)]


def make_blocks(dims, heads, seed):
    torch.manual_seed(seed)
    plain = MLLABlock(dims, heads).cuda()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    fast = FastBlock(dims, heads).cuda()
    fast.load_state_dict(plain.state_dict())
    return plain, fast


def run(block, x, hw, weight, dtype):
    x = x.clone().requires_grad_(True)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype is not None):
        out = block(x, hw)
    (out.double() * weight).sum().backward()
    grads = [x.grad] + [p.grad for p in block.parameters()]
    result = [out.detach().double()] + [g.double() for g in grads]
    block.zero_grad(set_to_none=True)
    return result


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize('dtype', [None, torch.bfloat16, torch.float16], ids=['fp32', 'bf16', 'fp16'])
@pytest.mark.parametrize('batch,height,width,dims,heads', CASES)
def test_compiled_fast_block_matches_plain(batch, height, width, dims, heads, dtype):
    plain, fast = make_blocks(dims, heads, seed=batch * 7 + height)
    x = torch.randn(batch, height * width, dims, device='cuda')
    weight = torch.randn(batch, height * width, dims, device='cuda', dtype=torch.float64)
    hw = (height, width)
    ref = run(plain.double(), x.double(), hw, weight, None)
    plain.float()
    got_plain = run(plain, x, hw, weight, dtype)
    got_fast = run(fast, x, hw, weight, dtype)
    names = ['output', 'input grad'] + [n for n, _ in fast.named_parameters()]
    for name, r, p, f in zip(names, ref, got_plain, got_fast):
        if height * width == 1 and name.startswith('attn.qk.'):
            # One token: RoPE at position 0 is the identity and the normaliser cancels q.k, so the attention
            # returns v whatever q and k are; the exact qk gradient is zero (up to the normaliser's eps) and a
            # relative error would only compare rounding noise. Both paths must keep that noise negligible
            # against the gradient that does flow (the input's).
            for got in (p, f):
                assert got.norm() < 1e-2 * ref[1].norm(), (name, got.norm().item(), ref[1].norm().item())
            continue
        err_fast, err_plain = rel(f, r), rel(p, r)
        if dtype is None:
            assert err_fast < 1e-3 and err_plain < 1e-3, (name, err_fast, err_plain)
        else:
            bound = 4e-2 if dtype == torch.bfloat16 else 1e-2
            assert err_fast < bound, (name, err_fast, err_plain)
            assert err_fast < 1.5 * err_plain + 2e-3, (name, err_fast, err_plain)


@pytest.mark.parametrize('compile_stages,whole', [('train', False), ('all', False), ('all', True)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_backbone_auto_uses_fast_path_and_agrees(dtype, compile_stages, whole):
    """Inference: per-block compiled calls (``compile_stages='train'``), or a compiled call per stage (``'all'``, the
    default), or the whole backbone as one call (``compile_backbone``, for the 160x224 input; 203x317 runs stage
    by stage); each input size twice, so that the second call replays the recorded CUDA graphs."""
    arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda().eval()
    auto = MLLA(arch, attn_impl='auto', drop_path_rate=0.,
                fast_cfg=dict(STRICT, compile_stages=compile_stages, compile_backbone=whole,
                              compile_inference_after=0)).cuda().eval()
    auto.load_state_dict(plain.state_dict())
    for x in [torch.randn(2, 3, 203, 317, device='cuda'), torch.randn(2, 3, 160, 224, device='cuda')] * 2:
        with torch.no_grad(), torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32):
            outs_p, outs_f = plain(x), auto(x)
        for p, f in zip(outs_p, outs_f):
            assert torch.isfinite(f).all()
            bound = 2e-3 if dtype == torch.float32 else 5e-2
            assert rel(f.double(), p.double()) < bound
    if compile_stages == 'all':
        assert ('stage', True) in compiling.COMPILED and 'stages' not in compiling.FAILED
    if whole:
        assert ('backbone', True) in compiling.COMPILED and 'backbone' not in compiling.FAILED


def test_auto_inference_compiles_after_the_given_number_of_images():
    """``compile_inference_after=3``: the first 4 images (two batches of 2, of two sizes) run uncompiled through
    the fast path's functions with the Triton kernels and compile nothing. The next batch takes the compiled path.
    All agree with the plain path (within 2e-3: cuDNN's float32 convolutions use TF32 by default, the Triton kernels
    do not). Training counts its own images (``compile_training_after``)."""
    arch = dict(embed_dims=64, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 16])
    compiling.reset()
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda().eval()
    auto = MLLA(arch, attn_impl='auto', drop_path_rate=0.,
                fast_cfg=dict(STRICT, compile_inference_after=3)).cuda().eval()
    auto.load_state_dict(plain.state_dict())
    xs = [torch.randn(2, 3, 128, 160, device='cuda'), torch.randn(2, 3, 160, 128, device='cuda')]
    with torch.no_grad():
        assert [auto._path(x) for x in xs] == ['uncompiled', 'uncompiled']
        auto.uncompiled_images.clear()
        for x in xs:
            assert all(rel(a.double(), p.double()) < 2e-3 for a, p in zip(auto(x), plain(x)))
        assert not compiling.COMPILED and auto.uncompiled_images == {'inference': 4}
        outs_f, outs_p = auto(xs[0]), plain(xs[0])
    assert ('backbone', True) in compiling.COMPILED and auto.uncompiled_images == {'inference': 4}
    assert all(rel(f.double(), p.double()) < 2e-3 for f, p in zip(outs_f, outs_p))
    compiling.reset()
    training = MLLA(arch, attn_impl='auto', drop_path_rate=0.,
                    fast_cfg=dict(STRICT, compile_inference_after=None, compile_training_after=2)).cuda().train()
    sum(o.mean() for o in training(xs[0])).backward()
    assert not compiling.COMPILED and training.uncompiled_images == {'training': 2}
    sum(o.mean() for o in training(xs[0])).backward()
    assert compiling.COMPILED and training.uncompiled_images == {'training': 2}  # the backbone, or its stages


def test_auto_trains_uncompiled_with_the_triton_kernels_as_plain_does():
    """A training step of ``'auto'`` (the fast path's functions uncompiled, with the Triton kernels in the blocks
    and patch mergings) against the plain path's under fp16 autocast: outputs and the stem's weight gradient (which
    every later layer's backward reaches) within 2e-2, nothing compiled."""
    arch = dict(embed_dims=64, depths=[1, 2, 1, 1], num_heads=[2, 4, 8, 16])
    compiling.reset()
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda().train()
    auto = MLLA(arch, attn_impl='auto', drop_path_rate=0., fast_cfg=STRICT).cuda().train()
    auto.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 192, 256, device='cuda')
    assert auto._path(x) == 'uncompiled'
    auto.uncompiled_images.clear()
    outputs = {}
    for name, model in (('plain', plain), ('auto', auto)):
        with torch.autocast('cuda', dtype=torch.float16):
            outs = model(x)
        sum(o.float().square().mean() for o in outs).backward()
        outputs[name] = [o.detach().float() for o in outs]
    assert not compiling.COMPILED and auto.uncompiled_images == {'training': 2}
    assert all(rel(a.double(), p.double()) < 2e-2 for a, p in zip(outputs['auto'], outputs['plain']))
    grad_a, grad_p = auto.patch_embed.conv1.conv.weight.grad, plain.patch_embed.conv1.conv.weight.grad
    assert rel(grad_a.double(), grad_p.double()) < 2e-2


def test_fp16_large_activations_stay_finite():
    """With large q/k the fp16 normaliser would overflow; the fast path forms it in float32."""
    _, fast = make_blocks(64, 2, seed=0)
    with torch.no_grad():
        fast.attn.qk.bias.fill_(60.)
    x = torch.randn(2, 40 * 30, 64, device='cuda')
    with torch.no_grad():
        ref = fast(x, (40, 30))
        with torch.autocast('cuda', dtype=torch.float16):
            out = fast(x, (40, 30))
    assert torch.isfinite(out).all()
    assert rel(out.double(), ref.double()) < 1e-2


def test_fp16_key_value_product_stays_finite_at_many_tokens():
    """Compiled, under fp16 autocast, with positive keys and values over 128 x 128 tokens: K^T V unscaled would
    exceed fp16's range (tests/test_fast_path.py checks that on the CPU); scaled by n ** -0.5 on both sides it
    does not, forward or backward."""
    plain, fast = make_blocks(64, 2, seed=5)
    with torch.no_grad():
        for block in (plain, fast):
            block.in_proj.bias.fill_(4.)
            block.attn.qk.bias.fill_(2.)
    x = torch.randn(1, 128 * 128, 64, device='cuda')
    weight = torch.randn(1, 128 * 128, 64, device='cuda', dtype=torch.float64)
    reference = run(copy.deepcopy(plain).double(), x.double(), (128, 128), weight, None)
    got_plain = run(plain, x, (128, 128), weight, torch.float16)
    got_fast = run(fast, x, (128, 128), weight, torch.float16)
    for index, (r, p, f) in enumerate(zip(reference, got_plain, got_fast)):
        assert torch.isfinite(f).all(), index
        if r.norm() > 0:  # as accurate as the plain path in fp16, up to the bound of the other fp16 tests
            assert rel(f, r) < 1.5 * rel(p, r) + 1e-2, (index, rel(f, r), rel(p, r))


def train_step(model, x, dtype, seed):
    """Outputs and parameter gradients (float64, by name) of one forward/backward under ``dtype`` autocast. The loss
    is a fixed random projection of every output (the same for each model, by ``seed``): a loss like the outputs'
    mean square would be nearly invariant under the output LayerNorms and leave only rounding in the gradients."""
    model.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype is not None):
        outs = model(x)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    weights = [torch.randn(o.shape, generator=generator, device=x.device, dtype=torch.float64) for o in outs]
    sum((o.double() * w).sum() for o, w in zip(outs, weights)).backward()
    result = {f'output {i}': o.detach().double() for i, o in enumerate(outs)}
    result.update({name: p.grad.double() for name, p in model.named_parameters() if p.grad is not None})
    return result


def assert_as_accurate_as_plain(ref: dict, plain: dict, fast: dict, context) -> None:
    """The fast path's bf16 results (outputs and gradients, by name) against the plain path's, both judged by their
    relative error to the float64 ``ref``:

    - every tensor finite, and within 5x the plain path's error + 0.05: a wrong gradient is O(1) off;
    - on average over the tensors, the fast path's error at most 1.5x the plain path's: no precision lost overall.

    Why not a tighter bound per tensor: many bf16 gradients of this loss are sums over tokens that nearly cancel
    (the biases', the qk projection's), so their relative errors are rounding noise of 5-40% in both paths, and
    the ratio of two such noises is wide-tailed: single qk-bias ratios of over 3x occur in both directions, while
    the average over the tensors stays near 1 (docs: the fast path's accuracy).
    Gradients that are zero by construction (a conv bias right before a BatchNorm) are left out: their relative
    error compares rounding noise only.
    """
    assert ref.keys() == plain.keys() == fast.keys() and len(ref) > 4, context
    largest = max(r.norm() for r in ref.values())
    ratios = []
    for name, r in ref.items():
        assert torch.isfinite(fast[name]).all(), (context, name)
        if r.norm() < 1e-10 * largest:
            continue
        err_fast, err_plain = rel(fast[name], r), rel(plain[name], r)
        assert err_fast < 5 * err_plain + 5e-2, (context, name, err_fast, err_plain)
        ratios.append(err_fast / max(err_plain, 1e-12))
    assert sum(ratios) / len(ratios) < 1.5, (context, sum(ratios) / len(ratios))


@pytest.mark.parametrize('frozen_stages,kernels,stages,whole', [
    (-1, False, False, False), (1, False, False, False), (-1, True, False, False), (-1, False, 'train', False),
    (1, False, 'train', False), (-1, False, 'all', True), (1, False, 'all', True)])
def test_backbone_train_steps_with_cuda_graphs_match_plain(frozen_stages, kernels, stages, whole):
    """bf16 train steps through CUDA graphs: inputs of two shapes, each seen twice, so the graphs are recorded,
    then replayed.

    - A replay gives what the first (unrecorded) call gave for the same input: the same kernels run, so the
      results agree to 1e-3 (only atomics may reorder sums). A stale or overwritten buffer would be O(1) off.
    - Each result is about as close to a float64 reference as the plain path's bf16 result
      (:func:`assert_as_accurate_as_plain`), for the outputs and every parameter gradient.

    ``stages``: each stage's blocks as one compiled call (``compile_stages``), which must be the path taken.
    ``whole``: the whole backbone as one compiled call (``compile_backbone``; both inputs' sides are multiples of
    32), which must be the path taken, with CUDA graphs (none skipped, for the BatchNorms' buffer updates say).
    """
    from torch._dynamo.utils import counters
    skips = counters['inductor']['cudagraph_skips']
    arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0., frozen_stages=frozen_stages).cuda().train()
    fast = MLLA(arch, attn_impl='fast', drop_path_rate=0., frozen_stages=frozen_stages,
                fast_cfg=dict(STRICT, cuda_graphs=True, triton_dwconv=kernels, compile_convs=kernels,
                              compile_stages=stages, compile_backbone=whole))
    fast = fast.cuda().train()
    fast.load_state_dict(plain.state_dict())
    reference = copy.deepcopy(plain).double()
    inputs = [torch.randn(2, 3, height, 224, device='cuda') for height in (160, 192)]
    first_results = {}
    for step in range(4):
        shape = step % 2
        x = inputs[shape]
        got_fast = train_step(fast, x, torch.bfloat16, seed=shape)
        if shape in first_results:  # a replay of a recorded graph
            for name, first in first_results[shape].items():
                assert rel(got_fast[name], first) < 1e-3, (step, name, rel(got_fast[name], first))
            continue
        first_results[shape] = got_fast
        ref = train_step(reference, x.double(), None, seed=shape)
        got_plain = train_step(plain, x, torch.bfloat16, seed=shape)
        assert_as_accurate_as_plain(ref, got_plain, got_fast, context=f'step {step}')
    if stages and not whole:  # the stages compiled (the key appears at the first compiled stage call), never failed
        assert ('stage', True) in compiling.COMPILED and 'stages' not in compiling.FAILED
    if whole:
        assert ('backbone', True) in compiling.COMPILED and 'backbone' not in compiling.FAILED
        assert counters['inductor']['cudagraph_skips'] == skips, 'CUDA graphs were skipped'


@pytest.mark.parametrize('whole', [False, True])
def test_compiled_stem_and_merging_keep_batchnorm_statistics(whole):
    """With ``compile_convs`` the stem and patch merging run compiled, with ``compile_backbone`` (``whole``) the
    whole backbone, replayed as CUDA graphs: one train step must move every BatchNorm's running statistics as the
    plain path does (and count the batch), and eval mode must then use them."""
    arch = dict(embed_dims=64, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 16])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda().train()
    fast = MLLA(arch, attn_impl='fast', drop_path_rate=0.,
                fast_cfg=dict(STRICT, compile_convs=not whole, compile_backbone=whole))
    fast = fast.cuda().train()
    fast.load_state_dict(plain.state_dict())
    size = (96, 128) if whole else (97, 130)  # the whole backbone takes sides that are multiples of 32
    x = torch.randn(2, 3, *size, device='cuda') * 2 + 0.5
    for model in (plain, fast):
        sum(o.float().mean() for o in model(x)).backward()
    buffers_p, buffers_f = dict(plain.named_buffers()), dict(fast.named_buffers())
    moved = 0
    for name, p in buffers_p.items():
        f = buffers_f[name]
        if name.endswith('num_batches_tracked'):
            assert f.item() == p.item() == 1, name
            continue
        torch.testing.assert_close(f, p, rtol=1e-3, atol=1e-4, msg=name)
        moved += int(not torch.equal(p, torch.zeros_like(p)) and not torch.equal(p, torch.ones_like(p)))
    running = [n for n in buffers_p if 'running_' in n]
    assert moved == len(running) == 16, (moved, running)  # the stem's five BatchNorms, three patch mergings' ones
    plain.eval(), fast.eval()
    with torch.no_grad():
        for p, f in zip(plain(x), fast(x)):
            assert rel(f.double(), p.double()) < 2e-3
    if whole:
        assert ('backbone', True) in compiling.COMPILED and 'backbone' not in compiling.FAILED


@pytest.mark.parametrize('stages,whole', [(False, False), ('train', False), ('all', True)])
def test_gradient_accumulation_through_cuda_graphs(stages, whole):
    """Two backward passes without zeroing the gradients in between (mmengine's ``accumulative_counts``): the
    graphed backward's gradients must not stay in memory that the next replay overwrites, and the accumulated
    gradients must match the plain path's. With blocks compiled one by one, a stage at a time (the default), and
    the whole backbone at once (``compile_backbone``)."""
    arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda().train()
    fast = MLLA(arch, attn_impl='fast', drop_path_rate=0.,
                fast_cfg=dict(STRICT, compile_stages=stages, compile_backbone=whole)).cuda().train()
    fast.load_state_dict(plain.state_dict())
    reference = copy.deepcopy(plain).double()
    inputs = [torch.randn(2, 3, 160, 224, device='cuda') for _ in range(3)]
    for model, dtype in ((reference, None), (plain, torch.bfloat16), (fast, torch.bfloat16)):
        model.zero_grad(set_to_none=True)
        for step, x in enumerate(inputs):  # recorded, then replayed twice, gradients accumulating
            with torch.autocast('cuda', dtype=dtype, enabled=dtype is not None):
                outs = model(x.double() if dtype is None else x)
            generator = torch.Generator(device='cuda').manual_seed(step)
            sum((o.double() * torch.randn(o.shape, generator=generator, device='cuda', dtype=torch.float64)).sum()
                for o in outs).backward()
    ref, got_plain, got_fast = ({name: p.grad.double() for name, p in m.named_parameters() if p.grad is not None}
                                for m in (reference, plain, fast))
    assert_as_accurate_as_plain(ref, got_plain, got_fast, context='accumulated gradients')
    if stages and not whole:  # the path under test was taken
        assert ('stage', True) in compiling.COMPILED and 'stages' not in compiling.FAILED
    if whole:
        assert ('backbone', True) in compiling.COMPILED and 'backbone' not in compiling.FAILED
