"""Triton kernels for the 3x3 depthwise convolution of ``(B, H*W, C)`` tokens (stride 1, zero padding 1).

Why kernels of our own: an MLLA-T block runs four such convolutions (two CPEs, the ``dwc`` before the attention and
the LePE), 72 in the backbone. On channels-last tokens PyTorch hands them to cuDNN or to its generic depthwise
kernels, which stay far from the card's memory bandwidth, above all in the backward. A 3x3 depthwise convolution is pure
memory traffic (9 multiply-adds per value read), so a kernel that reads each tile once, coalesced along the
channels, is all it needs.

Two kernels, each on a strip of ``BLOCK_W`` pixels of an image row x ``BLOCK_C`` channels (one contiguous piece of
memory, since channels are innermost) that slides down ``ROWS`` rows, so that every input row is read once per
strip (three column shifts, mostly cache hits) instead of once per tap:

- :func:`_dwconv3x3_kernel`: ``out = conv(x) (+ bias)``, float32 accumulation. The input gradient is the same
  kernel on the output gradient with the taps mirrored (a stride-1 convolution's transpose).
- :func:`_dwconv3x3_weight_grad_kernel`: the weight and bias gradients. Each program sums ``grad * shifted x``
  over its strip into float32 partials (9 taps and the bias per channel); the partials are summed afterwards
  (deterministic, unlike atomics).

Tested against ``F.conv2d`` on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``,
tests/test_triton_dwconv.py) and on the GPU (tests/gpu).
"""
import warnings
from typing import List, Optional, Tuple

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU-only install: the fast path then uses F.conv2d
    triton = None

# Tiles of BLOCK_W pixels of one image row x BLOCK_C channels (contiguous in memory: the pixels of a row are
# adjacent and channels are innermost), slid down ROWS rows per program.
BLOCK_W = 16
BLOCK_C = 64
ROWS = 8
NUM_WARPS = 4
NUM_STAGES = None  # Triton's default software pipelining
# Image sizes are not specialised on (Triton would compile a kernel again when a side turns divisible by 16):
# a detection job meets many sizes, and each compile would cost its first step seconds.
_SHAPE_ARGS = ['height', 'width', 'col_blocks']


# Why the kernels were given up in this process, if they were (:func:`give_up`)
GIVEN_UP: List[str] = []


def available() -> bool:
    """Triton is installed, and its kernels have not failed to build or run in this process."""
    return triton is not None and not GIVEN_UP


def give_up(error: Exception) -> None:
    """After a failure to build or launch the kernels (a Triton that imports may still lack, e.g., a C compiler for
    its launcher): warn once; from now on :func:`available` is False and cuDNN's convolutions run instead."""
    if not GIVEN_UP:
        warnings.warn(f'mlla_mm: the Triton depthwise-convolution kernels failed ({type(error).__name__}: {error}); '
                      "cuDNN's convolutions run instead from now on")
    GIVEN_UP.append(f'{type(error).__name__}: {error}')


if triton is not None:

    @triton.jit
    def _tap(weight_ptr, channel, channel_ok, tap: tl.constexpr, MIRROR: tl.constexpr):
        # The input gradient of a stride-1 convolution is the convolution with the taps mirrored.
        if MIRROR:
            index = 8 - tap
        else:
            index = tap
        return tl.load(weight_ptr + channel * 9 + index, mask=channel_ok, other=0.0).to(tl.float32)[None, :]

    @triton.jit
    def _load_row(base_ptr, row, col, channel, height, width, channels, channel_ok, shift: tl.constexpr):
        """Row ``row`` of one image at columns ``col + shift``, zero outside the image, in float32."""
        src_col = col + shift
        ok = (row >= 0) & (row < height) & (src_col >= 0) & (src_col < width)
        ptr = base_ptr + (row * width + src_col)[:, None] * channels + channel[None, :]
        return tl.load(ptr, mask=ok[:, None] & channel_ok[None, :], other=0.0).to(tl.float32)

    @triton.jit(do_not_specialize=_SHAPE_ARGS)
    def _dwconv3x3_kernel(x_ptr, weight_ptr, bias_ptr, out_ptr, height, width, channels, col_blocks,
                          HAS_BIAS: tl.constexpr, MIRROR: tl.constexpr, BLOCK_W: tl.constexpr,
                          BLOCK_C: tl.constexpr, ROWS: tl.constexpr):
        image = tl.program_id(0) // col_blocks
        col = (tl.program_id(0) % col_blocks) * BLOCK_W + tl.arange(0, BLOCK_W)
        channel = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        first_row = tl.program_id(2) * ROWS
        channel_ok = channel < channels
        col_ok = col < width
        image_offset = image * height * width * channels
        x_base = x_ptr + image_offset
        w00 = _tap(weight_ptr, channel, channel_ok, 0, MIRROR)
        w01 = _tap(weight_ptr, channel, channel_ok, 1, MIRROR)
        w02 = _tap(weight_ptr, channel, channel_ok, 2, MIRROR)
        w10 = _tap(weight_ptr, channel, channel_ok, 3, MIRROR)
        w11 = _tap(weight_ptr, channel, channel_ok, 4, MIRROR)
        w12 = _tap(weight_ptr, channel, channel_ok, 5, MIRROR)
        w20 = _tap(weight_ptr, channel, channel_ok, 6, MIRROR)
        w21 = _tap(weight_ptr, channel, channel_ok, 7, MIRROR)
        w22 = _tap(weight_ptr, channel, channel_ok, 8, MIRROR)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + channel, mask=channel_ok, other=0.0).to(tl.float32)[None, :]
        else:
            bias = tl.zeros((1, BLOCK_C), dtype=tl.float32)
        # Each input row is read once (three column shifts, mostly cache hits) and feeds three output rows:
        # the one above (bottom taps), its own (middle taps), the one below (top taps). Two partial output rows
        # are carried down the loop.
        above = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)  # output row `row - 1`, still missing its bottom taps
        same = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)  # output row `row`, missing its middle and bottom taps
        for i in range(0, ROWS + 2):
            row = first_row - 1 + i
            left = _load_row(x_base, row, col, channel, height, width, channels, channel_ok, -1)
            centre = _load_row(x_base, row, col, channel, height, width, channels, channel_ok, 0)
            right = _load_row(x_base, row, col, channel, height, width, channels, channel_ok, 1)
            done = above + left * w20 + centre * w21 + right * w22 + bias
            out_row = row - 1
            store_ok = (i >= 2) & (out_row < height)
            tl.store(out_ptr + image_offset + (out_row * width + col)[:, None] * channels + channel[None, :],
                     done.to(out_ptr.dtype.element_ty), mask=store_ok & col_ok[:, None] & channel_ok[None, :])
            above = same + left * w10 + centre * w11 + right * w12
            same = left * w00 + centre * w01 + right * w02

    @triton.jit(do_not_specialize=_SHAPE_ARGS)
    def _dwconv3x3_weight_grad_kernel(grad_ptr, x_ptr, partial_ptr, height, width, channels, col_blocks,
                                      BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr, ROWS: tl.constexpr):
        image = tl.program_id(0) // col_blocks
        col = (tl.program_id(0) % col_blocks) * BLOCK_W + tl.arange(0, BLOCK_W)
        channel = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        first_row = tl.program_id(2) * ROWS
        channel_ok = channel < channels
        image_offset = image * height * width * channels
        x_base = x_ptr + image_offset
        grad_base = grad_ptr + image_offset
        # This program owns the output rows first_row .. first_row + ROWS - 1: their gradient rows slide down
        # beside the input rows, each input row pairing with the gradient rows below, level and above it.
        # Every loop-carried value starts as a tensor of its own: Triton (3.6) decides which names the loop
        # carries by object identity, so a name bound to the same initial tensor as another and then assigned that
        # other's value (g_above = g_same) would look unchanged and be dropped from the loop (compiled, the bottom
        # taps' gradients then come out zero, while Triton's interpreter, plain Python, is right).
        g_above = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)  # gradient of output row `row - 1`
        g_same = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)  # gradient of output row `row`
        a00 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a01 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a02 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a10 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a11 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a12 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a20 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a21 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a22 = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        a_bias = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
        for i in range(0, ROWS + 2):
            row = first_row - 1 + i
            left = _load_row(x_base, row, col, channel, height, width, channels, channel_ok, -1)
            centre = _load_row(x_base, row, col, channel, height, width, channels, channel_ok, 0)
            right = _load_row(x_base, row, col, channel, height, width, channels, channel_ok, 1)
            below_row = row + 1
            g_below = _load_row(grad_base, below_row, col, channel, height, width, channels, channel_ok, 0)
            g_below = tl.where(below_row < first_row + ROWS, g_below, 0.0)  # only the rows this program owns
            # output row r reads input row r + dy - 1 with tap row dy
            a00 += g_below * left
            a01 += g_below * centre
            a02 += g_below * right
            a10 += g_same * left
            a11 += g_same * centre
            a12 += g_same * right
            a20 += g_above * left
            a21 += g_above * centre
            a22 += g_above * right
            a_bias += g_below
            g_above = g_same
            g_same = g_below
        base = partial_ptr + (tl.program_id(0) * tl.num_programs(2) + tl.program_id(2)) * 10 * channels + channel
        tl.store(base + 0 * channels, tl.sum(a00, axis=0), mask=channel_ok)
        tl.store(base + 1 * channels, tl.sum(a01, axis=0), mask=channel_ok)
        tl.store(base + 2 * channels, tl.sum(a02, axis=0), mask=channel_ok)
        tl.store(base + 3 * channels, tl.sum(a10, axis=0), mask=channel_ok)
        tl.store(base + 4 * channels, tl.sum(a11, axis=0), mask=channel_ok)
        tl.store(base + 5 * channels, tl.sum(a12, axis=0), mask=channel_ok)
        tl.store(base + 6 * channels, tl.sum(a20, axis=0), mask=channel_ok)
        tl.store(base + 7 * channels, tl.sum(a21, axis=0), mask=channel_ok)
        tl.store(base + 8 * channels, tl.sum(a22, axis=0), mask=channel_ok)
        tl.store(base + 9 * channels, tl.sum(a_bias, axis=0), mask=channel_ok)


def _check(x: torch.Tensor, weight: torch.Tensor, height: int, width: int) -> None:
    if x.dim() != 3 or x.shape[1] != height * width:
        raise ValueError(f'dwconv3x3: tokens must be (B, H*W, C) with H*W = {height}*{width}, got {tuple(x.shape)}')
    if tuple(weight.shape) != (x.shape[-1], 1, 3, 3):
        raise ValueError(f'dwconv3x3: weight must be ({x.shape[-1]}, 1, 3, 3), got {tuple(weight.shape)}')


def _grid(x: torch.Tensor, height: int, width: int):
    col_blocks = triton.cdiv(width, BLOCK_W)
    return (x.shape[0] * col_blocks, triton.cdiv(x.shape[-1], BLOCK_C), triton.cdiv(height, ROWS)), col_blocks


def _stages():
    return {} if NUM_STAGES is None else {'num_stages': NUM_STAGES}


def fits(x: torch.Tensor) -> bool:
    """The kernels index with 32-bit integers."""
    return x.numel() < 2 ** 31


def dwconv3x3(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], height: int, width: int,
              mirror: bool = False, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``(B, H*W, C)`` tokens -> the same shape, in ``out_dtype`` (default: the tokens' dtype); ``mirror`` convolves
    with the taps mirrored. The weight and bias are read in their own dtype and the sums formed in float32."""
    _check(x, weight, height, width)
    x, weight = x.contiguous(), weight.contiguous()
    out = torch.empty_like(x, dtype=out_dtype)
    if x.numel() == 0:
        return out
    grid, col_blocks = _grid(x, height, width)
    _dwconv3x3_kernel[grid](x, weight, bias if bias is not None else weight, out, height, width, x.shape[-1],
                            col_blocks, HAS_BIAS=bias is not None, MIRROR=mirror, BLOCK_W=BLOCK_W,
                            BLOCK_C=BLOCK_C, ROWS=ROWS, num_warps=NUM_WARPS,
                            **_stages())
    return out


def dwconv3x3_weight_grad(grad: torch.Tensor, x: torch.Tensor, height: int,
                          width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the weight ``(C, 1, 3, 3)`` and bias ``(C,)`` (float32) from the output gradient and input."""
    total = weight_and_bias_grad_sums(grad, x, height, width)
    channels = x.shape[-1]
    # Separate tensors: a custom operator may not return views of one another.
    return total[:9].t().contiguous().view(channels, 1, 3, 3), total[9].clone()


def weight_and_bias_grad_sums(grad: torch.Tensor, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(10, C)`` float32: the gradients of the nine taps of every channel's filter (rows), then of the bias."""
    grad, x = grad.contiguous(), x.contiguous()
    channels = x.shape[-1]
    if x.numel() == 0:
        return x.new_zeros(10, channels, dtype=torch.float32)
    grid, col_blocks = _grid(x, height, width)
    partial = torch.empty(grid[0] * grid[2], 10, channels, device=x.device, dtype=torch.float32)
    _dwconv3x3_weight_grad_kernel[grid](grad, x, partial, height, width, channels, col_blocks, BLOCK_W=BLOCK_W,
                                        BLOCK_C=BLOCK_C, ROWS=ROWS, num_warps=NUM_WARPS,
                                        **_stages())
    return partial.sum(dim=0)
