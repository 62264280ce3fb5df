"""How long MLLA's fast path takes to compile a train step, and how fast the step then runs, on one GPU.

    python benchmarks/scripts/compile_time.py --precision fp16 --shape 800 1344 --batch 2 [--static] \
        [--json out.json]

Each step is the backbone's forward and backward under autocast with a GradScaler (fp16), as
``tools/analysis/benchmark.py --adamw none`` steps it; no inference is run first, so the first step's time is the
training graphs' compile (plus recording CUDA graphs). ``--static`` compiles with static sizes (``dynamic=False``)
instead of the fast path's dynamic ones, to see what dynamic shapes cost. Torch's own tally of compile phases
(``torch._dynamo.utils.compile_times``) is printed at the end.

Why a script of its own: the fp16 training graphs of the whole backbone had not compiled after 9.5 minutes on an
H100 host (benchmarks/h100_2026-11-27_diag/); run under ``sample_stacks.py`` it says where that time goes.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--precision', choices=['fp16', 'bf16', 'fp32'], default='fp16')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1344])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=20, help='timed steps after the compiling ones')
    parser.add_argument('--static', action='store_true', help='compile with static sizes')
    parser.add_argument('--device', default='cuda', help='cpu: a quick check of this script (nothing compiles)')
    parser.add_argument('--json')
    options = parser.parse_args()

    if options.static:
        real_compile = torch.compile

        def compile_static(fn, **kwargs):
            kwargs['dynamic'] = False
            return real_compile(fn, **kwargs)
        torch.compile = compile_static  # fast_block's compile calls go through torch.compile

    from mlla_mm import MLLA
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp32': None}[options.precision]
    device = torch.device(options.device)
    model = MLLA(options.arch, attn_impl='fast', drop_path_rate=0.2).to(device).train()
    x = torch.randn(options.batch, 3, *options.shape, device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = sum(o.float().mean() for o in model(x))
        scaler.scale(loss).backward()

    times = []
    for i in range(3 + options.steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        if i < 3:
            print(f'step {i}: {times[-1]:.2f} s', flush=True)
    result = dict(arch=options.arch, precision=options.precision, shape=options.shape, batch=options.batch,
                  static=options.static, first_step_s=times[0], second_step_s=times[1],
                  step_ms_median=statistics.median(times[3:]) * 1e3, step_ms_min=min(times[3:]) * 1e3,
                  torch=torch.__version__)
    if device.type == 'cuda':
        result.update(peak_mib=torch.cuda.max_memory_allocated() / 2**20, device=torch.cuda.get_device_name())
    print(json.dumps(result), flush=True)
    from torch._dynamo.utils import compile_times
    print(compile_times(repr='str'), flush=True)
    if options.json:
        with open(options.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
