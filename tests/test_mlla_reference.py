"""The backbone against the official implementation's numbers, and its gradients against finite differences."""
from pathlib import Path

import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models.layers import rope_tables
from reference_weights import REFERENCE_CASES, fill_reference_weights, reference_input, reference_loss

REFERENCE = torch.load(Path(__file__).parent / 'data' / 'official_reference.pt', weights_only=True)


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


def run_case(case: str, dtype: torch.dtype):
    spec = REFERENCE_CASES[case]
    model = MLLA(spec['arch'], drop_path_rate=0.).eval()
    fill_reference_weights(model)
    model.to(dtype)
    x = reference_input(case).to(dtype).requires_grad_(True)
    outputs = model(x)
    reference_loss(outputs).backward()
    return outputs, x.grad


@pytest.mark.parametrize('case', sorted(REFERENCE_CASES))
@pytest.mark.parametrize('dtype,tolerance', [(torch.float32, 1e-5), (torch.float64, 1e-6)])
def test_outputs_and_input_gradients_match_official(case, dtype, tolerance):
    outputs, input_grad = run_case(case, dtype)
    expected = REFERENCE[case]
    assert [o.shape for o in outputs] == [o.shape for o in expected['outputs']]
    for stage, (out, ref) in enumerate(zip(outputs, expected['outputs'])):
        assert max_relative_error(out, ref) < tolerance, f'stage {stage} output'
    assert max_relative_error(input_grad, expected['input_grad']) < tolerance


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
