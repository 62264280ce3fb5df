"""The Triton depthwise-convolution kernels (mlla_mm/models/fast/triton_dwconv.py) against ``F.conv2d``.

On a machine without a GPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``), which executes the
same kernel code on the CPU. The interpreter is chosen when the kernels are defined, so the comparisons run in a
child process and report their errors back as JSON. tests/gpu checks the same kernels compiled for a GPU.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mlla_mm.models.fast import triton_dwconv

pytestmark = pytest.mark.skipif(not triton_dwconv.available(), reason='needs Triton')

# (batch, H, W, channels): odd, non-square and one-pixel images, images wider and taller than one strip of the
# kernels (16 columns, 8 rows); channel counts below, at and across the kernels'
# channel block (64), so the masks on both tile axes are exercised.
CASES = [(2, 5, 7, 8), (1, 1, 1, 4), (3, 4, 3, 72), (1, 9, 2, 130), (2, 6, 11, 64), (1, 19, 35, 8)]

# The start of every child: float64 tokens, weight and bias, an output gradient, F.conv2d's output and gradients
# (in the order of NAMES), and how a result compares with its reference.
CONV2D_REFERENCE = textwrap.dedent('''
    import json, sys
    import torch
    import torch.nn.functional as F

    NAMES = ['out', 'grad_x', 'grad_weight', 'grad_bias']

    def conv2d_case(batch, height, width, channels):
        x = torch.randn(batch, height * width, channels, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(channels, 1, 3, 3, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(channels, dtype=torch.float64, requires_grad=True)
        image = x.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        ref = F.conv2d(image, weight, bias, padding=1, groups=channels)
        ref = ref.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        grad = torch.randn_like(ref)
        return (x, weight, bias), grad, [ref] + list(torch.autograd.grad(ref, (x, weight, bias), grad))

    def compared(got, want):
        return {'shape': list(got.shape) == list(want.shape), 'dtype': str(got.dtype),
                'err': ((got.double() - want).abs().max() / want.abs().max()).item()}
''')

CHILD = CONV2D_REFERENCE + textwrap.dedent('''
    from mlla_mm.models.fast import triton_dwconv

    results = []
    for batch, height, width, channels in json.loads(sys.argv[1]):
        torch.manual_seed(batch * 100 + height * 10 + width)
        inputs, grad, want = conv2d_case(batch, height, width, channels)
        x32, w32, b32, g32 = (t.detach().float() for t in (*inputs, grad))
        out = triton_dwconv.dwconv3x3(x32, w32, b32, height, width)
        grad_x = triton_dwconv.dwconv3x3(g32, w32, None, height, width, mirror=True)
        grad_w, grad_b = triton_dwconv.dwconv3x3_weight_grad(g32, x32, height, width)
        results.append({name: compared(got, ref)
                        for name, got, ref in zip(NAMES, [out, grad_x, grad_w, grad_b], want)})
    print(json.dumps(results))
''')


def run_in_interpreter(script: str, *args: str):
    """``script`` in a child process under Triton's interpreter; the last line it prints, read as JSON."""
    env = {**os.environ, 'TRITON_INTERPRET': '1'}
    done = subprocess.run([sys.executable, '-c', script, *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def interpreter_results():
    return run_in_interpreter(CHILD, json.dumps(CASES))


@pytest.mark.parametrize('index', range(len(CASES)), ids=[str(c) for c in CASES])
def test_kernels_match_conv2d(interpreter_results, index):
    """Output, input gradient, weight and bias gradients within float32 accumulation error of float64 conv2d."""
    for name, result in interpreter_results[index].items():
        assert result['shape'], f'{name}: wrong shape'
        assert result['dtype'] == 'torch.float32', f'{name}: {result["dtype"]}'
        assert result['err'] < 1e-5, f'{name}: relative error {result["err"]:.2e}'


def test_bad_shapes_name_the_problem():
    x = torch.zeros(2, 12, 8)
    with pytest.raises(ValueError, match=r'H\*W = 3\*5'):
        triton_dwconv.dwconv3x3(x, torch.zeros(8, 1, 3, 3), None, 3, 5)
    with pytest.raises(ValueError, match=r'weight must be \(8, 1, 3, 3\)'):
        triton_dwconv.dwconv3x3(x, torch.zeros(8, 1, 5, 5), None, 3, 4)


EAGER_CHILD = CONV2D_REFERENCE + textwrap.dedent('''
    from mlla_mm.models.fast.dwconv import _EagerTriton

    height, width = 9, 19
    torch.manual_seed(0)
    inputs, grad, want = conv2d_case(2, height, width, 72)
    results = {}
    for out_name, out_dtype in [('float32', torch.float32), ('float16', torch.float16)]:
        x32, w32, b32 = (t.detach().float().requires_grad_(True) for t in inputs)
        out = _EagerTriton.apply(x32, w32, b32, height, width, out_dtype)
        out.backward(grad.to(out_dtype))
        results[out_name] = {name: compared(got, ref)
                             for name, got, ref in zip(NAMES, [out, x32.grad, w32.grad, b32.grad], want)}
    print(json.dumps(results))
''')


def test_eager_function_matches_conv2d_in_its_output_dtype():
    """The autograd function the fast path calls uncompiled: the bias inside the kernel, the output in the dtype
    asked for (autocast's), float32 input, weight and bias read as they are and their gradients returned in it."""
    results = run_in_interpreter(EAGER_CHILD)
    for out_name, limit in [('float32', 1e-5), ('float16', 2e-3)]:
        for name, result in results[out_name].items():
            want_dtype = f'torch.{out_name}' if name == 'out' else 'torch.float32'
            assert result['shape'] and result['dtype'] == want_dtype, (out_name, name, result)
            assert result['err'] < limit, f'{out_name} {name}: relative error {result["err"]:.2e}'
