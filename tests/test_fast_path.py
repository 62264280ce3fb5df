"""The fast path (mlla_mm/models/fast/) against the plain reference modules, on the CPU.

On the CPU the fast path runs eagerly (torch.compile is used on CUDA only), so the first tests check the
computation itself: the fused RoPE, the float32 normaliser, stochastic depth and the ``attn_impl`` switch. The
tests with ``counted_compiles`` switch compiling on for the CPU and count the graphs torch.compile is given.
tests/test_mlla_reference.py checks the fast path against the official model's numbers too;
tests/gpu/test_fast_path_gpu.py checks the compiled path on a GPU.
"""
import pytest
import torch
import torch.utils.checkpoint as cp
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._sympy.functions import FloorDiv

from mlla_mm import MLLA
from mlla_mm.models import fast
from mlla_mm.models.backbones import mlla as mlla_module
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import functional_block, runner
from mlla_mm.models.layers import MLLABlock
from mlla_mm.models.layers.layout import image_to_tokens, tokens_to_image
from mlla_mm.models.layers.rope import apply_rope, rope_tables

EAGER = fast.check_fast_cfg(dict(compile=False))


class FastBlock(MLLABlock):
    """The reference block with its forward through the fast path (eagerly): same parameters, same names."""

    def forward(self, x, hw_shape):
        return runner.run_block(self, x, hw_shape, EAGER)


def make_pair(dims, heads, seed=0, drop_path=0.):
    torch.manual_seed(seed)
    plain = MLLABlock(dims, heads, drop_path=drop_path)
    with torch.no_grad():  # non-trivial norms and biases, so every parameter matters
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    fast_block = FastBlock(dims, heads, drop_path=drop_path)
    fast_block.load_state_dict(plain.state_dict())
    return plain, fast_block


# Compiled on the CPU (counted_compiles), without CUDA graphs: block by block, or with compile_stages, stage by stage
BLOCK_BY_BLOCK = dict(cuda_graphs=False, compile_stages=False, compile_backbone=False)


def run(block, x, hw, weight):
    x = x.clone().requires_grad_(True)
    out = block(x, hw)
    (out * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in block.named_parameters()}
    return out.detach(), x.grad, grads


# (batch, H, W, channels, heads): odd and non-square sizes, the widths and head counts of all four MLLA-T stages
CASES = [(1, 7, 5, 64, 2), (2, 4, 9, 128, 4), (3, 3, 3, 256, 8), (4, 2, 3, 512, 16), (2, 1, 1, 64, 2),
         (1, 11, 6, 32, 1)]


@pytest.mark.parametrize('batch,height,width,dims,heads', CASES)
def test_fast_block_matches_plain_float64(batch, height, width, dims, heads):
    """In float64 the two paths are the same function up to rounding: outputs and all gradients agree to 1e-10."""
    plain, fast = make_pair(dims, heads)
    plain.double(), fast.double()
    x = torch.randn(batch, height * width, dims, dtype=torch.float64)
    weight = torch.randn_like(x)
    out_p, gx_p, g_p = run(plain, x, (height, width), weight)
    out_f, gx_f, g_f = run(fast, x, (height, width), weight)
    torch.testing.assert_close(out_f, out_p, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx_f, gx_p, rtol=1e-10, atol=1e-10)
    for name in g_p:
        torch.testing.assert_close(g_f[name], g_p[name], rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.parametrize('batch,height,width,dims,heads', CASES[:4])
def test_fast_block_matches_plain_float32(batch, height, width, dims, heads):
    plain, fast = make_pair(dims, heads, seed=1)
    x = torch.randn(batch, height * width, dims)
    weight = torch.randn_like(x)
    out_p, gx_p, g_p = run(plain, x, (height, width), weight)
    out_f, gx_f, g_f = run(fast, x, (height, width), weight)
    torch.testing.assert_close(out_f, out_p, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gx_f, gx_p, rtol=1e-4, atol=1e-4)
    for name in g_p:
        torch.testing.assert_close(g_f[name], g_p[name], rtol=1e-3, atol=1e-4, msg=name)


def test_cached_rope_tables_equal_the_plain_ones():
    cos, sin = rope_tables(5, 7, 32, torch.device('cpu'))
    cos_f, sin_f = functional_block.cached_rope_tables(5, 7, 32, torch.device('cpu'), torch.float32)
    assert torch.equal(cos, cos_f) and torch.equal(sin, sin_f)
    assert functional_block.cached_rope_tables(5, 7, 32, torch.device('cpu'), torch.float32)[0] is cos_f, 'cached'
    bf16 = functional_block.cached_rope_tables(5, 7, 32, torch.device('cpu'), torch.bfloat16)[0]
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, cos.bfloat16())
    # the fused q/k rotation equals the plain one applied to q and k separately
    qk = torch.randn(2, 35, 64)
    rotated = functional_block.rotate_qk(qk, cos, sin)
    torch.testing.assert_close(rotated[..., :32], apply_rope(qk[..., :32], cos, sin))
    torch.testing.assert_close(rotated[..., 32:], apply_rope(qk[..., 32:], cos, sin))


@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_fast_block_half_precision_stays_close_to_float32(dtype, tol):
    """Half precision runs in the input dtype (no promotion to float32) and stays near the float32 result."""
    plain, fast = make_pair(64, 2, seed=2)
    x = torch.randn(2, 6 * 5, 64)
    with torch.no_grad():
        ref = plain(x, (6, 5))
        out = fast.to(dtype)(x.to(dtype), (6, 5))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)


def test_fp16_normaliser_does_not_overflow():
    """Large positive q/k (phi(q) . mean phi(k) ~ 32 * 60^2, beyond fp16's 65504) still give the float32 result:
    the normaliser is formed in float32 and applied to q before the product with K^T V."""
    _, fast = make_pair(64, 2, seed=3)
    with torch.no_grad():
        fast.attn.qk.bias.fill_(60.)
    x = torch.randn(1, 4 * 4, 64)
    with torch.no_grad():
        ref = fast(x, (4, 4))
        out = fast.half()(x.half(), (4, 4))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_fp16_key_value_product_does_not_overflow_at_many_tokens():
    """K^T V sums over every token: with positive keys and values (a SiLU's output has a positive mean) its
    entries grow with the token count, past fp16's 65504 at 128 x 128 tokens here (stage 1 of a 512 x 512 image;
    800 x 1344 has 4x as many). Both factors are scaled by n ** -0.5 before the product, as in the official model,
    so the fp16 result stays finite and near the float32 one."""
    _, fast = make_pair(64, 2, seed=5)
    with torch.no_grad():
        fast.in_proj.bias.fill_(4.)  # large positive values after the depthwise convolution and SiLU
        fast.attn.qk.bias.fill_(2.)
    x = torch.randn(1, 128 * 128, 64)
    with torch.no_grad():
        ref = fast(x, (128, 128))
        # the attention's input, as the block forms it (float32), and its keys
        tokens = x + image_to_tokens(fast.cpe1(tokens_to_image(x, (128, 128))))
        values = image_to_tokens(fast.act(fast.dwc(tokens_to_image(fast.in_proj(fast.norm1(tokens)), (128, 128)))))
        keys = torch.nn.functional.elu(fast.attn.qk(values)[..., 64:]) + 1
        assert (keys.transpose(1, 2) @ values).abs().max() > 65504, 'the unscaled product must exceed fp16'
        out = fast.half()(x.half(), (128, 128))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize('dims,heads', [(64, 2), (128, 4), (256, 8), (512, 16), (96, 3)])
def test_block_diagonal_attention_equals_heads_first(dims, heads):
    """The two ways of forming the heads' K'V products give the same result (float64), at widths where the fast
    path picks either."""
    torch.manual_seed(dims)
    queries, keys, values = (torch.randn(2, 37, dims, dtype=torch.float64) for _ in range(3))
    diagonal = functional_block.attend_block_diagonal(queries, keys, values, dims // heads)
    first = functional_block.attend_heads_first(queries, keys, values, heads)
    torch.testing.assert_close(diagonal, first, rtol=1e-12, atol=1e-12)
    # and each head's output is that head's own attention
    head = slice(dims // heads, 2 * dims // heads)
    own = queries[..., head] @ (keys[..., head].transpose(1, 2) @ values[..., head])
    torch.testing.assert_close(diagonal[..., head], own, rtol=1e-12, atol=1e-12)


def test_block_diagonal_attention_drops_an_overflow_between_heads():
    """In fp16 a product between two heads' channels (never used) can overflow where each head's own does not:
    here the keys of head 0 and the values of head 1 are large. The dropped blocks must not turn it into NaN."""
    queries, keys, values = (torch.full((1, 64, 64), 0.01, dtype=torch.float16) for _ in range(3))
    keys[..., :32], values[..., 32:] = 300., 300.
    assert torch.isinf(keys.transpose(1, 2) @ values).any(), 'the product between the heads must overflow'
    diagonal = functional_block.attend_block_diagonal(queries, keys, values, 32)
    assert torch.isfinite(diagonal).all()
    torch.testing.assert_close(diagonal, functional_block.attend_heads_first(queries, keys, values, 2))


def test_drop_path_masks_are_per_sample_and_scaled():
    plain, fast_block = make_pair(64, 2, drop_path=0.5)
    fast_block.train()
    torch.manual_seed(0)
    masks = [runner.drop_path_mask(fast_block, torch.zeros(64, 4, 64), False) for _ in range(2)]
    for mask in masks:
        assert mask.shape == (64, 1, 1) and set(mask.unique().tolist()) == {0., 2.}
    fast_block.drop_path.drop_prob = 1.0  # every path dropped: zeros, as DropPath gives
    assert torch.equal(runner.drop_path_mask(fast_block, torch.zeros(4, 4, 64), False), torch.zeros(4, 1, 1))
    fast_block.drop_path.drop_prob = 0.5
    fast_block.eval()
    assert runner.drop_path_mask(fast_block, torch.zeros(2, 4, 64), True) is None
    # in training the fast path draws the same masks as the reference block's DropPath for the same seed
    plain.train()
    x = torch.randn(8, 3 * 3, 64)
    torch.manual_seed(5)
    out_p = plain(x, (3, 3))
    torch.manual_seed(5)
    out_f = fast_block.train()(x, (3, 3))
    torch.testing.assert_close(out_f, out_p, rtol=1e-4, atol=1e-4)


def test_residual_masks_are_ones_where_no_path_drops(monkeypatch):
    """A backbone with stochastic depth gives its first block (rate 0) masks of ones in training, so that the
    block's compiled graph is that of the others; its output is unchanged by them. Without stochastic depth, or in
    inference, no block gets masks."""
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[2, 1, 1, 1], num_heads=[2, 4, 8, 16])
    model = MLLA(arch, attn_impl='fast', drop_path_rate=0.1).train()
    first, second = model.layers[0].blocks
    x = torch.randn(3, 4 * 5, 32)
    assert torch.equal(runner.drop_path_mask(first, x, True), torch.ones(3, 1, 1))
    assert runner.drop_path_mask(second, x, True).shape == (3, 1, 1)
    assert runner.drop_path_mask(first, x, False) is None
    without = runner.run_block(first, x, (4, 5), EAGER, residual_masks=False)
    assert torch.equal(runner.run_block(first, x, (4, 5), EAGER, residual_masks=True), without)
    assert runner.drop_path_mask(first.eval(), x, True) is None  # inference passes no masks
    # what the backbone decides, once per forward
    seen = []
    real_run_block = runner.run_block

    def recording_run_block(block, x, hw_shape, cfg, residual_masks=False):
        seen.append(residual_masks)
        return real_run_block(block, x, hw_shape, cfg, residual_masks)

    monkeypatch.setattr(runner, 'run_block', recording_run_block)
    images = torch.randn(2, 3, 32, 32)
    model.train()(images)
    assert seen == [True] * 5
    model.eval()(images)
    without_drop_path = MLLA(arch, attn_impl='fast', drop_path_rate=0.).train()
    without_drop_path(images)
    assert seen == [True] * 5 + [False] * 10


def test_attn_impl_is_chosen_once_per_forward_and_runs_the_fused_functions(monkeypatch):
    """``attn_impl='fast'`` runs the fused block function on the CPU too (eagerly), once per block; ``'auto'`` and
    ``'plain'`` run the reference modules here; training with dropout runs plain. Speed options are not stored on
    the stages or blocks, and the state-dict keys do not depend on the choice."""
    with pytest.raises(ValueError, match='attn_impl'):
        MLLA('tiny', attn_impl='triton')
    calls = []
    real_block = runner.mlla_block

    def counted_block(*args, **kwargs):
        calls.append(args[0].shape)
        return real_block(*args, **kwargs)

    monkeypatch.setattr(runner, 'mlla_block', counted_block)
    arch = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
    torch.manual_seed(0)
    default = MLLA(arch).eval()
    models = {impl: MLLA(arch, attn_impl=impl).eval() for impl in ('plain', 'fast')}
    for model in models.values():
        model.load_state_dict(default.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out_default, out_plain = default(x), models['plain'](x)
        assert calls == []
        out_fast = models['fast'](x)
    assert len(calls) == 5, 'one fused call per block'
    for a, b, c in zip(out_default, out_plain, out_fast):
        assert torch.equal(a, b)  # 'auto' on the CPU is the plain path, bit for bit
        torch.testing.assert_close(c, b, rtol=1e-4, atol=1e-4)
    with_dropout = MLLA(arch, attn_impl='fast', drop_rate=0.1).train()
    with_dropout(x)
    assert len(calls) == 5, 'the fast path has no dropout: training with it runs plain'
    with_dropout.eval()(x)
    assert len(calls) == 10
    speed_words = ('attn_impl', 'cuda_graphs', 'triton_dwconv', 'compile', 'residual_masks', 'fast')
    for module in models['fast'].modules():
        if module is not models['fast']:
            assert not [name for name in vars(module) if name.startswith(speed_words)], type(module).__name__
    assert MLLA('tiny', attn_impl='plain').state_dict().keys() == MLLA('tiny', attn_impl='fast').state_dict().keys()


def test_backbone_fast_equals_plain():
    arch = dict(embed_dims=32, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).eval()
    fast = MLLA(arch, attn_impl='fast', drop_path_rate=0.).eval()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 45, 70)
    for a, b in zip(plain(x), fast(x)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_dwconv_operator_gradients_and_autocast():
    from mlla_mm.models.fast.dwconv import dwconv3x3_tokens
    torch.manual_seed(0)
    x = torch.randn(2, 5 * 7, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: dwconv3x3_tokens(*t, 5, 7), (x, weight, bias))
    # the operator itself convolves without the bias (added outside it, where the compiler fuses it)
    torch.library.opcheck(torch.ops.mlla_mm.dwconv3x3_tokens, (x, weight, 5, 7, False))
    torch.library.opcheck(torch.ops.mlla_mm.dwconv3x3_tokens, (x, weight, 5, 7, True))  # CPU: conv2d too
    image = x.detach().view(2, 5, 7, 8).permute(0, 3, 1, 2)
    expected = torch.nn.functional.conv2d(image, weight.detach(), bias.detach(), padding=1, groups=8)
    torch.testing.assert_close(dwconv3x3_tokens(x, weight, bias, 5, 7).detach(),
                               expected.permute(0, 2, 3, 1).reshape(2, 35, 8))
    # under autocast it computes in the autocast dtype, like F.conv2d, and hands float32 gradients back
    x32, w32, b32 = (t.detach().float().requires_grad_(True) for t in (x, weight, bias))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = dwconv3x3_tokens(x32, w32, b32, 5, 7)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x32.grad.dtype == w32.grad.dtype == b32.grad.dtype == torch.float32


def test_stride2_dwconv_is_the_stride1_convolution_at_even_positions():
    """The patch merging's stride-2 depthwise convolution through the tokens operator: the values and gradients of
    ``F.conv2d`` with stride 2, in the autocast dtype under autocast; an odd grid is refused."""
    from mlla_mm.models.fast.dwconv import dwconv3x3_stride2_tokens
    torch.manual_seed(0)
    x = torch.randn(2, 6 * 10, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8, dtype=torch.float64, requires_grad=True)
    out = dwconv3x3_stride2_tokens(x, weight, bias, 6, 10, use_triton=True)
    image = x.view(2, 6, 10, 8).permute(0, 3, 1, 2)
    expected = torch.nn.functional.conv2d(image, weight, bias, stride=2, padding=1, groups=8)
    assert out.shape == expected.shape == (2, 8, 3, 5)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(out, (x, weight, bias), grad),
                               torch.autograd.grad(expected, (x, weight, bias), grad))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert dwconv3x3_stride2_tokens(x.float(), weight.float(), bias.float(), 6, 10).dtype == torch.bfloat16
    with pytest.raises(ValueError, match='even sides, got 5x10'):
        dwconv3x3_stride2_tokens(x[:, :50], weight, bias, 5, 10)


def test_patch_merging_with_the_tokens_operator_matches_the_module(monkeypatch):
    """:func:`runner.merging_convs` (the stride-2 convolution through the tokens operator, which the Triton kernels
    run on CUDA) gives the module's outputs, gradients and BatchNorm statistics."""
    from mlla_mm.models.layers import PatchMerging
    torch.manual_seed(0)
    module = PatchMerging(8).double().train()
    copy = PatchMerging(8).double().train()
    copy.load_state_dict(module.state_dict())
    x = torch.randn(2, 8, 6, 10, dtype=torch.float64, requires_grad=True)
    merging_convs = runner.merging_convs
    expected, got = module.conv(x), merging_convs(copy, x)
    torch.testing.assert_close(got, expected)
    grad = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(got, [x, *copy.parameters()], grad),
                               torch.autograd.grad(expected, [x, *module.parameters()], grad))
    torch.testing.assert_close(copy.state_dict(), module.state_dict())  # running statistics moved alike
    cfg = fast.check_fast_cfg(dict(compile=False))
    tokens = image_to_tokens(x.detach())
    calls = []
    monkeypatch.setattr(runner, 'merging_convs', lambda *args: calls.append(args) or merging_convs(*args))
    for triton_dwconv in (True, False):  # the runner's choice between the two
        out, hw = runner.run_patch_merging(module, tokens, (6, 10), {**cfg, 'triton_dwconv': triton_dwconv})
        assert hw == (3, 5) and len(calls) == 1, 'merging_convs with triton_dwconv only'
        torch.testing.assert_close(out, image_to_tokens(expected.detach()))


def test_kernels_that_fail_give_way_to_conv2d(monkeypatch):
    """Should the Triton kernels fail to build or run, the operator warns once and convolves with ``F.conv2d`` from
    then on (forward and backward); running out of memory is no such failure. The CUDA implementations are called
    here with CPU tensors, where ``F.conv2d`` runs the same."""
    from mlla_mm.models.fast import dwconv, triton_dwconv
    monkeypatch.setattr(triton_dwconv, 'GIVEN_UP', [])
    monkeypatch.setattr(triton_dwconv, 'triton', object())  # installed, as far as available() can tell
    torch.manual_seed(0)
    x, weight, grad = torch.randn(2, 5 * 7, 8), torch.randn(8, 1, 3, 3), torch.randn(2, 5 * 7, 8)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError('CUDA out of memory')
    monkeypatch.setattr(triton_dwconv, 'dwconv3x3', out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        dwconv._dwconv3x3_cuda(x, weight, 5, 7, True)
    assert triton_dwconv.available()

    def no_compiler(*args, **kwargs):
        raise RuntimeError('Failed to find C compiler')
    monkeypatch.setattr(triton_dwconv, 'dwconv3x3', no_compiler)
    with pytest.warns(UserWarning, match="Failed to find C compiler.*cuDNN's convolutions run instead"):
        out = dwconv._dwconv3x3_cuda(x, weight, 5, 7, True)
    torch.testing.assert_close(out, dwconv._dwconv3x3_default(x, weight, 5, 7))
    assert not triton_dwconv.available() and len(triton_dwconv.GIVEN_UP) == 1
    torch.testing.assert_close(dwconv._dwconv3x3_backward_cuda(grad, x, weight, 5, 7, True),
                               dwconv._dwconv3x3_backward_default(grad, x, weight, 5, 7))
    monkeypatch.setattr(triton_dwconv, 'GIVEN_UP', [])
    with pytest.warns(UserWarning, match='Failed to find C compiler'):
        grads = dwconv._dwconv3x3_backward_cuda(grad, x, weight, 5, 7, True)
    torch.testing.assert_close(grads, dwconv._dwconv3x3_backward_default(grad, x, weight, 5, 7))


def _stand_in_kernel(x, weight, bias, height, width, mirror=False, out_dtype=None):
    """:func:`.triton_dwconv.dwconv3x3` computed by ``F.conv2d``: the kernels' results where they cannot run."""
    from mlla_mm.models.fast import dwconv
    taps = weight.flip((-2, -1)) if mirror else weight
    out = dwconv._dwconv3x3_default(x, taps.to(x.dtype), height, width)
    return (out if bias is None else out + bias.to(x.dtype)).to(out_dtype or x.dtype)


def test_uncompiled_convolution_gives_way_to_conv2d_inside_its_function(monkeypatch):
    """Uncompiled on CUDA a depthwise convolution is one autograd function. Should the Triton kernels fail in its
    forward or its backward, it warns, gives them up and convolves with ``F.conv2d`` inside the same function, so
    that what it saves does not change: blocks recomputed by a checkpoint after the kernels were given up in a later
    block's backward save what they saved before. Running out of memory is no such failure. CPU tensors here, the
    kernels' results computed by ``F.conv2d`` where they are meant to run."""
    from mlla_mm.models.fast import dwconv, triton_dwconv
    monkeypatch.setattr(triton_dwconv, 'GIVEN_UP', [])
    monkeypatch.setattr(triton_dwconv, 'triton', object())  # installed, as far as available() can tell
    torch.manual_seed(0)
    x, grad = torch.randn(2, 5 * 7, 8, dtype=torch.float64), torch.randn(2, 5 * 7, 8, dtype=torch.float64)
    weight, bias = torch.randn(8, 1, 3, 3, dtype=torch.float64), torch.randn(8, dtype=torch.float64)

    def outputs_and_grads(convolve):
        leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        out = convolve(*leaves)
        return [out.detach()] + list(torch.autograd.grad(out, leaves, grad))

    def twice(convolve):  # two checkpointed regions one after the other, as two blocks with with_cp
        def regions(x, w, b):
            first = cp.checkpoint(convolve, x, w, b, use_reentrant=False)
            return cp.checkpoint(convolve, first, w, b, use_reentrant=False)
        return regions

    def eager(x, w, b):
        return dwconv._EagerTriton.apply(x, w, b, 5, 7, torch.float64)

    def conv2d(x, w, b):
        return dwconv._dwconv3x3_default(x, w, 5, 7) + b

    def fails(*args, **kwargs):
        raise RuntimeError('Failed to find C compiler')

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError('CUDA out of memory')

    monkeypatch.setattr(triton_dwconv, 'dwconv3x3', out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        outputs_and_grads(eager)
    assert triton_dwconv.available()

    want = outputs_and_grads(twice(conv2d))
    monkeypatch.setattr(triton_dwconv, 'dwconv3x3', _stand_in_kernel)
    monkeypatch.setattr(triton_dwconv, 'weight_and_bias_grad_sums', fails)
    with pytest.warns(UserWarning, match="Failed to find C compiler.*cuDNN's convolutions run instead"):
        got = outputs_and_grads(twice(eager))  # the second region's backward gives up, the first is recomputed
    for name, g, w in zip(['out', 'grad_x', 'grad_weight', 'grad_bias'], got, want):
        torch.testing.assert_close(g, w, msg=name)
    assert not triton_dwconv.available() and len(triton_dwconv.GIVEN_UP) == 1

    monkeypatch.setattr(triton_dwconv, 'GIVEN_UP', [])
    monkeypatch.setattr(triton_dwconv, 'dwconv3x3', fails)
    with pytest.warns(UserWarning, match='Failed to find C compiler'):
        got = outputs_and_grads(eager)
    for g, w in zip(got, outputs_and_grads(conv2d)):
        torch.testing.assert_close(g, w)


def test_uncompiled_convolution_function_is_for_cuda_tokens_outside_compile(monkeypatch):
    """The autograd function is taken for CUDA tokens with ``use_triton`` outside ``torch.compile`` only (here: CPU
    tokens, or not asked): elsewhere the operator runs, which compiled graphs call."""
    from mlla_mm.models.fast import dwconv
    x, weight, bias = torch.randn(1, 4 * 6, 8), torch.randn(8, 1, 3, 3), torch.randn(8)
    assert dwconv._eager_triton(x, weight, bias, 4, 6, use_triton=True) is None
    assert dwconv._eager_triton(x, weight, bias, 4, 6, use_triton=False) is None


@pytest.mark.parametrize('tracing', [False, True], ids=['uncompiled', 'as-traced'])
def test_layer_norm_equals_f_layer_norm(tracing, monkeypatch):
    """Both forms of the fast path's LayerNorm, ``F.layer_norm`` uncompiled and written out where ``torch.compile``
    traces: values and gradients of ``F.layer_norm``; half-precision inputs come back in their dtype."""
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: tracing)
    torch.manual_seed(0)
    x, weight, bias = (torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in ((3, 10, 48), (48,),
                                                                                                (48,)))
    ref = torch.nn.functional.layer_norm(x, (48,), weight, bias, 1e-5)
    out = functional_block.layer_norm(x, weight, bias, 1e-5)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    for got, want in zip(torch.autograd.grad(out, (x, weight, bias), grad),
                         torch.autograd.grad(ref, (x, weight, bias), grad)):
        torch.testing.assert_close(got, want)
    half = functional_block.layer_norm(x.detach().bfloat16(), weight.detach().float(), bias.detach().float(), 1e-5)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.double(), ref.detach(), rtol=2e-2, atol=2e-2)


def test_cached_tables_made_at_inference_serve_training():
    """The RoPE tables and head mask that the uncompiled path caches, first made under ``torch.inference_mode()``
    (a test before training), must still be saved for a training step's backward."""
    functional_block.cached_rope_tables.cache_clear()
    functional_block.cached_other_head_mask.cache_clear()
    torch.manual_seed(0)
    x = torch.randn(2, 5 * 7, 64)
    weights = [torch.randn(128, 64) * 0.1, torch.zeros(128), torch.randn(64, 1, 3, 3), torch.zeros(64)]
    with torch.inference_mode():
        functional_block.linear_attention(x, 5, 7, 2, *weights)
        functional_block.cached_rope_tables(5, 7, 64, torch.device('cpu'), torch.bfloat16)
    functional_block.cached_rope_tables(5, 7, 64, torch.device('cpu'), torch.bfloat16)
    for dtype in (torch.float32, torch.bfloat16):
        inputs = x.to(dtype, copy=True).requires_grad_(True)
        with torch.autocast('cpu', dtype=dtype, enabled=dtype != torch.float32):
            out = functional_block.linear_attention(inputs, 5, 7, 2, *weights)
        out.float().sum().backward()
        assert torch.isfinite(inputs.grad).all()


def test_other_head_mask_is_cached_uncompiled_and_formed_in_the_graph_when_traced(monkeypatch):
    mask = functional_block.other_head_mask(6, 2, torch.device('cpu'))
    assert mask.tolist() == [[i // 2 != j // 2 for j in range(6)] for i in range(6)]
    assert functional_block.other_head_mask(6, 2, torch.device('cpu')) is mask, 'cached uncompiled'
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    traced = functional_block.other_head_mask(6, 2, torch.device('cpu'))
    assert traced is not mask and torch.equal(traced, mask)


@pytest.fixture
def fresh_fast_path(monkeypatch):
    """The fast path as in a new process, compiling on the CPU too: nothing compiled, no failure recorded, Dynamo's
    caches empty before and after the test."""
    compiling.reset()
    monkeypatch.setattr(compiling, 'compiles_on', lambda device: True)  # the CUDA-only switch, here on the CPU
    yield
    compiling.reset()


@pytest.fixture
def whole_backbone_trains(monkeypatch):
    """The whole compiled backbone in training too, also on a torch whose Inductor lowers convolution backward
    itself (where the fast path trains stage by stage): for tests of that path's graphs, recorded by a backend that
    lowers no convolution, or with Inductor's forward lowering alone."""
    monkeypatch.setattr(compiling, 'sizes_specialise_convolution_backward', lambda: False)


@pytest.fixture
def counted_compiles(fresh_fast_path, monkeypatch):
    """The fast path's own torch.compile calls (their settings kept, CUDA graphs off) with a backend that records each
    graph it is given (forward and backward) instead of compiling it; yields that list."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._dynamo.backends.debugging import boxed_nop
    from torch._functorch.partitioners import min_cut_rematerialization_partition
    graphs = []

    def count(gm, example_inputs):
        graphs.append(gm)
        return boxed_nop(gm, example_inputs)

    real_compile = torch.compile

    def compile_with_counting_backend(fn, **kwargs):
        assert kwargs.pop('options')['triton.cudagraphs'] is False
        # Inductor's partitioner: the default one would save a float for a nested compile region's backward,
        # which the region rejects (compile_stages)
        return real_compile(fn, **kwargs, backend=aot_autograd(fw_compiler=count, bw_compiler=count,
                                                               partition_fn=min_cut_rematerialization_partition))

    monkeypatch.setattr(torch, 'compile', compile_with_counting_backend)
    yield graphs


@pytest.mark.slow
def test_one_compiled_graph_serves_every_stage_width(counted_compiles):
    """With dynamic weight shapes, torch.compile of the block must not specialise on the width (one compile, not
    one per stage), forward or backward; only past BLOCK_DIAGONAL_MAX_WIDTH (256), where the attention puts the
    heads first, is there a second graph, which the next width up to 256 does not add to."""
    for dims, heads in [(64, 2), (128, 4), (256, 8), (512, 16), (96, 3)]:
        plain, fast_block = make_pair(dims, heads, seed=dims)
        x = torch.randn(2, 5 * 6, dims)
        args = runner.block_tensors(fast_block)
        out = runner._compiled_block(False, True)(x.requires_grad_(True), 5, 6, heads, *args)
        out.sum().backward()
        torch.testing.assert_close(out.detach(), plain(x.detach(), (5, 6)), rtol=1e-4, atol=1e-4)
    assert len(counted_compiles) == 4, f'{len(counted_compiles)} graphs (forward + backward, up to 256 and above)'


@pytest.mark.slow
def test_backbone_compiles_once_whatever_the_input_size(counted_compiles, monkeypatch):
    """The compiled backbone (blocks, stem and patch merging, as with ``compile_convs``) compiles everything in its
    first train step, and the blocks in their first inference; later steps with other image sizes, including ones
    that make a stage's side odd (the patch merging then pads), compile nothing more. The first block of a stage,
    whose input is a view of the patch merging's output, shares the other blocks' graph, and so does the first
    block of all, which drops no path (its rate is 0) while the next does. On a GPU each graph costs tens of
    seconds of compiling."""
    torch.manual_seed(0)
    # two heads or more, as in every MLLA arch: a single head makes a broadcast that Dynamo specialises on
    arch = dict(embed_dims=32, depths=[2, 2, 1, 1], num_heads=[2, 4, 8, 16])
    model = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, fast_cfg=dict(BLOCK_BY_BLOCK, compile_convs=True))
    # (100, 140): stage 1 is 25 x 35, stage 2 13 x 18. The batch changes too, and first equals the image's
    # channels: with Dynamo's duck sizing the stem's convolutions would then be compiled for batch == 3 only
    sizes = [(3, 96, 128), (2, 128, 160), (2, 100, 140), (4, 64, 96)]
    counts = []
    for batch, height, width in sizes:
        model.zero_grad()
        sum(o.mean() for o in model.train()(torch.randn(batch, 3, height, width))).backward()
        counts.append(len(counted_compiles))
    # forward and backward, once per stage width for the blocks, and for the stem and each patch merging
    assert counts == [2 * (4 + 4)] * len(sizes)
    # Inference, blocks only and one call per block (compiled stages: test_compiled_stages_in_inference_with_all):
    # on the CPU the compiled convolutions also guard on their input's size (the CPU convolution's choice of memory
    # format), which says nothing about CUDA.
    inference = MLLA(arch, attn_impl='fast', fast_cfg=BLOCK_BY_BLOCK).eval()
    with torch.no_grad():
        for _, height, width in sizes:
            inference(torch.randn(1, 3, height, width))
            counts.append(len(counted_compiles))
    # one block graph for all widths (the weights' shapes are dynamic in inference)
    assert counts[len(sizes):] == [counts[0] + 1] * len(sizes)


def _symbolic_sizes(gm):
    """The sympy expressions of the symbolic sizes of every tensor in a recorded graph."""
    for node in gm.graph.nodes:
        value = node.meta.get('val')
        if isinstance(value, torch.Tensor):
            yield from (size.node.expr for size in value.shape if isinstance(size, torch.SymInt))


def _train_step(model, x, seed):
    """Outputs, input gradient and parameter gradients of one train step, stochastic depth drawn from ``seed``."""
    torch.manual_seed(seed)
    model.zero_grad()
    x = x.clone().requires_grad_(True)
    outs = model.train()(x)
    sum(o.mean() for o in outs).backward()
    return [o.detach() for o in outs] + [x.grad] + [p.grad for p in model.parameters() if p.grad is not None]


def _subgraphs(gm):
    """The nested compile regions' graphs called from ``gm``."""
    return [getattr(gm, node.target) for node in gm.graph.nodes
            if node.op == 'get_attr' and isinstance(getattr(gm, node.target), torch.fx.GraphModule)]


def _count_ops(gm, *ops):
    return sum(node.target in ops for node in gm.graph.nodes)


@pytest.mark.slow
def test_compiled_stages_compile_the_block_once_per_width_and_match_the_blocks(counted_compiles, monkeypatch):
    """``compile_stages``: in training, each stage's blocks in one compiled call, the block a nested compile region.
    It compiles one graph per stage width (forward and backward), however many blocks the stage has, none more for
    later image sizes, and computes what the per-block calls compute, stochastic depth included."""
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[2, 3, 1, 1], num_heads=[2, 4, 8, 16])
    stages = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, fast_cfg=dict(BLOCK_BY_BLOCK, compile_stages='train'))
    blocks = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, fast_cfg=BLOCK_BY_BLOCK)
    blocks.load_state_dict(stages.state_dict())
    inputs = [torch.randn(2, 3, 96, 128), torch.randn(2, 3, 100, 140)]  # (100, 140): odd sides in later stages
    got = []
    for x in inputs:
        got.append(_train_step(stages, x, seed=1))
        assert len(counted_compiles) == 2 * 4, 'one graph per stage width, forward and backward'
    assert (False, False) not in compiling.COMPILED, 'the stages ran their blocks one by one'
    # the block is one region, called once per block in each stage's forward and backward graph, not inlined
    # (Dynamo inlines a region called only once: the one-block stages)
    region_calls = [_count_ops(gm, torch.ops.higher_order.invoke_subgraph) for gm in counted_compiles]
    assert sorted(region_calls) == sorted(2 * [depth if depth > 1 else 0 for depth in arch['depths']])
    # RoPE's angles are formed once per stage, outside the block: no cos / sin inside the region, forward or
    # backward, and one of each in each stage's forward graph
    for gm in counted_compiles:
        for sub in _subgraphs(gm):
            assert _count_ops(sub, torch.ops.aten.cos.default, torch.ops.aten.sin.default) == 0
    forward_graphs = [gm for gm in counted_compiles if 'tangents' not in ' '.join(n.name for n in gm.graph.nodes)]
    assert len(forward_graphs) == 4
    assert all(_count_ops(gm, torch.ops.aten.cos.default) == 1 for gm in forward_graphs)
    assert compiling.FAILED == set()
    for x, from_stages in zip(inputs, got):
        from_blocks = _train_step(blocks, x, seed=1)
        assert len(from_stages) == len(from_blocks) > 10
        for a, b in zip(from_stages, from_blocks):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # inference keeps the blocks' own path (one graph for all widths), without a failed stage compile
    with torch.no_grad():
        for a, b in zip(stages.eval()(inputs[1]), blocks.eval()(inputs[1])):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert compiling.FAILED == set() and ('stage', False) in compiling.COMPILED


@pytest.mark.slow
def test_compiled_stages_in_inference_with_all(counted_compiles, monkeypatch):
    """``compile_stages='all'``: inference runs each stage as one compiled call too, one graph per stage width (the
    weights' shapes static), none more for another image size, and computes what the per-block calls compute. It is
    the default; ``'train'`` keeps inference on the blocks' own path."""
    stage_calls = []
    real_stage_call = runner._stage_as_one_call

    def counted_stage_call(*args, **kwargs):
        out = real_stage_call(*args, **kwargs)
        stage_calls.append(out is not None)
        return out

    monkeypatch.setattr(runner, '_stage_as_one_call', counted_stage_call)
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[2, 3, 1, 1], num_heads=[2, 4, 8, 16])
    stages = MLLA(arch, attn_impl='fast', fast_cfg=dict(BLOCK_BY_BLOCK, compile_stages='all')).eval()
    blocks = MLLA(arch, attn_impl='fast', fast_cfg=BLOCK_BY_BLOCK).eval()
    blocks.load_state_dict(stages.state_dict())
    counts = []
    with torch.no_grad():
        for x in (torch.randn(1, 3, 96, 128), torch.randn(1, 3, 100, 140)):  # (100, 140): odd later stages
            from_stages = [o.clone() for o in stages(x)]
            counts.append(len(counted_compiles))
            for a, b in zip(from_stages, blocks(x)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert counts == [4, 4 + 1], 'a graph per stage width, then the blocks\' one graph for all widths'
    assert compiling.FAILED == set() and stage_calls == [True] * 4 * 2
    assert MLLA(arch).fast_cfg['compile_stages'] == 'all', "'all' is the default"
    training_only = MLLA(arch, attn_impl='fast', fast_cfg=dict(BLOCK_BY_BLOCK, compile_stages='train')).eval()
    with torch.no_grad():
        training_only(torch.randn(1, 3, 96, 128))
    assert stage_calls == [True] * 4 * 2, "compile_stages='train' runs no compiled stage in inference"


@pytest.mark.slow
def test_compiled_backbone_is_one_graph_and_matches_the_blocks(counted_compiles, whole_backbone_trains):
    """``compile_backbone`` (the default): the whole backbone (stem, stages, patch merging, output norms) as one
    compiled call: one forward and one backward graph for every input whose sides are multiples of 32, the blocks
    in it one nested region per stage width; the same outputs, gradients and BatchNorm statistics as per-block
    calls, stochastic depth included. Other sizes run stage by stage; inference is one more graph.

    The first input's batch and numbers of 32 x 32 tiles are all 2: with Dynamo's duck sizing they would share one
    symbol, and the second input (another batch, other tiles) would compile again
    (fast.compile._without_duck_sizes)."""
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[2, 3, 1, 1], num_heads=[2, 4, 8, 16])
    whole = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, fast_cfg=dict(cuda_graphs=False))
    assert whole.fast_cfg['compile_backbone'], 'compile_backbone is the default'
    blocks = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, fast_cfg=BLOCK_BY_BLOCK)
    blocks.load_state_dict(whole.state_dict())
    inputs = [torch.randn(2, 3, 64, 64), torch.randn(3, 3, 128, 160) * 2 + 0.5]
    counts, got = [], []
    for x in inputs:
        got.append(_train_step(whole, x, seed=1))
        counts.append(len(counted_compiles))
    assert counts == [2, 2], 'one forward and one backward graph for the whole backbone, whatever the size'
    assert ('backbone', False) in compiling.COMPILED and ('stage', False) not in compiling.COMPILED
    # Every size in them is a polynomial in the numbers of 32 x 32 tiles (fast.backbone._as_tiles): no floor
    # division of the image's sides, which sympy would otherwise carry through every size of every stage.
    sizes = [size for gm in counted_compiles for size in _symbolic_sizes(gm)]
    assert sizes and not [size for size in sizes if size.has(FloorDiv)], sorted(map(str, set(sizes)))[:8]
    region_calls = [_count_ops(gm, torch.ops.higher_order.invoke_subgraph) for gm in counted_compiles]
    assert region_calls == [2 + 3] * 2, 'the blocks of stages of two blocks or more stay calls of a nested region'
    for x, from_whole in zip(inputs, got):
        from_blocks = _train_step(blocks, x, seed=1)
        assert len(from_whole) == len(from_blocks) > 10
        for a, b in zip(from_whole, from_blocks):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    counts.append(len(counted_compiles))
    buffers = dict(blocks.named_buffers())
    for name, buffer in whole.named_buffers():  # the stem's and patch mergings' BatchNorm statistics
        torch.testing.assert_close(buffer, buffers[name], rtol=1e-5, atol=1e-6, msg=name)
    assert whole.patch_embed.conv1.norm.num_batches_tracked.item() == 2
    # a side that is no multiple of 32 pads in the patch merging: that input runs stage by stage
    x = torch.randn(2, 3, 100, 140)
    for a, b in zip(_train_step(whole, x, seed=2), _train_step(blocks, x, seed=2)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ('stage', False) in compiling.COMPILED
    stage_graphs = len(counted_compiles) - counts[-1]
    assert stage_graphs == 2 * 4, 'forward and backward of each stage width'
    # inference: one more graph, forward only (the per-block model compiles one of its own first)
    whole.eval(), blocks.eval()
    with torch.no_grad():
        blocks(torch.randn(1, 3, 64, 96))
        before = len(counted_compiles)
        for height, width in ((64, 96), (96, 64)):
            x = torch.randn(1, 3, height, width)
            for a, b in zip(whole(x), blocks(x)):  # two traced graphs, whose products may sum in other orders
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert len(counted_compiles) == before + 1
    assert compiling.FAILED == set()


@pytest.mark.slow
def test_inductor_lowers_the_compiled_backbones_training_graph(fresh_fast_path, whole_backbone_trains,
                                                                monkeypatch):
    """Inductor itself (not a recording backend) lowers the whole backbone's forward training graph, stopped where
    its code generation would begin. torch 2.14's failed there on graph outputs that are views with strides that
    are products of the tile counts (the channels-last inputs that the stem's and the patch merging's convolutions
    save for the backward): "cannot determine truth value of Relational" when ordering them. The backbone's compile
    now asks for exact output strides (fast.compile.backbone_inductor_options). 64 x 96 images: 2 x 3 tiles."""
    import torch._inductor.graph as inductor_graph

    class Lowered(Exception):
        pass

    def stop(self, *args, **kwargs):
        raise Lowered(self.name if hasattr(self, 'name') else 'graph')

    monkeypatch.setattr(inductor_graph.GraphLowering, 'codegen', stop)
    torch.manual_seed(0)
    # strict: a failure raises instead of stepping down
    model = MLLA(dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 16]), attn_impl='fast',
                 drop_path_rate=0.1, fast_cfg=dict(cuda_graphs=False, strict=True)).train()
    with torch._inductor.config.patch(force_disable_caches=True):
        with pytest.raises(Exception) as raised:
            model(torch.randn(2, 3, 64, 96))
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(error, Lowered) for error in chain), ''.join(map(repr, chain))[:2000]


def test_backbone_inductor_options_exist_and_skip_the_mix_order_size_checks():
    """Every Inductor option the whole backbone compiles with is a setting of this torch, and where torch has it,
    mix-order reductions skip their size checks: those guard on the token count, and a batch of small images
    compiled the whole backbone a second time."""
    import torch._inductor.config as inductor_config
    options = compiling.backbone_inductor_options()
    with inductor_config.patch(**options):  # an unknown name raises
        pass
    if hasattr(inductor_config.triton, 'mix_order_reduction_non_strict_mode'):
        assert options['triton.mix_order_reduction_non_strict_mode'] is True
    else:
        assert not any('mix_order' in name for name in options)


@pytest.mark.slow
@pytest.mark.skipif(not compiling.sizes_specialise_convolution_backward(),
                    reason="this torch's Inductor calls ATen for convolution backward: the whole backbone trains")
def test_training_compiles_stage_by_stage_where_convolution_backward_specialises(fresh_fast_path):
    """Inductor itself, on the CPU, where it lowers convolution backward (torch 2.14): that lowering fixed the whole
    backbone's training graph to the first image size, which then compiled again for every new size. Training
    compiles the stages there: one graph per stage width serves three image sizes, with the plain path's outputs
    and gradients; inference still compiles the whole backbone."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 16])
    fast_model = MLLA(arch, attn_impl='fast', drop_path_rate=0., fast_cfg=dict(cuda_graphs=False, strict=True))
    plain_model = MLLA(arch, attn_impl='plain', drop_path_rate=0.)
    plain_model.load_state_dict(fast_model.state_dict())
    counters.clear()
    with torch._inductor.config.patch(force_disable_caches=True):
        for height, width in ((64, 96), (96, 64), (128, 96)):
            x = torch.randn(2, 3, height, width)
            got, expected = _train_step(fast_model, x, seed=0), _train_step(plain_model, x, seed=0)
            assert len(got) == len(expected) > 10
            for a, b in zip(got, expected):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert counters['stats']['unique_graphs'] == 4, dict(counters['stats'])  # one per stage width
    assert ('stage', False) in compiling.COMPILED and ('backbone', False) not in compiling.COMPILED
    with torch.no_grad():
        fast_model.eval()(torch.randn(2, 3, 64, 96))
    assert ('backbone', False) in compiling.COMPILED and compiling.FAILED == set()


@pytest.mark.slow
def test_compiled_backbone_with_a_frozen_stage_matches_the_blocks(counted_compiles, whole_backbone_trains):
    """``compile_backbone`` with ``frozen_stages=1`` (the stem and stage 0 in eval mode, without gradients): the
    same outputs and gradients as per-block calls, no gradient for a frozen parameter, the frozen BatchNorms'
    statistics untouched, and still one forward and one backward graph."""
    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=[2, 2, 1, 1], num_heads=[2, 4, 8, 16])
    whole = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, frozen_stages=1, fast_cfg=dict(cuda_graphs=False))
    blocks = MLLA(arch, attn_impl='fast', drop_path_rate=0.1, frozen_stages=1, fast_cfg=BLOCK_BY_BLOCK)
    blocks.load_state_dict(whole.state_dict())
    frozen = {name for name, p in whole.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith(('patch_embed.', 'layers.0.', 'norm0.')) for name in frozen)
    statistics = {name: b.clone() for name, b in whole.named_buffers() if name.startswith('patch_embed.')}
    x = torch.randn(2, 3, 96, 128)
    from_whole = _train_step(whole, x, seed=4)
    assert len(counted_compiles) == 2 and ('backbone', False) in compiling.COMPILED
    from_blocks = _train_step(blocks, x, seed=4)
    assert len(from_whole) == len(from_blocks) > 10
    for a, b in zip(from_whole, from_blocks):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for name, p in whole.named_parameters() if name in frozen)
    for name, buffer in whole.named_buffers():
        if name in statistics:
            assert torch.equal(buffer, statistics[name]), name
    assert compiling.FAILED == set()


@pytest.mark.parametrize('fast_cfg,fragment', [
    (dict(compile_stages='always'), r"compile_stages must be one of .*'all'.*got 'always'"),
    (dict(compile_stages=True), r"compile_stages must be one of .*'train'.*got True"),
    (dict(cuda_graph=False), r"unknown key 'cuda_graph'"),
    (dict(strict='yes'), r"strict must be True or False, got 'yes'"),
    ([('compile', False)], r'fast_cfg must be a dict'),
    (dict(compile_inference_after=-1), r'compile_inference_after must be a number of images >= 0 or None.*-1'),
    (dict(compile_inference_after=True), r'compile_inference_after must be .*got True'),
    (dict(compile_inference_after=1.5), r'compile_inference_after must be .*got 1.5'),
    (dict(compile_training_after=-5), r'compile_training_after must be a number of images >= 0 or None.*-5'),
    (dict(compile_training_after='5000'), r"compile_training_after must be .*got '5000'"),
    (dict(uncompiled_graphs=-1), r'uncompiled_graphs must be a number of image sizes >= 0, got -1'),
    (dict(uncompiled_graphs=True), r'uncompiled_graphs must be .*got True'),
    (dict(uncompiled_graphs=None), r'uncompiled_graphs must be .*got None'),
])
def test_fast_cfg_rejects_unknown_keys_and_values(fast_cfg, fragment):
    with pytest.raises(ValueError, match=fragment):
        MLLA('tiny', fast_cfg=fast_cfg)


def test_fast_cfg_defaults_and_is_not_shared():
    options = dict(compile=False)
    model = MLLA('tiny', fast_cfg=options)
    assert model.fast_cfg == dict(cuda_graphs=True, triton_dwconv=True, compile_convs=False, compile_stages='all',
                                  compile_backbone=True, compile=False, compile_training_after=5000,
                                  compile_inference_after=2000, uncompiled_graphs=0, uncompiled_inference_graphs=8,
                                  strict=False)
    assert MLLA('tiny', fast_cfg=dict(compile_inference_after=None)).fast_cfg['compile_inference_after'] is None
    assert options == dict(compile=False), "the caller's dict is left as it was"
    assert MLLA('tiny').fast_cfg == fast.FAST_CFG_DEFAULTS and MLLA('tiny').fast_cfg is not fast.FAST_CFG_DEFAULTS


class _CudaBatch:
    """Stands for a CUDA batch of ``n`` images of ``size``: the choice of path reads only its device, dtype and
    shape."""
    is_cuda = True
    device = torch.device('cuda')

    def __init__(self, n: int, dtype: torch.dtype = torch.float32, size=(64, 64)):
        self.shape, self.dtype = (n, 3, *size), dtype


def test_auto_runs_uncompiled_for_the_first_images_of_each_kind_of_call(monkeypatch):
    """``'auto'``: uncompiled until ``compile_training_after`` images have trained (with gradients) and
    ``compile_inference_after`` images have been inferred (without), each counted on its own and batches of one
    image apart from larger ones (they compile graphs of their own); ``None`` never, 0 at once."""
    messages = []
    monkeypatch.setattr(mlla_module, 'print_log', lambda msg, logger=None: messages.append(msg))
    monkeypatch.setattr(fast.config.triton_dwconv, 'available', lambda: True)
    model = MLLA('tiny', attn_impl='auto', fast_cfg=dict(compile_training_after=3, compile_inference_after=5))
    assert [model._path(_CudaBatch(2)) != 'fast' for _ in range(2)] == [True, True]
    assert [model._path(_CudaBatch(2)) for _ in range(2)] == ['fast', 'fast']
    assert model.uncompiled_images == {'training': 4}
    assert messages == ['MLLA: 4 images (training) have run uncompiled (fast_cfg compile_training_after=3); '
                        'the next ones take the compiled fast path'], 'said once, when the count is reached'
    assert [model._path(_CudaBatch(1)) != 'fast' for _ in range(4)] == [True] * 3 + [False], \
        'a last batch of one image is not compiled for because larger batches were'
    with torch.no_grad():
        assert [model._path(_CudaBatch(4)) != 'fast' for _ in range(3)] == [True, True, False]
        assert model._path(_CudaBatch(1)) != 'fast'
    assert model.uncompiled_images == {'training': 4, 'training, batches of one': 3,
                                       'inference': 8, 'inference, batches of one': 1}
    assert model._path(torch.zeros(8, 3, 64, 64)) == 'plain', 'CPU inputs always run plain'
    never = MLLA('tiny', attn_impl='auto', fast_cfg=dict(compile_training_after=None))
    assert not any(never._path(_CudaBatch(1000)) == 'fast' for _ in range(20))
    at_once = MLLA('tiny', attn_impl='auto', fast_cfg=dict(compile_training_after=0))
    assert at_once._path(_CudaBatch(2)) == at_once._path(_CudaBatch(1)) == 'fast'
    fast_model = MLLA('tiny', attn_impl='fast')
    assert fast_model._path(_CudaBatch(1)) == 'fast' and fast_model.uncompiled_images == {}
    assert MLLA('tiny', attn_impl='plain')._path(_CudaBatch(1)) == 'plain'
    assert at_once.uncompiled_images == {}
    assert len(messages) == 3, 'nothing said where nothing is counted (None, 0, fast)'
    dropout = MLLA('tiny', attn_impl='auto', drop_rate=0.1, fast_cfg=dict(compile_training_after=0))
    assert dropout._path(_CudaBatch(2)) == 'plain' and dropout.uncompiled_images == {}, 'the fast path has no dropout'
    evaluating = MLLA('tiny', attn_impl='auto').eval()
    assert evaluating._path(_CudaBatch(2)) != 'fast' and evaluating.uncompiled_images == {'training': 2}, \
        'with gradients enabled an eval-mode forward counts as training'
    half = MLLA('tiny', attn_impl='auto')
    assert half._path(_CudaBatch(2, torch.float16)) == 'fast' and half.uncompiled_images == {}, \
        'half-precision weights outside autocast, which the plain path does not run, take the fast path at once'


def test_auto_runs_the_triton_kernels_uncompiled_and_plain_without_them(monkeypatch):
    """Before compiling, ``'auto'`` runs the fast path's functions uncompiled with the Triton kernels from the first
    image, at every size (cuDNN would set its depthwise convolutions up again at each new one), and plain without
    the kernels: ``triton_dwconv=False`` or no Triton."""
    monkeypatch.setattr(fast.config.triton_dwconv, 'available', lambda: True)
    model = MLLA('tiny', attn_impl='auto')
    a, b = dict(size=(64, 96)), dict(size=(96, 64))
    assert [model._path(_CudaBatch(2, **size)) for size in (a, a, b, a)] == ['uncompiled'] * 4
    assert model._path(_CudaBatch(1, **a)) == 'uncompiled'
    with torch.no_grad():
        assert model._path(_CudaBatch(2, **a)) == 'uncompiled'
    without_kernels = MLLA('tiny', attn_impl='auto', fast_cfg=dict(triton_dwconv=False))
    assert [without_kernels._path(_CudaBatch(2, **size)) for size in (a, b, a)] == ['plain'] * 3
    monkeypatch.setattr(fast.config.triton_dwconv, 'available', lambda: False)
    no_triton = MLLA('tiny', attn_impl='auto')
    assert [no_triton._path(_CudaBatch(2, **size)) for size in (a, b, a)] == ['plain'] * 3, 'without Triton'


def test_uncompiled_forward_compiles_nothing_and_matches_plain(fresh_fast_path, monkeypatch):
    """The ``'uncompiled'`` forward of ``'auto'`` (its first images): the fast path's functions, not compiled even
    where compiling is on, with the plain path's outputs and gradients."""
    arch = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).double().train()
    auto = MLLA(arch, attn_impl='auto', drop_path_rate=0.).double().train()
    auto.load_state_dict(plain.state_dict())
    auto._path = lambda x: 'uncompiled'
    cfgs = []
    forward_backbone = fast.forward_backbone
    monkeypatch.setattr(fast, 'forward_backbone', lambda model, x, cfg: cfgs.append(cfg) or
                        forward_backbone(model, x, cfg))
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    outs_p, outs_u = plain(x), auto(x)
    # uncompiled, with the model's cuda_graphs (for uncompiled_graphs: tests/test_eager_graphs.py)
    assert [(cfg['compile'], cfg['cuda_graphs']) for cfg in cfgs] == [(False, True)], 'the fast path, uncompiled'
    assert not compiling.COMPILED
    for u, p in zip(outs_u, outs_p):
        torch.testing.assert_close(u, p)
    sum(o.square().mean() for o in outs_p).backward()
    sum(o.square().mean() for o in outs_u).backward()
    for (name, p), u in zip(plain.named_parameters(), auto.parameters()):
        torch.testing.assert_close(u.grad, p.grad, msg=name)


class _CountOperations(TorchDispatchMode):
    """Counts the aten operations that compute (views and metadata aside), each a kernel launch on a GPU."""
    NOT_COMPUTING = {'view', '_unsafe_view', 'transpose', 't', 'expand', 'permute', 'select', 'slice', 'detach',
                     'as_strided', 'unsqueeze', 'squeeze', 'alias', 'split', 'unbind', 'reshape', 'lift_fresh',
                     'split_with_sizes', 'sym_size', 'sym_numel', 'sym_stride', 'promote_types', 'is_same_size'}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.overloadpacket.__name__ not in self.NOT_COMPUTING
        return func(*args, **(kwargs or {}))


def test_uncompiled_fast_path_launches_fewer_operations_than_plain():
    """An eager train step is bound by launching kernels from Python, so the uncompiled fast path (what ``'auto'``
    trains with before it compiles) must not launch more operations, forward and backward, than the plain path it
    stands in for: its LayerNorms are ``F.layer_norm``, its depthwise convolutions (on the CPU) one operator without
    permutes."""
    arch = dict(embed_dims=32, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])
    counts = {}
    for path in ('plain', 'uncompiled'):
        torch.manual_seed(0)
        model = MLLA(arch, attn_impl='auto', drop_path_rate=0.).train()
        model._path = lambda x: path
        sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 96))).backward()  # tables made, as in a job
        with _CountOperations() as forward:
            outs = model(torch.randn(2, 3, 64, 96))
        loss = sum(o.square().mean() for o in outs)
        with _CountOperations() as backward:
            loss.backward()
        counts[path] = forward.count + backward.count
    assert counts['uncompiled'] <= counts['plain'], counts


def test_compiled_stages_leave_the_blocks_path_where_they_do_not_compile(monkeypatch):
    """Where stages are not compiled (the CPU; or checkpointing in training, which recomputes block by block), the
    blocks run as without ``compile_stages``: same stochastic-depth draws, same result, bit for bit."""
    arch = dict(embed_dims=32, depths=[2, 2, 1, 1], num_heads=[2, 4, 8, 16])
    torch.manual_seed(0)
    blocks = MLLA(arch, attn_impl='fast', drop_path_rate=0.2, fast_cfg=dict(compile_stages=False))
    stages = MLLA(arch, attn_impl='fast', drop_path_rate=0.2)
    stages.load_state_dict(blocks.state_dict())
    assert stages.fast_cfg['compile_stages'] == 'all', 'compile_stages is on by default'
    x = torch.randn(2, 3, 64, 96)
    for a, b in zip(_train_step(stages, x, seed=3), _train_step(blocks, x, seed=3)):
        assert torch.equal(a, b)

    def no_stage_call(*args, **kwargs):
        raise AssertionError('a checkpointed stage must run block by block')

    # as if stages compiled here (for a model that asks for them)
    monkeypatch.setattr(runner, 'stage_compiles', lambda x, cfg: cfg['compile_stages'] is not False)
    monkeypatch.setattr(runner, '_stage_as_one_call', no_stage_call)
    checkpointed = MLLA(arch, attn_impl='fast', drop_path_rate=0.2, with_cp=True)
    checkpointed.load_state_dict(blocks.state_dict())
    for a, b in zip(_train_step(checkpointed, x, seed=3), _train_step(blocks, x, seed=3)):
        assert torch.equal(a, b)


def test_fast_kernel_options_keep_the_cpu_result():
    """``triton_dwconv`` / ``compile_convs`` select CUDA implementations only: on the CPU the backbone's output
    stays bit for bit that without them."""
    arch = dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
    torch.manual_seed(0)
    default = MLLA(arch, attn_impl='fast', fast_cfg=dict(triton_dwconv=False)).eval()
    options = MLLA(arch, attn_impl='fast', fast_cfg=dict(triton_dwconv=True, compile_convs=True)).eval()
    options.load_state_dict(default.state_dict())
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        for a, b in zip(default(x), options(x)):
            assert torch.equal(a, b)


def test_gradients_accumulate_over_steps_on_the_fast_path():
    """Two backward passes without zero_grad (gradient accumulation): the fast path's guard that copies held
    gradients before a step (for CUDA graphs) must leave the sums as the plain path's."""
    arch = dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).train()
    fast = MLLA(arch, attn_impl='fast', drop_path_rate=0., fast_cfg=dict(cuda_graphs=True)).train()
    fast.load_state_dict(plain.state_dict())
    inputs = [torch.randn(2, 3, 48, 64) for _ in range(2)]

    def loss(model, step):  # a fixed random projection of the outputs (their LayerNorms leave a mean square flat)
        generator = torch.Generator().manual_seed(step)
        return sum((o * torch.randn(o.shape, generator=generator)).sum() for o in model(inputs[step]))

    for model in (plain, fast):
        for step in range(2):
            loss(model, step).backward()
    largest = max(p.grad.norm() for p in plain.parameters())
    for (name, p), f in zip(plain.named_parameters(), fast.parameters()):
        if p.grad.norm() < 1e-5 * largest:  # a conv bias right before a BatchNorm: zero up to rounding
            continue
        assert ((f.grad - p.grad).norm() / p.grad.norm()) < 1e-4, name
    single = MLLA(arch, attn_impl='fast', drop_path_rate=0.).train()
    single.load_state_dict(plain.state_dict())
    loss(single, 0).backward()
    once, twice = single.layers[0].blocks[0].attn.qk.weight.grad, fast.layers[0].blocks[0].attn.qk.weight.grad
    assert (twice - once).norm() > 0.1 * once.norm()  # the second step did add to the first


def test_compiler_failure_steps_down_or_raises(monkeypatch):
    """A failed torch.compile is remembered and warned about once, with the error's first line; with
    ``fast_cfg=dict(strict=True)``, and for out-of-memory errors, it is raised instead."""
    monkeypatch.setattr(compiling, 'FAILED', set())
    with pytest.warns(UserWarning, match=r'failed on the stem \(RuntimeError: first line\); from now on eager'):
        compiling.step_down(RuntimeError('first line\nsecond'), 'convs', ' on the stem', 'eager', strict=False)
    assert compiling.FAILED == {'convs'}
    with pytest.raises(torch.OutOfMemoryError):
        compiling.step_down(torch.OutOfMemoryError('no memory'), 'graphs', '', 'x', strict=False)
    with pytest.raises(RuntimeError, match='boom'):
        compiling.step_down(RuntimeError('boom'), 'compile', '', 'x', strict=True)
    assert compiling.FAILED == {'convs'}


def test_a_failed_compile_falls_back_unless_strict(monkeypatch):
    """Through the backbone: a compiler error in a block's compiled call makes the fast path step down (here to
    eager, the same numbers) with a warning; with ``strict`` the error reaches the caller."""
    def broken(*args, **kwargs):
        def fail(*call_args, **call_kwargs):
            raise RuntimeError('compiler broke')
        return fail

    arch = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])
    x = torch.randn(1, 3, 40, 56)
    monkeypatch.setattr(compiling, 'FAILED', set())
    monkeypatch.setattr(compiling, 'COMPILED', {})
    monkeypatch.setattr(compiling, 'compile_once', broken)
    monkeypatch.setattr(compiling, 'compiles_on', lambda device: True)
    torch.manual_seed(0)
    strict = MLLA(arch, attn_impl='fast', fast_cfg=dict(BLOCK_BY_BLOCK, strict=True)).eval()
    with pytest.raises(RuntimeError, match='compiler broke'), torch.no_grad():
        strict(x)
    assert compiling.FAILED == set()
    lenient = MLLA(arch, attn_impl='fast', fast_cfg=BLOCK_BY_BLOCK).eval()
    lenient.load_state_dict(strict.state_dict())
    plain = MLLA(arch, attn_impl='plain').eval()
    plain.load_state_dict(strict.state_dict())
    with pytest.warns(UserWarning, match='compiler broke'), torch.no_grad():
        outs = lenient(x)
    assert {'dynamic-weights', 'compile'} <= compiling.FAILED
    for a, b in zip(outs, plain(x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
