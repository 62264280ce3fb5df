"""Which GPU operations a whole model's train step spends its time in, per backbone: torch.profiler's table.

    python tools/analysis/profile_step.py --level model --config configs/segmentation/upernet_mlla_t.py \
        --shape 512 512 --batch 8 --precision fp16 --adamw config --peers swin_t [--channels-last] \
        --warmup 5 --iters 5 [--json ops.json]

It takes ``tools/analysis/benchmark.py``'s arguments (model level), builds the same models and batches and steps
them with ``mlla_mm.analysis.timing.train_step``; after ``--warmup`` steps it records ``--iters`` steps and
prints the operators with the most GPU time of their own (per step), and the share of the step that
convolutions (forward and backward), normalisation, resizing, concatenation and the losses take.

Why: where ``step_phases.py`` finds the heads' share of a step large, this says which of their operations is the
cost.
"""
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.analysis.benchmark import build_parser, each_row, parse_args  # noqa: E402
from mlla_mm.analysis.timing import amp_tools, optimizer_maker, train_step  # noqa: E402

# ATen operators by kind, for the summary (a name matches the first kind one of whose words it contains)
KINDS = (('convolution', ('conv',)), ('normalisation', ('norm',)), ('resize', ('upsample', 'interpolate')),
         ('concatenation', ('cat',)), ('loss and accuracy', ('nll', 'softmax', 'cross_entropy', 'topk', 'eq')),
         ('matmul', ('mm', 'addmm', 'bmm', 'linear')), ('optimizer', ('adam', '_foreach', '_fused')))


def kind_of(name: str) -> str:
    for kind, words in KINDS:
        if any(word in name for word in words):
            return kind
    return 'other'


def profile(model, make_batch, device, precision, adamw_form, cfg, warmup, iters) -> list:
    """``[(op name, self GPU ms per step, calls per step)]`` of ATen operators over ``iters`` profiled steps."""
    from torch.profiler import ProfilerActivity
    autocast, scaler = amp_tools(device, precision)
    model = model.to(device).train()
    batch = make_batch()
    optimizer = optimizer_maker(adamw_form, cfg)(model)
    for _ in range(warmup):
        train_step(model, batch['train'], optimizer, scaler, autocast)
    torch.cuda.synchronize(device)
    with torch.profiler.profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            train_step(model, batch['train'], optimizer, scaler, autocast)
        torch.cuda.synchronize(device)
    rows = []
    for event in prof.key_averages():
        # an operator's own device time: the kernels it launched itself, not those of the operators it called
        gpu_us = getattr(event, 'self_device_time_total', None)
        if gpu_us is None:
            gpu_us = event.self_cuda_time_total
        if event.key.startswith('aten::') and gpu_us > 0:
            rows.append((event.key, gpu_us / 1e3 / iters, event.count / iters))
    return sorted(rows, key=lambda row: -row[1])


def main(argv=None):
    args = parse_args(argv, build_parser(__doc__.split('\n')[0], results=False))
    if args.level != 'model' or not torch.cuda.is_available() or args.cpu:
        raise SystemExit('profile_step.py profiles whole models on a GPU: give --level model and --config')
    device = torch.device('cuda')

    def measure(cfg, precision, adamw_form, model, make, name):
        ops = profile(model, make, device, precision, adamw_form, cfg, args.warmup, args.iters)
        total = sum(ms for _, ms, _ in ops)
        kinds = {}
        for op, ms, _ in ops:
            kinds[kind_of(op)] = kinds.get(kind_of(op), 0.0) + ms
        print(f'{name}, {precision}, optimizer {adamw_form}: {total:.2f} ms of operators\' own GPU time per step')
        for kind, ms in sorted(kinds.items(), key=lambda item: -item[1]):
            print(f'  {kind:<20} {ms:9.2f} ms  {100 * ms / total:5.1f}%')
        for op, ms, calls in ops[:25]:
            print(f'    {op:<48} {ms:9.2f} ms  {calls:7.1f} calls')
        return dict(model=name, precision=precision, adamw=adamw_form, total_ms=total, kinds=kinds,
                    ops=[dict(op=op, ms=ms, calls=calls) for op, ms, calls in ops])

    return each_row(args, device, measure)


if __name__ == '__main__':
    main()
