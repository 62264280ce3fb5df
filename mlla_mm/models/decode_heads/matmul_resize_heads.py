"""mmseg's UPerHead and FCNHead with their training-time bilinear resizes done as matrix products.

Same modules, same parameters and state-dict keys, same losses (up to rounding); what changes is how the logits
reach the label's size in the loss, how the FPN's levels reach each other's, and how the logged pixel accuracy is
found. On an H200, in Swin-T's UperNet train step at 8 x 512 x 512 (fp16 AMP, 185 ms), the atomic-add backward of
those resizes took 66 ms and the accuracy's ``topk`` over the 150 classes 32 ms
(``benchmarks/h200_2026-11-28_heads/``); ``matmul_resize`` says why the first is slow.

Under fp16 autocast, scale the loss, as mmengine's ``AmpOptimWrapper`` does (``--amp``). The products' backward
runs in fp16, and an unscaled mean loss over 512 x 512 pixels and 150 classes gives each logit a gradient in
fp16's subnormal range, where few bits are left: on an H200 the features' gradients through FCNHead were then
47% off their float32 values, against 1.6% with mmseg's head, and scaled by 2^16, 0.07% against 0.06% (UPerHead:
up to 50% against 10% unscaled, 3.6% against 3.1% scaled). bf16 and float32 are unaffected. Measured and not
taken: a float32 backward alone left FCNHead's 47% (the loss's gradient arrives in fp16); a float32 output and
backward, as ``F.interpolate`` gives under autocast, matched mmseg's heads unscaled but cost MLLA-T's UperNet step
7-9 ms of its 60 (``benchmarks/h200_2026-11-28_tests/``).
"""
from typing import Dict, List

import torch
from mmseg.models.decode_heads import FCNHead, UPerHead
from mmseg.registry import MODELS
from torch import Tensor, nn

from .matmul_resize import bilinear_resize


def pixel_accuracy(logits: Tensor, labels: Tensor, ignore_index: int) -> Tensor:
    """Percentage of the labelled pixels whose highest logit is their label, as mmseg's ``accuracy`` with top-1
    (with its epsilon), by an ``argmax``: ``topk`` over the class axis of (N, C, H, W) logits reads it strided."""
    with torch.no_grad():
        labelled = labels != ignore_index
        correct = (logits.argmax(dim=1) == labels) & labelled
        eps = torch.finfo(torch.float32).eps
        return (correct.sum().float() + eps).mul(100.0).div(labelled.sum().float() + eps).reshape(1)


class MatmulResizeLossMixin:
    """``loss_by_feat`` of mmseg's ``BaseDecodeHead``, with the logits resized by :func:`bilinear_resize` and the
    accuracy by :func:`pixel_accuracy`. Written out rather than calling mmseg's: it computes ``acc_seg`` with
    ``topk`` inside, whatever the logits' size."""

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: List) -> Dict[str, Tensor]:
        labels = self._stack_batch_gt(batch_data_samples)  # (N, 1, H, W)
        seg_logits = bilinear_resize(seg_logits, labels.shape[2:], self.align_corners)
        weight = None if self.sampler is None else self.sampler.sample(seg_logits, labels)
        labels = labels.squeeze(1)
        losses = {}
        loss_modules = self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]
        for loss_module in loss_modules:  # several with one name add up, as in mmseg
            value = loss_module(seg_logits, labels, weight=weight, ignore_index=self.ignore_index)
            name = loss_module.loss_name
            losses[name] = losses[name] + value if name in losses else value
        losses['acc_seg'] = pixel_accuracy(seg_logits, labels, self.ignore_index)
        return losses


@MODELS.register_module()
class MatmulResizeFCNHead(MatmulResizeLossMixin, FCNHead):
    """``FCNHead`` (UperNet's auxiliary head) whose loss resizes its logits as matrix products."""


@MODELS.register_module()
class MatmulResizeUPerHead(MatmulResizeLossMixin, UPerHead):
    """``UPerHead`` whose loss and top-down FPN resize as matrix products (the pooling pyramid's resizes, of
    1 x 1 to 6 x 6 maps, stay ``F.interpolate``'s)."""

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        inputs = self._transform_inputs(inputs)
        levels = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        levels.append(self.psp_forward(inputs))  # the coarsest level: the pooling pyramid on the last input
        # top-down: each level adds the coarser one, upsampled to it (the coarser one first updated itself)
        for fine in range(len(levels) - 2, -1, -1):
            coarse = levels[fine + 1]
            levels[fine] = levels[fine] + bilinear_resize(coarse, levels[fine].shape[2:], self.align_corners)
        outputs = [conv(level) for conv, level in zip(self.fpn_convs, levels[:-1])] + [levels[-1]]
        finest = outputs[0].shape[2:]
        outputs = [outputs[0]] + [bilinear_resize(out, finest, self.align_corners) for out in outputs[1:]]
        return self.fpn_bottleneck(torch.cat(outputs, dim=1))
