"""Where does an MLLA-T train step spend its GPU time? Kernel time by category, plus micro-benchmarks of the pieces.

    python benchmarks/scripts/breakdown.py [--impl plain fast] [--dtype bf16] [--infer] [--fast-kernels] [--host]
        [--micro]

``--infer`` profiles an inference forward (no gradients) instead of a train step (forward and backward).
``--fast-kernels`` builds the fast path with MLLA's optional ``triton_dwconv`` and ``compile_convs``.
``--host`` also lists the operations that take the host's time (self CPU time): where the step's wall time exceeds
its GPU kernel time, the step waits on Python, and this says on what.

Categories are guessed from kernel names (cuDNN/cutlass/nvjet/gemm, depthwise, Triton, elementwise, ...).
"""
import argparse
import os
import re
import statistics
import sys
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.getcwd())
from mlla_mm.analysis.benchmark import time_call  # noqa: E402

# First match wins. Inductor's kernels come before the convolutions: their names list the fused operations, and
# "convert_element_type" (a dtype cast) would otherwise count them as convolutions (it did until 2026-11-27).
CATEGORIES = [
    ('depthwise conv', r'depthwise|dwconv|conv_depthwise'),
    ('triton (fused)', r'^triton|triton_'),
    ('layer/batch norm', r'layer_norm|LayerNorm|batch_norm|batchnorm|bn_'),
    ('conv (cudnn/implicit gemm)', r'conv(?!ert)|cudnn|implicit|winograd|fprop|dgrad|wgrad|xmma_fprop'),
    ('matmul', r'gemm|nvjet|cutlass|sm90_xmma|cublas|splitK|reduce_kernel<.*gemm'),
    ('reduction', r'reduce|Reduce'),
    ('copy / permute', r'copy|Copy|transpose|permute|cat|CatArray'),
    ('elementwise', r'elementwise|vectorized|Elementwise'),
    ('optimizer', r'multi_tensor|adam|Adam|foreach'),
]


def category(name):
    for label, pattern in CATEGORIES:
        if re.search(pattern, name):
            return label
    return 'other'


def timed(fn, warmup=3, repeat=10):
    """Median milliseconds of ``fn`` on the GPU (the benchmark tool's CUDA-event timer)."""
    return statistics.median(time_call(fn, torch.device('cuda'), warmup, repeat))


def breakdown(impl, dtype, shape, batch, infer=False, fast_kernels=False, host=False):
    from mlla_mm import MLLA
    kernels = fast_kernels and impl == 'fast'
    model = MLLA(arch='tiny', drop_path_rate=0.0, attn_impl=impl, triton_dwconv=kernels,
                 compile_convs=kernels).cuda().train(not infer)
    x = torch.randn(batch, 3, *shape, device='cuda')

    def step():
        if infer:
            with torch.no_grad(), torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32):
                model(x)
            return
        model.zero_grad(set_to_none=True)  # as a train step does
        with torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32):
            loss = sum(o.float().mean() for o in model(x))
        loss.backward()

    t0 = time.time()
    step()
    torch.cuda.synchronize()
    what = f'{impl} {dtype}' + (' inference' if infer else '') + (' + kernels' if kernels else '')
    print(f'[{what}] first step (compile included) {time.time() - t0:.1f} s', flush=True)
    ms = timed(step)
    print(f'[{what}] step median {ms:.1f} ms, peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB')
    activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if host else [])
    with profile(activities=activities) as prof:
        step()
        torch.cuda.synchronize()
    totals, counts, per_kernel = defaultdict(float), defaultdict(int), defaultdict(float)
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = event.device_time if hasattr(event, 'device_time') else event.cuda_time
        totals[category(event.name)] += us
        counts[category(event.name)] += 1
        per_kernel[event.name] += us
    all_us = sum(totals.values())
    print(f'  GPU kernel time {all_us / 1000:.1f} ms in {sum(counts.values())} kernels')
    for label, us in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f'  {label:28s} {us / 1000:7.2f} ms {100 * us / all_us:5.1f}%  ({counts[label]} kernels)')
    print('  top kernels:')
    for name, us in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:25]:
        print(f'    {us / 1000:7.2f} ms  {name[:150]}')
    if host:
        print_host_time(prof)
    del model
    torch.cuda.empty_cache()


def print_host_time(prof, rows=30):
    """The operations of one profiled step by the host time they take themselves (not their children's)."""
    averages = [a for a in prof.key_averages() if a.self_cpu_time_total > 0]
    total_us = sum(a.self_cpu_time_total for a in averages)
    print(f'  host time {total_us / 1000:.1f} ms (self CPU time of all profiled operations), top {rows}:')
    for a in sorted(averages, key=lambda a: -a.self_cpu_time_total)[:rows]:
        print(f'    {a.self_cpu_time_total / 1000:7.2f} ms  {a.count:5d} calls  {a.key[:120]}')


def micro(dtype):
    print(f'\n=== micro-benchmarks, {dtype} (ms, median; fwd / fwd+bwd) ===')
    stages = [(64, 200, 336, 2), (128, 100, 168, 4), (256, 50, 84, 8), (512, 25, 42, 16)]
    for c, h, w, heads in stages:
        b = 2
        for layout in ('channels_last', 'contiguous'):
            x = torch.randn(b, c, h, w, device='cuda', dtype=dtype)
            if layout == 'channels_last':
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            weight = torch.randn(c, 1, 3, 3, device='cuda', dtype=dtype, requires_grad=True)
            bias = torch.randn(c, device='cuda', dtype=dtype, requires_grad=True)
            grad = torch.randn_like(x)
            fwd = timed(lambda: F.conv2d(x, weight, bias, padding=1, groups=c))
            both = timed(lambda: F.conv2d(x, weight, bias, padding=1, groups=c).backward(grad))
            print(f'dwconv3x3 {b}x{c}x{h}x{w} {layout:13s}: {fwd:6.3f} / {both:6.3f}')
        n = h * w
        d = c // heads
        k = torch.randn(b * heads, n, d, device='cuda', dtype=dtype, requires_grad=True)
        v = torch.randn(b * heads, n, d, device='cuda', dtype=dtype, requires_grad=True)
        g = torch.randn(b * heads, d, d, device='cuda', dtype=dtype)
        fwd = timed(lambda: k.transpose(1, 2) @ v)
        both = timed(lambda: (k.transpose(1, 2) @ v).backward(g))
        print(f"K'V bmm {b * heads}x{n}x{d}: {fwd:6.3f} / {both:6.3f}")
        for chunks in (16, 64):
            if n % chunks:
                continue
            fwd = timed(lambda: (k.view(-1, chunks, n // chunks, d).transpose(2, 3)
                                 @ v.view(-1, chunks, n // chunks, d)).sum(1))
            print(f"K'V chunked x{chunks}: {fwd:6.3f}")
        tokens = torch.randn(b * n, c, device='cuda', dtype=dtype, requires_grad=True)
        for out in (c, 2 * c, 4 * c):
            lin = torch.randn(out, c, device='cuda', dtype=dtype, requires_grad=True)
            fwd = timed(lambda: tokens @ lin.t())
            both = timed(lambda: (tokens @ lin.t()).sum().backward())
            print(f'linear {b * n}x{c} -> {out}: {fwd:6.3f} / {both:6.3f}')
    x = torch.randn(2, 96, 200, 336, device='cuda', dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weight = torch.randn(96, 1, 7, 7, device='cuda', dtype=dtype, requires_grad=True)
    fwd = timed(lambda: F.conv2d(x, weight, None, padding=3, groups=96))
    both = timed(lambda: F.conv2d(x, weight, None, padding=3, groups=96).sum().backward())
    print(f'ConvNeXt dwconv7x7 2x96x200x336 channels_last: {fwd:6.3f} / {both:6.3f}')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--impl', nargs='+', default=['plain', 'fast'])
    parser.add_argument('--dtype', nargs='+', default=['bf16'])
    parser.add_argument('--shape', nargs=2, type=int, default=[800, 1344])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--infer', action='store_true', help='profile inference instead of a train step')
    parser.add_argument('--fast-kernels', action='store_true', help='fast path with triton_dwconv and compile_convs')
    parser.add_argument('--host', action='store_true', help="also list the operations that take the host's time")
    parser.add_argument('--micro', action='store_true')
    args = parser.parse_args()
    dtypes = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
    torch.backends.cudnn.benchmark = True
    print(torch.cuda.get_device_name(), torch.__version__)
    for name in args.dtype:
        if args.micro:
            micro(dtypes[name])
        for impl in args.impl:
            breakdown(impl, dtypes[name], tuple(args.shape), args.batch, infer=args.infer,
                      fast_kernels=args.fast_kernels, host=args.host)


if __name__ == '__main__':
    main()
