"""How long MLLA's fast path takes to compile a train step, and how fast the step then runs, on one GPU.

    python benchmarks/scripts/compile_time.py --precision fp16 --shape 800 1344 --batch 2 [--static] \
        [--json out.json]

Each step is the backbone's forward and backward under autocast with a GradScaler (fp16), stepped by
``mlla_mm.analysis.benchmark.measure`` as ``tools/analysis/benchmark.py --no-infer --adamw none`` steps it: no
inference first, so the first step's time (``first_train_step_s``) is the training graphs' compile (plus recording
CUDA graphs). Call 1 of benchmarks/h100_2026-11-27_compile/ ran the version of commit 5a76817, with a loop of its
own that reported the same first step as ``first_step_s``. ``--static`` compiles with static sizes (``dynamic=False``)
instead of the fast path's dynamic ones, to see what dynamic shapes cost. Torch's own tally of compile phases
(``torch._dynamo.utils.compile_times``) is printed at the end.

Why a script of its own: the fp16 training graphs of the whole backbone had not compiled after 9.5 minutes on an
H100 host (benchmarks/h100_2026-11-27_diag/); run under ``sample_stacks.py`` it says where that time goes.
"""
import argparse
import json
import os
import sys

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
    from mlla_mm.analysis.benchmark import backbone_batch, measure
    device = torch.device(options.device)
    model = MLLA(options.arch, attn_impl='fast', drop_path_rate=0.2)
    # benchmark.py --no-infer --adamw none: forward and backward, a GradScaler for fp16, the first step alone
    result = measure(model, backbone_batch(options.batch, options.shape, device), device, options.precision,
                     warmup=3, iters=options.steps, batch_size=options.batch, make_optimizer=lambda m: None,
                     infer=False)
    result.update(arch=options.arch, precision=options.precision, shape=options.shape, batch=options.batch,
                  static=options.static, torch=torch.__version__)
    if device.type == 'cuda':
        result['device'] = torch.cuda.get_device_name()
    print(json.dumps(result), flush=True)
    from torch._dynamo.utils import compile_times
    print(compile_times(repr='str'), flush=True)
    if options.json:
        with open(options.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
