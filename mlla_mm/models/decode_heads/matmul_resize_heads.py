"""mmseg's UPerHead and FCNHead with their training-time bilinear resizes done as matrix products.

Same modules, same parameters and state-dict keys, same losses (up to rounding); what changes is how the logits
reach the label's size in the loss, how the FPN's levels reach each other's, and how the logged pixel accuracy is
found. Why: on a GPU the atomic-add backward of those resizes (``matmul_resize`` says why it is slow) and the
accuracy's ``topk`` over the 150 classes took a large part of the train step (docs: speed).

Under fp16 autocast, scale the loss, as mmengine's ``AmpOptimWrapper`` does (``--amp``). The products' backward
runs in fp16, and an unscaled mean loss over 512 x 512 pixels and 150 classes gives each logit a gradient in
fp16's subnormal range, where few bits are left, so the features' gradients lose most of their precision; scaled,
they are as accurate as with mmseg's heads. bf16 and float32 are unaffected. The output stays fp16: a float32
output and backward, as ``F.interpolate`` gives under autocast, would not need the scaling but costs time.
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
