"""Uncompiled forwards replayed as CUDA graphs (``fast_cfg['uncompiled_inference_graphs']``) against the same
forwards run eagerly, on CUDA (skipped without a GPU).

A replay runs the kernels the eager forward runs, so the two agree to 1e-3; a stale input, or outputs rewritten by a
later replay of another graph in the shared memory pool, would be far off.
"""
import pytest
import torch

from mlla_mm import MLLA
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import inference_graphs
from replay_checks import ARCH, rel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_replayed_forwards_match_eager_forwards(precision):
    """Two sizes captured at their third meeting, replayed in turn with new images (a third size met once runs
    eagerly); outputs of an earlier replay stay as they were through later replays."""
    compiling.reset()
    torch.manual_seed(0)
    graphed = MLLA(ARCH, attn_impl='auto', fast_cfg=dict(strict=True)).cuda().eval()
    eager = MLLA(ARCH, attn_impl='auto', fast_cfg=dict(strict=True, uncompiled_inference_graphs=0)).cuda().eval()
    eager.load_state_dict(graphed.state_dict())
    sizes = [(128, 160)] * 3 + [(96, 224)] * 3 + [(128, 160), (96, 224), (160, 96), (128, 160), (96, 224)]
    kept = None
    for i, size in enumerate(sizes):
        x = torch.randn(1, 3, *size, device='cuda')
        with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16, enabled=precision == 'fp16'):
            outs, expected = graphed(x), eager(x)
        assert all(rel(a, b) < 1e-3 for a, b in zip(outs, expected)), (i, size)
        if i == 2:
            kept = (outs, [e.clone() for e in expected])
    assert all(rel(a, b) < 1e-3 for a, b in zip(*kept)), 'a later replay rewrote earlier outputs'
    assert len(inference_graphs._GRAPHS[graphed].graphs) == 2
    assert eager not in inference_graphs._GRAPHS


def test_a_failed_capture_warns_and_the_forwards_run_on_eagerly(captures_fail):
    """A recording that CUDA ends in an error (a host synchronisation while capturing): a warning, then eager
    forwards that match the eager model's, and random draws on the device still work."""
    compiling.reset()
    torch.manual_seed(0)
    graphed = MLLA(ARCH, attn_impl='auto').cuda().eval()
    eager = MLLA(ARCH, attn_impl='auto', fast_cfg=dict(uncompiled_inference_graphs=0)).cuda().eval()
    eager.load_state_dict(graphed.state_dict())
    with pytest.warns(UserWarning, match='capturing an uncompiled forward as a CUDA graph failed'):
        for _ in range(3):  # the capture is tried at the third
            with torch.no_grad():
                graphed(torch.randn(1, 3, 128, 160, device='cuda'))
    for _ in range(2):
        x = torch.randn(1, 3, 128, 160, device='cuda')
        with torch.no_grad():
            outs, expected = graphed(x), eager(x)
        assert all(rel(a, b) < 1e-3 for a, b in zip(outs, expected))
    assert 'inference-graphs' in compiling.FAILED
