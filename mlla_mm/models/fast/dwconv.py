"""The 3x3 depthwise convolution of ``(B, H*W, C)`` tokens as one opaque operator, for the compiled fast path.

Why an operator of its own: ``torch.compile`` specialises a convolution on its ``groups``, which for a depthwise
convolution is the channel count, so the compiled MLLA block would be compiled again for every stage width.
Behind ``torch.library.custom_op`` (forward and backward) the compiler sees a black box whose output has the
input's shape, and one compiled graph serves every width.

The operator runs on the channels-last view of the tokens (no copies) in the dtype of its inputs. Autocast is
applied here, outside the operator, exactly as it would be to ``F.conv2d``: inputs cast to the autocast dtype,
gradients cast back by autograd.

The bias is added outside the operator too, where the compiler sees it. Why: cuDNN convolves without it and then
adds it in a separate pass over the whole output, and its gradient is another pass (a sum over the tokens).
Outside the operator, the add fuses into the elementwise kernel that follows (a residual add, a SiLU) and the bias
gradient into a fused reduction.

With ``use_triton`` (and Triton installed), the operator runs the kernels of :mod:`.triton_dwconv` on CUDA
(forward, input and weight gradients), which stay close to memory bandwidth where cuDNN's depthwise kernels do
not, and which serve every image size at once, where cuDNN sets each depthwise convolution up again (for a large
part of a second) at every new shape. Otherwise, and on the CPU, it is ``F.conv2d``; should the kernels fail to build
or run, it warns once and is ``F.conv2d`` from then on (:func:`.triton_dwconv.give_up`). The patch merging's
stride-2 convolution takes the same operator (:func:`dwconv3x3_stride2_tokens`).

Run uncompiled on CUDA, the Triton kernels are called through an autograd function instead (:class:`_EagerTriton`):
eager steps are bound by launching kernels, and around the operator each convolution also launches the casts of
its weights to the autocast dtype, the bias add and the bias gradient's reduction, and pays the operator's
dispatch. The function is one kernel forward (bias included, float32 weights read as they are) and four backward
(the input gradient, the weight and bias partial sums, their total, the weight gradient's transpose).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import triton_dwconv
from ..layers.layout import image_to_tokens, tokens_to_image


def _triton_for(x: torch.Tensor, use_triton: bool) -> bool:
    return use_triton and triton_dwconv.available() and triton_dwconv.fits(x)


def _dwconv3x3_default(x, weight, height, width):
    out = F.conv2d(tokens_to_image(x, (height, width)), weight, None, padding=1, groups=x.shape[-1])
    return image_to_tokens(out).contiguous()


@torch.library.custom_op('mlla_mm::dwconv3x3_tokens', mutates_args=())
def _dwconv3x3(x: torch.Tensor, weight: torch.Tensor, height: int, width: int, use_triton: bool) -> torch.Tensor:
    """The convolution without its bias (see the module's docstring)."""
    return _dwconv3x3_default(x, weight, height, width)


def _triton_or_default(x: torch.Tensor, use_triton: bool, with_triton, default):
    """``with_triton()`` where the Triton kernels run for ``x``, else ``default()``; should the kernels fail to build
    or run, they are given up (:func:`.triton_dwconv.give_up`) and ``default()`` runs."""
    out = _try_triton(with_triton) if _triton_for(x, use_triton) else None
    return default() if out is None else out


def _dwconv3x3_cuda(x, weight, height, width, use_triton):
    return _triton_or_default(x, use_triton, lambda: triton_dwconv.dwconv3x3(x, weight, None, height, width),
                              lambda: _dwconv3x3_default(x, weight, height, width))


_dwconv3x3.register_kernel('cuda')(_dwconv3x3_cuda)


@_dwconv3x3.register_fake
def _(x, weight, height, width, use_triton):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _dwconv3x3_backward_default(grad, x, weight, height, width):
    channels = x.shape[-1]
    grad_image = tokens_to_image(grad.contiguous(), (height, width))
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_image, tokens_to_image(x, (height, width)), weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0],
        channels, [True, True, False])
    return image_to_tokens(grad_x).contiguous(), grad_weight


@torch.library.custom_op('mlla_mm::dwconv3x3_tokens_backward', mutates_args=())
def _dwconv3x3_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, height: int, width: int,
                        use_triton: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    return _dwconv3x3_backward_default(grad, x, weight, height, width)


def _dwconv3x3_backward_cuda(grad, x, weight, height, width, use_triton):
    def with_triton():
        contiguous = grad.contiguous()
        grad_x = triton_dwconv.dwconv3x3(contiguous, weight, None, height, width, mirror=True)
        grad_weight, _ = triton_dwconv.dwconv3x3_weight_grad(contiguous, x, height, width)
        return grad_x, grad_weight.to(weight.dtype)
    return _triton_or_default(x, use_triton, with_triton,
                              lambda: _dwconv3x3_backward_default(grad, x, weight, height, width))


_dwconv3x3_backward.register_kernel('cuda')(_dwconv3x3_backward_cuda)


@_dwconv3x3_backward.register_fake
def _(grad, x, weight, height, width, use_triton):
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    x, weight, height, width, use_triton = inputs
    ctx.save_for_backward(x, weight)
    ctx.hw_shape = (height, width)
    ctx.use_triton = use_triton


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x, grad_weight = _dwconv3x3_backward(grad, x, weight, *ctx.hw_shape, ctx.use_triton)
    return grad_x, grad_weight, None, None, None


_dwconv3x3.register_autograd(_backward, setup_context=_setup_context)


class _EagerTriton(torch.autograd.Function):
    """``conv(x) + bias`` through the Triton kernels, outside ``torch.compile``. The output is in ``out_dtype`` (the
    autocast dtype, as ``F.conv2d`` under autocast returns); the input, weight and bias are read in their own dtypes
    and the gradients returned in them. Should the kernels fail to build or run, they are given up
    (:func:`.triton_dwconv.give_up`) and cuDNN convolves, inside the function: what it saves for the backward stays
    the same, as a recomputing checkpoint requires."""

    @staticmethod
    def forward(ctx, x, weight, bias, height, width, out_dtype):
        ctx.save_for_backward(x, weight)
        ctx.hw_shape, ctx.bias_dtype = (height, width), bias.dtype
        out = _try_triton(lambda: triton_dwconv.dwconv3x3(x, weight, bias, height, width, out_dtype=out_dtype))
        if out is None:
            out = _dwconv3x3_default(x.to(out_dtype), weight.to(out_dtype), height, width) + bias.to(out_dtype)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        height, width = ctx.hw_shape
        grad = grad.contiguous()

        def with_triton():
            grad_x = triton_dwconv.dwconv3x3(grad, weight, None, height, width, mirror=True, out_dtype=x.dtype)
            sums = triton_dwconv.weight_and_bias_grad_sums(grad, x, height, width)  # (10, C): 9 taps, then bias
            return grad_x, sums[:9].t().reshape(weight.shape), sums[9]

        grads = _try_triton(with_triton)
        if grads is None:
            grad_x, grad_weight = _dwconv3x3_backward_default(grad.to(x.dtype), x, weight.to(x.dtype), height, width)
            grads = grad_x, grad_weight, grad.sum(dim=(0, 1), dtype=torch.promote_types(grad.dtype, torch.float32))
        grad_x, grad_weight, grad_bias = grads
        return grad_x, grad_weight.to(weight.dtype), grad_bias.to(ctx.bias_dtype), None, None, None


def _try_triton(launch):
    """``launch()`` while the Triton kernels are available; None if they are not, or fail now (then given up)."""
    if not triton_dwconv.available():
        return None
    try:
        return launch()
    except torch.OutOfMemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - kernels that do not build or run: cuDNN instead
        triton_dwconv.give_up(error)
        return None


def _eager_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, height: int, width: int,
                  use_triton: bool) -> Optional[torch.Tensor]:
    """:class:`_EagerTriton` on ``x`` where it applies: CUDA tokens outside ``torch.compile``, ``use_triton``, Triton
    installed (even if its kernels were given up since: a checkpoint's recomputation must take the same function),
    and sizes the kernels index. None elsewhere: the caller then takes the operator."""
    if not (use_triton and x.is_cuda and triton_dwconv.triton is not None and triton_dwconv.fits(x)
            and not torch.compiler.is_compiling()):
        return None
    device = x.device.type
    out_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    return _EagerTriton.apply(x.contiguous(), weight, bias, height, width, out_dtype)


def _autocast_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
    """The inputs in autocast's dtype where autocast is on (as it casts the inputs of ``F.conv2d``), else the weights
    in the tokens' dtype."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        return x.to(dtype), weight.to(dtype), bias.to(dtype)
    return x, weight.to(x.dtype), bias.to(x.dtype)


def dwconv3x3_tokens(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, height: int, width: int,
                     use_triton: bool = False) -> torch.Tensor:
    """3x3 depthwise convolution (padding 1, ``weight`` ``(C, 1, 3, 3)``) of ``(B, H*W, C)`` tokens -> same shape.

    ``use_triton``: on CUDA, this project's Triton kernels instead of cuDNN. Under autocast the result is in its
    dtype, as ``F.conv2d``'s: the operator's inputs are cast to it first, the eager kernels read them as they are.
    """
    out = _eager_triton(x, weight, bias, height, width, use_triton)
    if out is not None:
        return out
    x, weight, bias = _autocast_inputs(x, weight, bias)
    return _dwconv3x3(x.contiguous(), weight, height, width, use_triton) + bias


def dwconv3x3_stride2_tokens(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, height: int, width: int,
                             use_triton: bool = False) -> torch.Tensor:
    """3x3 depthwise convolution with stride 2 (padding 1) of ``(B, H*W, C)`` tokens on an even ``H x W`` grid ->
    a ``(B, C, H/2, W/2)`` image with the channels innermost (uncompiled on CUDA, a strided view of the stride-1
    output), as the patch merging's convolution computes it.

    The stride-1 convolution's outputs at even rows and columns, which are exactly the stride-2 outputs: it does
    four times the arithmetic, but runs the same kernels as the blocks, which a new image size does not make set up
    again (cuDNN's depthwise convolutions are set up anew for every new shape).
    """
    if height % 2 or width % 2:
        raise ValueError(f'dwconv3x3_stride2_tokens: the grid must have even sides, got {height}x{width}')
    full = _eager_triton(x, weight, bias, height, width, use_triton)  # bias included
    if full is not None:
        return full.view(x.shape[0], height, width, x.shape[-1])[:, ::2, ::2].permute(0, 3, 1, 2)
    x, weight, bias = _autocast_inputs(x, weight, bias)
    full = _dwconv3x3(x.contiguous(), weight, height, width, use_triton)
    strided = full.view(x.shape[0], height, width, x.shape[-1])[:, ::2, ::2] + bias
    return strided.permute(0, 3, 1, 2)
