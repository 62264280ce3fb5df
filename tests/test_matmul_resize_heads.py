"""The matmul-resize segmentation heads: ``bilinear_resize`` is ``F.interpolate``'s bilinear mode (values and
gradients), and MatmulResizeUPerHead / MatmulResizeFCNHead give mmseg's UPerHead / FCNHead losses, accuracy and
gradients from the same weights."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmseg')

from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import mlla_mm  # noqa: E402,F401  registers the heads
from mlla_mm.models.decode_heads import bilinear_resize, pixel_accuracy  # noqa: E402

SIZES = [((8, 8), (32, 32)), ((7, 5), (30, 11)), ((32, 32), (512, 512)), ((16, 12), (8, 5)), ((1, 1), (4, 4)),
         ((5, 9), (5, 9)), ((6, 6), (1, 1)), ((3, 17), (40, 2))]


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('in_size,out_size', SIZES)
def test_bilinear_resize_matches_interpolate(in_size, out_size, align_corners):
    x = torch.randn(2, 3, *in_size, dtype=torch.float64, requires_grad=True)
    expected = F.interpolate(x, out_size, mode='bilinear', align_corners=align_corners)
    got = bilinear_resize(x, out_size, align_corners)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    grad_out = torch.randn_like(expected)
    (expected_grad, ), (got_grad, ) = (torch.autograd.grad(y, x, grad_out) for y in (expected, got))
    torch.testing.assert_close(got_grad, expected_grad, rtol=0, atol=1e-11)


def test_bilinear_resize_runs_in_autocast_precision():
    x = torch.randn(1, 2, 4, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = bilinear_resize(x, (8, 8))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), F.interpolate(x, (8, 8), mode='bilinear'), rtol=2e-2, atol=2e-2)


def test_matrices_cached_in_inference_mode_serve_training():
    """The matrices are cached; the first call under torch.inference_mode() must not make later backwards fail."""
    with torch.inference_mode():
        bilinear_resize(torch.randn(1, 2, 3, 5), (13, 11))
    x = torch.randn(1, 2, 3, 5, requires_grad=True)
    bilinear_resize(x, (13, 11)).sum().backward()
    torch.testing.assert_close(x.grad, torch.autograd.grad(
        F.interpolate(x, (13, 11), mode='bilinear').sum(), x)[0])


def test_bilinear_resize_names_a_bad_shape():
    with pytest.raises(ValueError, match=r'\(N, C, H, W\).*\(3, 4, 4\)'):
        bilinear_resize(torch.randn(3, 4, 4), (8, 8))


def test_pixel_accuracy_counts_labelled_pixels_only():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 1.0  # class 2 everywhere
    labels = torch.tensor([[[2, 0], [255, 2]]])
    assert pixel_accuracy(logits, labels, ignore_index=255).item() == pytest.approx(200 / 3)
    assert pixel_accuracy(logits, torch.full((1, 2, 2), 255), ignore_index=255).item() == pytest.approx(100.0)


def _samples(batch, size, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        labels = torch.randint(0, classes, (1, *size), generator=generator)
        labels[:, :size[0] // 8] = 255  # an ignored band
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return samples


HEADS = {
    'UPerHead': dict(in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6), channels=16),
    'FCNHead': dict(in_channels=32, in_index=2, channels=16, num_convs=1, concat_input=False),
}


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('head', sorted(HEADS))
def test_heads_match_mmseg(head, align_corners):
    torch.manual_seed(0)
    loss_decode = [dict(type='CrossEntropyLoss', loss_weight=1.0), dict(type='CrossEntropyLoss', loss_weight=0.5),
                   dict(type='DiceLoss', loss_weight=0.3)]  # two with one name: their values add up
    cfg = dict(type=head, num_classes=5, dropout_ratio=0.0, norm_cfg=dict(type='BN'), align_corners=align_corners,
               loss_decode=loss_decode, **HEADS[head])
    reference, matmul = MODELS.build(cfg), MODELS.build(dict(cfg, type=f'MatmulResize{head}'))
    assert type(matmul).__name__ == f'MatmulResize{head}'
    matmul.load_state_dict(reference.state_dict())  # same keys, so checkpoints of either load in the other
    feats = [torch.randn(2, c, 36 // 2**i, 28 // 2**i, requires_grad=True) for i, c in enumerate([8, 16, 32, 64])]
    samples = _samples(2, (141, 110), 5, seed=1)  # not a multiple of any level's size
    losses = [model.loss(feats, samples, None) for model in (reference, matmul)]
    assert sorted(losses[0]) == sorted(losses[1]) == ['acc_seg', 'loss_ce', 'loss_dice']
    for key in losses[0]:
        torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-5, atol=1e-6)
    grads = [torch.autograd.grad(loss['loss_ce'] + loss['loss_dice'], [f for f in feats if f.requires_grad],
                                 allow_unused=True) for loss in losses]
    for expected, got in zip(*grads):
        assert (expected is None) == (got is None)
        if expected is not None:
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
