"""MatmulResizeUPerHead and MatmulResizeFCNHead on a GPU under fp16 autocast, as the UperNet configs train: losses,
accuracy and the gradients reaching the backbone's features agree with mmseg's UPerHead and FCNHead."""
import pytest
import torch

pytest.importorskip('mmseg')

from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import mlla_mm  # noqa: E402,F401  registers the heads

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')

WIDTHS = [64, 128, 256, 512]  # MLLA-T's stages
HEADS = {
    'UPerHead': dict(in_channels=WIDTHS, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6), channels=128),
    'FCNHead': dict(in_channels=WIDTHS[2], in_index=2, channels=64, num_convs=1, concat_input=False),
}


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


@pytest.mark.parametrize('head', sorted(HEADS))
def test_heads_match_mmseg_under_fp16_autocast(head):
    torch.manual_seed(0)
    cfg = dict(type=head, num_classes=150, dropout_ratio=0.0, norm_cfg=dict(type='BN'), align_corners=False,
               loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0), **HEADS[head])
    reference = MODELS.build(cfg).cuda()
    matmul = MODELS.build(dict(cfg, type=f'MatmulResize{head}')).cuda()
    matmul.load_state_dict(reference.state_dict())
    size = (256, 320)
    feats = [torch.randn(2, c, size[0] // 4 // 2**i, size[1] // 4 // 2**i, device='cuda', requires_grad=True)
             for i, c in enumerate(WIDTHS)]
    generator = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(2):
        labels = torch.randint(0, 150, (1, *size), generator=generator)
        labels[:, :16] = 255
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample.cuda())

    def run(model, autocast):
        with torch.autocast('cuda', dtype=torch.float16, enabled=autocast):
            losses = model.loss(feats, samples, None)
        # scaled as mmengine's AmpOptimWrapper (a GradScaler) scales it, from its initial 2^16: unscaled, the
        # per-pixel gradients of a mean over 2 x 256 x 320 pixels and 150 classes fall in fp16's subnormal range,
        # where the fp16 backward of the matrix products keeps few of their bits (see MatmulResizeUPerHead)
        scale = 2.**16 if autocast else 1.0
        grads = torch.autograd.grad(losses['loss_ce'] * scale, feats, allow_unused=True)
        return losses, [g / scale for g in grads if g is not None]

    exact_losses, exact_grads = run(reference, autocast=False)  # fp32 throughout: the yardstick
    ref_losses, ref_grads = run(reference, autocast=True)
    got_losses, got_grads = run(matmul, autocast=True)
    assert len(got_grads) == len(ref_grads) == (4 if head == 'UPerHead' else 1)
    # fp16 rounds differently in the two (F.interpolate computes in fp32 and rounds its output; the forward's matrix
    # products round their fp16 operands and their intermediate product): the matmul heads must be about as close
    # to fp32 as mmseg's own heads are, in the loss and in every gradient reaching the features
    loss_error = [abs(losses['loss_ce'].item() - exact_losses['loss_ce'].item())
                  for losses in (ref_losses, got_losses)]
    assert loss_error[1] <= 2 * loss_error[0] + 1e-3 * exact_losses['loss_ce'].item(), loss_error
    assert abs(got_losses['acc_seg'].item() - ref_losses['acc_seg'].item()) < 0.05  # percent; ties may differ
    for exact, ref, got in zip(exact_grads, ref_grads, got_grads):
        assert torch.isfinite(got).all()
        errors = (_relative_error(ref, exact), _relative_error(got, exact))
        assert errors[1] <= 2 * errors[0] + 1e-3, errors
