"""The Triton depthwise-convolution kernels on a GPU against cuDNN's ``F.conv2d`` (skipped without CUDA/Triton).

Relative errors (max |a - b| / max |b|) against a float64 reference, for both the kernels and ``F.conv2d`` in the
same dtype: the kernels accumulate in float32, so in float32 they must be within 1e-5, and in half precision no
worse than twice ``F.conv2d``'s own error plus one rounding step of the dtype.
"""
import functools

import pytest
import torch
import torch.nn.functional as F

from mlla_mm.models.fast import triton_dwconv
from mlla_mm.models.fast import runner
from mlla_mm.models.fast.dwconv import dwconv3x3_tokens
from mlla_mm.models.layers import PatchMerging

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and triton_dwconv.available()),
                                reason='needs CUDA and Triton')

# (batch, H, W, channels): the MLLA-T stage widths at 2x800x1344 and 224x224 sizes, plus odd ones.
CASES = [(2, 200, 336, 64), (2, 50, 84, 256), (4, 7, 7, 512), (3, 13, 9, 72), (1, 1, 1, 128), (2, 25, 42, 512)]
EPS = {torch.float32: 1.2e-7, torch.bfloat16: 7.8e-3, torch.float16: 9.8e-4}


def reference(x, weight, bias, height, width):
    b, _, c = x.shape
    image = x.reshape(b, height, width, c).permute(0, 3, 1, 2)
    out = F.conv2d(image, weight, bias, padding=1, groups=c)
    return out.permute(0, 2, 3, 1).reshape(b, height * width, c)


def float64_case(batch, height, width, channels):
    """Random float64 tokens, weight and bias on the GPU, an output gradient, and the reference's output and
    gradients ``[out, grad_x, grad_weight, grad_bias]``."""
    x64 = torch.randn(batch, height * width, channels, device='cuda', dtype=torch.float64, requires_grad=True)
    w64 = torch.randn(channels, 1, 3, 3, device='cuda', dtype=torch.float64, requires_grad=True)
    b64 = torch.randn(channels, device='cuda', dtype=torch.float64, requires_grad=True)
    out64 = reference(x64, w64, b64, height, width)
    grad64 = torch.randn_like(out64)
    want = [out64.detach()] + list(torch.autograd.grad(out64, (x64, w64, b64), grad64))
    return (x64, w64, b64), grad64, want


def rel(a, b):
    return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16], ids=['fp32', 'bf16', 'fp16'])
@pytest.mark.parametrize('batch,height,width,channels', CASES)
def test_triton_dwconv_matches_conv2d(batch, height, width, channels, dtype, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    torch.manual_seed(batch + height + channels)
    inputs64, grad64, want = float64_case(batch, height, width, channels)

    def run(impl):
        x, w, b = (t.detach().to(dtype).requires_grad_(True) for t in inputs64)
        out = impl(x, w, b, height, width)
        out.backward(grad64.to(dtype))
        return [out.detach(), x.grad, w.grad, b.grad]

    got = run(lambda *args: dwconv3x3_tokens(*args, use_triton=True))  # uncompiled: the autograd function
    base = run(reference)
    for name, g, r, w in zip(['out', 'grad_x', 'grad_weight', 'grad_bias'], got, base, want):
        assert g.dtype == dtype and g.shape == w.shape, name
        limit = 1e-5 if dtype == torch.float32 else 2 * rel(r, w) + EPS[dtype]
        assert rel(g, w) <= limit, f'{name}: {rel(g, w):.2e} vs F.conv2d {rel(r, w):.2e}'


def test_operator_runs_triton_only_when_asked(monkeypatch):
    """``use_triton=True`` runs the Triton kernels (the same numbers bit for bit), uncompiled and through the
    operator that compiled graphs call; False runs cuDNN: they agree."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    x = torch.randn(2, 30 * 20, 64, device='cuda')
    w, b = torch.randn(64, 1, 3, 3, device='cuda'), torch.randn(64, device='cuda')
    with_triton = dwconv3x3_tokens(x, w, b, 30, 20, use_triton=True)
    torch.testing.assert_close(with_triton, triton_dwconv.dwconv3x3(x, w, b, 30, 20), rtol=0, atol=0)
    operator = torch.ops.mlla_mm.dwconv3x3_tokens(x, w, 30, 20, True)
    torch.testing.assert_close(operator, triton_dwconv.dwconv3x3(x, w, None, 30, 20), rtol=0, atol=0)
    torch.testing.assert_close(dwconv3x3_tokens(x, w, b, 30, 20), with_triton, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16], ids=['fp32', 'fp16'])
def test_patch_merging_through_triton_matches_the_module(dtype, monkeypatch):
    """The patch merging with its stride-2 depthwise convolution through the Triton kernels (the stride-1 kernels
    read at even positions) and the module on cuDNN, both against the module in float64: outputs and gradients, in
    float32 and under fp16 autocast, the Triton path no worse than twice cuDNN's own error plus the kernels' float32
    bound (above) or one fp16 rounding step.
    Small, so that a value on the edge of a ReLU rarely falls on different sides in the two paths; the bias of the
    last 1x1 convolution is left out: the BatchNorm after it makes its gradient zero up to rounding."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    torch.manual_seed(0)
    module = PatchMerging(16).cuda().train()
    x = torch.randn(2, 16, 26, 42, device='cuda', dtype=torch.float64)
    grad_out = torch.randn(2, 32, 13, 21, device='cuda', dtype=torch.float64)

    def run(precision, convs_of):
        merging = PatchMerging(16).cuda().train().to(precision)
        merging.load_state_dict(module.state_dict())
        image = x.to(precision, copy=True).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with torch.autocast('cuda', dtype=dtype, enabled=precision == torch.float32 and dtype != torch.float32):
            out = convs_of(merging)(image)
        out.backward(grad_out.to(out.dtype))
        return [out.detach()] + [image.grad] + [p.grad for p in merging.parameters()]

    want = run(torch.float64, lambda merging: merging.conv)
    base = run(torch.float32, lambda merging: merging.conv)
    got = run(torch.float32, lambda merging: functools.partial(runner.merging_convs, merging))
    names = ['out', 'grad_image'] + [f'grad_{name}' for name, _ in module.named_parameters()]
    for name, g, r, w in zip(names, got, base, want):
        assert g.shape == w.shape, name
        if name == 'grad_conv.2.conv.bias':
            continue
        limit = 2 * rel(r, w) + (1e-5 if dtype == torch.float32 else EPS[dtype])
        assert rel(g, w) <= limit, f'{name}: {rel(g, w):.2e} vs cuDNN {rel(r, w):.2e}'


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_uncompiled_convolution_of_float32_tokens_under_autocast(dtype, monkeypatch):
    """Uncompiled, the kernels read float32 tokens (the residual stream) and weights as they are under autocast and
    return autocast's dtype, with float32 gradients: no worse than ``F.conv2d`` under the same autocast, which
    first casts them."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    torch.manual_seed(1)
    height, width = 50, 84
    inputs64, grad64, want = float64_case(2, height, width, 128)

    def run(impl):
        x, w, b = (t.detach().float().requires_grad_(True) for t in inputs64)
        with torch.autocast('cuda', dtype=dtype):
            out = impl(x, w, b, height, width)
        out.backward(grad64.to(out.dtype))
        return [out.detach(), x.grad, w.grad, b.grad]

    got = run(lambda *args: dwconv3x3_tokens(*args, use_triton=True))
    base = run(reference)
    for name, g, r, w in zip(['out', 'grad_x', 'grad_weight', 'grad_bias'], got, base, want):
        assert g.dtype == r.dtype and g.shape == w.shape, name
        assert rel(g, w) <= 2 * rel(r, w) + EPS[dtype], f'{name}: {rel(g, w):.2e} vs F.conv2d {rel(r, w):.2e}'
