"""The backbone against the official implementation's numbers, on the plain path and on the fast path (eagerly, as
it runs on the CPU), and its gradients against finite differences."""
from pathlib import Path

import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models.fast import functional_block, runner
from mlla_mm.models.layers import rope, rope_tables
from reference_weights import REFERENCE_CASES, fill_reference_weights, reference_input, reference_loss

REFERENCE = torch.load(Path(__file__).parent / 'data' / 'official_reference.pt', weights_only=True)


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


def run_case(case: str, dtype: torch.dtype, attn_impl: str = 'plain'):
    spec = REFERENCE_CASES[case]
    model = MLLA(spec['arch'], drop_path_rate=0., attn_impl=attn_impl, fast_cfg=dict(compile=False)).eval()
    fill_reference_weights(model)
    model.to(dtype)
    x = reference_input(case).to(dtype).requires_grad_(True)
    outputs = model(x)
    reference_loss(outputs).backward()
    return outputs, x.grad


def assert_matches_official(case, outputs, input_grad, tolerance):
    expected = REFERENCE[case]
    assert [o.shape for o in outputs] == [o.shape for o in expected['outputs']]
    for stage, (out, ref) in enumerate(zip(outputs, expected['outputs'])):
        assert max_relative_error(out, ref) < tolerance, f'stage {stage} output'
    assert max_relative_error(input_grad, expected['input_grad']) < tolerance


@pytest.fixture
def fused_block_calls(monkeypatch):
    """Counts the calls of the fast path's fused block function."""
    calls = []
    real_block = runner.mlla_block

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real_block(*args, **kwargs)

    monkeypatch.setattr(runner, 'mlla_block', counted)
    return calls


@pytest.mark.parametrize('case', sorted(REFERENCE_CASES))
@pytest.mark.parametrize('dtype,tolerance', [(torch.float32, 1e-5), (torch.float64, 1e-6)])
def test_outputs_and_input_gradients_match_official(case, dtype, tolerance):
    assert_matches_official(case, *run_case(case, dtype), tolerance)


@pytest.mark.parametrize('case,dtype,tolerance', [
    *(pytest.param(case, torch.float32, 1e-5, id=f'{case}-float32') for case in sorted(REFERENCE_CASES)),
    *(pytest.param(case, torch.float64, 1e-6, id=f'{case}-float64') for case in ('tiny_67x93', 'custom_2x45x130'))])
def test_fast_path_matches_official(case, dtype, tolerance, fused_block_calls):
    """The fast path's fused functions (not the reference modules: the calls are counted) against the official
    numbers, so that an error both paths share (in RoPE, say) cannot hide behind their agreement."""
    outputs, input_grad = run_case(case, dtype, attn_impl='fast')
    arch = REFERENCE_CASES[case]['arch']
    depths = MLLA.arch_zoo[arch]['depths'] if isinstance(arch, str) else arch['depths']
    assert len(fused_block_calls) == sum(depths), 'every block ran through the fast path'
    assert_matches_official(case, outputs, input_grad, tolerance)


def _swapped_rope_angles(height, width, channels, device):
    """RoPE's angles with rows and columns swapped: the first quarter of the pairs turned by the column index."""
    angles = REAL_ROPE_ANGLES(height, width, channels, device)
    half = angles.shape[-1] // 2
    return torch.cat([angles[:, half:], angles[:, :half]], dim=-1)


REAL_ROPE_ANGLES = rope.rope_angles


@pytest.mark.parametrize('attn_impl', ['plain', 'fast'])
def test_a_rope_row_column_swap_fails_the_comparison(attn_impl, monkeypatch):
    """Guards the comparison itself: with RoPE's rows and columns swapped in the shared RoPE code, neither path
    matches the fixture (a swap both paths share passes every test that only compares them with each other)."""
    for cache in (rope_tables, functional_block.cached_rope_tables):
        cache.cache_clear()
    monkeypatch.setattr(rope, 'rope_angles', _swapped_rope_angles)
    try:
        outputs, _ = run_case('tiny_67x93', torch.float32, attn_impl)
    finally:
        for cache in (rope_tables, functional_block.cached_rope_tables):
            cache.cache_clear()
    assert max_relative_error(outputs[0], REFERENCE['tiny_67x93']['outputs'][0]) > 1e-4


def test_reference_weights_change_the_output():
    """Guards the comparison itself: a model with other weights must not match the fixture."""
    model = MLLA('tiny', drop_path_rate=0.).eval()
    outputs = model(reference_input('tiny_67x93'))
    assert max_relative_error(outputs[0], REFERENCE['tiny_67x93']['outputs'][0]) > 1e-2


@pytest.mark.parametrize('batch', [1, 2])
def test_input_gradient_matches_finite_differences(batch):
    """float64, odd and non-square sizes, eval-mode BatchNorm (the layout that torch's CPU kernel gets wrong)."""
    torch.manual_seed(0)
    model = MLLA(dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]), drop_path_rate=0.)
    fill_reference_weights(model)
    model = model.double().eval()
    x0 = torch.randn(batch, 3, 21, 30, dtype=torch.float64)
    x = x0.clone().requires_grad_(True)
    reference_loss(model(x)).backward()
    loss_at = lambda inp: float(reference_loss(model(inp)))  # noqa: E731
    eps = 1e-6
    with torch.no_grad():
        for idx in [(0, 0, 0, 0), (0, 1, 20, 29), (batch - 1, 2, 10, 17)]:
            plus, minus = x0.clone(), x0.clone()
            plus[idx] += eps
            minus[idx] -= eps
            numeric = (loss_at(plus) - loss_at(minus)) / (2 * eps)
            assert abs(float(x.grad[idx]) - numeric) <= 1e-6 * max(1.0, abs(numeric)), idx


def test_rope_tables_are_cached_and_usable_after_inference_mode():
    rope_tables.cache_clear()
    model = MLLA(dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]))
    with torch.inference_mode():
        model(torch.randn(1, 3, 40, 56))
    misses = rope_tables.cache_info().misses
    assert misses == 4  # one table per stage and size
    out = model(torch.randn(1, 3, 40, 56, requires_grad=True))  # tables made under inference mode, now in autograd
    sum(o.sum() for o in out).backward()
    assert rope_tables.cache_info().misses == misses
    assert rope_tables.cache_info().hits >= 4
