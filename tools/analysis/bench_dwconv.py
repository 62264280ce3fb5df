"""The 3x3 depthwise convolution of MLLA-T's blocks: Triton kernels against cuDNN, per stage shape.

    python tools/analysis/bench_dwconv.py [--dtype bf16] [--sweep]

Each piece (forward without the bias, which the fast path adds outside the operator; backward = input and weight
gradients) is captured in a CUDA graph and replayed, so the times are GPU time without Python's launch overhead
(which the fast path's CUDA graphs remove too). cuDNN runs on the channels-last view of the tokens, as the fast
path's operator does with MLLA ``fast_cfg=dict(triton_dwconv=False)``.
``--sweep`` also tries other tile sizes of the Triton kernels.
"""
import argparse
import os.path as osp
import statistics
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.models.fast import dwconv, triton_dwconv  # noqa: E402

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
# (batch, H, W, C): MLLA-T's four stages at 2x800x1344, and the first and last at 128x224x224
SHAPES = [(2, 200, 336, 64), (2, 100, 168, 128), (2, 50, 84, 256), (2, 25, 42, 512), (128, 56, 56, 64),
          (128, 7, 7, 512)]


def graph_ms(fn, replays=20):
    """Median GPU milliseconds of ``fn`` replayed from a CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up: Triton's JIT and cuDNN's algorithm choice happen outside the capture
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--dtype', default='bf16', choices=list(DTYPES))
    parser.add_argument('--sweep', action='store_true')
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    print(torch.cuda.get_device_name(), torch.__version__, args.dtype, '(ms of GPU time: forward / backward)')
    configs = [(triton_dwconv.BLOCK_W, triton_dwconv.BLOCK_C, triton_dwconv.ROWS, triton_dwconv.NUM_WARPS)]
    if args.sweep:
        configs += [(32, 64, 8, 4), (16, 32, 8, 4), (16, 64, 16, 4), (8, 64, 8, 2), (32, 32, 8, 4),
                    (16, 128, 8, 8)]
    for b, h, w, c in SHAPES:
        x = torch.randn(b, h * w, c, device='cuda', dtype=dtype)
        grad = torch.randn_like(x)
        weight = torch.randn(c, 1, 3, 3, device='cuda', dtype=dtype)
        nbytes = x.numel() * x.element_size()
        cudnn_f = graph_ms(lambda: dwconv._dwconv3x3_default(x, weight, h, w))
        cudnn_b = graph_ms(lambda: dwconv._dwconv3x3_backward_default(grad, x, weight, h, w))
        row = [f'{str((b, h, w, c)):20s} {nbytes / 2**20:6.1f} MiB  cuDNN {cudnn_f:.3f} / {cudnn_b:.3f}']
        for config in configs:
            triton_dwconv.BLOCK_W, triton_dwconv.BLOCK_C, triton_dwconv.ROWS, triton_dwconv.NUM_WARPS = config
            fwd = graph_ms(lambda: triton_dwconv.dwconv3x3(x, weight, None, h, w))
            bwd = graph_ms(lambda: (triton_dwconv.dwconv3x3(grad, weight, None, h, w, mirror=True),
                                    triton_dwconv.dwconv3x3_weight_grad(grad, x, h, w)))
            row.append(f'triton W{config[0]} C{config[1]} R{config[2]} w{config[3]} {fwd:.3f} / {bwd:.3f} '
                       f'({2 * nbytes / fwd / 1e6:.0f} GB/s fwd)')
        print(' | '.join(row), flush=True)
    triton_dwconv.BLOCK_W, triton_dwconv.BLOCK_C, triton_dwconv.ROWS, triton_dwconv.NUM_WARPS = configs[0]


if __name__ == '__main__':
    main()
