"""Where a whole model's train step goes, per backbone in one process: GPU time (CUDA events) and host time.

    python tools/analysis/step_phases.py --level model --config configs/segmentation/upernet_mlla_t.py \
        --shape 512 512 --batch 8 --precision fp16 --adamw config --peers swin_t mlla --attn-impl fast \
        [--json phases.json]

It takes ``tools/analysis/benchmark.py``'s arguments (model level) and builds the same models and batches, and
steps each with ``mlla_mm.analysis.timing.train_step``, the step its ``measure`` times (autocast, a GradScaler for
fp16, the chosen optimizer). Marks within a step:

- ``before the backbone``: zero_grad and the model's own work before its backbone;
- ``backbone forward``: from the backbone's forward pre-hook to its forward hook;
- ``rest of the forward``: neck, heads and losses, up to the summed loss;
- ``backward to the backbone``: from the backward's start until the first of the backbone's outputs has its
  gradient (a tensor hook on each output): the heads' and neck's backward alone;
- ``until its last output``: until the last of them has it. An eager backbone starts its own backward as soon as
  some of its nodes have all their gradients, so this mixes the heads' backward with part of the backbone's; a
  compiled backbone's backward is one autograd node, which starts only after this;
- ``after its last output``: from then until the backward returns: the backbone's backward (the rest of it, for an
  eager backbone);
- ``optimizer``: the GradScaler's step and update.

The GPU column is the time between CUDA events recorded at the marks: the GPU's timeline, idle gaps included (a
phase whose kernels wait on the host shows its host time there). The host column is ``time.perf_counter`` at the
same marks. Each step ends with a synchronisation (so steps do not overlap, unlike in ``benchmark.py``); the
numbers are medians over ``--iters`` steps after ``--warmup``.

Why: a model's step minus its backbone alone is no measure of the heads. An eager backbone alone waits on the host,
while in the model the host queues its kernels as the GPU runs the heads', so that subtraction can show a cost of
the backbone that is not there; this split measures the phases within one step.
"""
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.analysis.benchmark import build_parser, device_of, each_row, parse_args  # noqa: E402
from mlla_mm.analysis.timing import amp_tools, optimizer_maker, train_step  # noqa: E402

MARKS = ('start', 'backbone in', 'backbone out', 'loss', 'first grad at backbone', 'last grad at backbone',
         'backward done', 'optimizer done')
PHASES = ('before the backbone', 'backbone forward', 'rest of the forward', 'backward to the backbone',
          'until its last output', 'after its last output', 'optimizer')


class StepClock:
    """The marks of one step: a host time, and a CUDA event on the current stream when on a GPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.marks = {}

    def mark(self, name: str):
        event = None
        if self.device.type == 'cuda':
            event = torch.cuda.Event(enable_timing=True)
            event.record()
        self.marks[name] = (time.perf_counter(), event)

    def phases(self) -> dict:
        """``{phase: (gpu_ms or None, host_ms)}`` of the step just run (synchronises)."""
        missing = [name for name in MARKS if name not in self.marks]
        if missing:
            raise RuntimeError(f'the step did not reach the marks {missing}: is the backbone called, and do its '
                               'outputs require gradients?')
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        result = {}
        for phase, (first, last) in zip(PHASES, zip(MARKS, MARKS[1:])):
            (host_0, event_0), (host_1, event_1) = self.marks[first], self.marks[last]
            gpu = event_0.elapsed_time(event_1) if event_0 is not None else None
            result[phase] = (gpu, (host_1 - host_0) * 1e3)
        total_gpu = (self.marks[MARKS[0]][1].elapsed_time(self.marks[MARKS[-1]][1])
                     if self.device.type == 'cuda' else None)
        result['step'] = (total_gpu, (self.marks[MARKS[-1]][0] - self.marks[MARKS[0]][0]) * 1e3)
        return result


def watch_backbone(backbone: torch.nn.Module, clock: StepClock):
    """Hooks that mark the backbone's forward and the arrival of its outputs' gradients on ``clock``."""

    def before(module, args):
        clock.mark('backbone in')

    def after(module, args, outputs):
        clock.mark('backbone out')
        for out in (outputs if isinstance(outputs, (tuple, list)) else (outputs, )):
            if isinstance(out, torch.Tensor) and out.requires_grad:
                out.register_hook(arrived)

    def arrived(grad):
        if 'first grad at backbone' not in clock.marks:
            clock.mark('first grad at backbone')
        clock.mark('last grad at backbone')  # each output's arrival overwrites it: the last one's stays

    return [backbone.register_forward_pre_hook(before), backbone.register_forward_hook(after)]


def phases_of(model, make_batch, device, precision, adamw_form, cfg, warmup, iters) -> dict:
    """Median GPU and host milliseconds of each phase of ``model``'s train step (see the module's docstring)."""
    autocast, scaler = amp_tools(device, precision)
    model = model.to(device).train()
    batch = make_batch()
    optimizer = optimizer_maker(adamw_form, cfg)(model)
    clock = StepClock(device)
    hooks = watch_backbone(model.backbone, clock)
    samples = []
    for i in range(warmup + iters):
        clock.marks.clear()
        clock.mark('start')
        train_step(model, batch['train'], optimizer, scaler, autocast, mark=clock.mark)
        phases = clock.phases()
        if i >= warmup:
            samples.append(phases)
    for hook in hooks:
        hook.remove()
    result = {}
    for phase in (*PHASES, 'step'):
        gpu = [sample[phase][0] for sample in samples]
        result[phase] = dict(gpu_ms=statistics.median(gpu) if gpu[0] is not None else None,
                             host_ms=statistics.median(sample[phase][1] for sample in samples))
    return result


def main(argv=None):
    args = parse_args(argv, build_parser(__doc__.split('\n')[0], results=False))
    if args.level != 'model':
        raise SystemExit('step_phases.py measures whole models: give --level model and --config')
    device = device_of(args)

    def measure(cfg, precision, adamw_form, model, make, name):
        phases = phases_of(model, make, device, precision, adamw_form, cfg, args.warmup, args.iters)
        print(f'{name}, {precision}, optimizer {adamw_form}: medians of {args.iters} steps')
        for phase, times in phases.items():
            gpu = f'{times["gpu_ms"]:9.2f}' if times['gpu_ms'] is not None else f'{"-":>9}'
            print(f'  {phase:<26} GPU {gpu} ms   host {times["host_ms"]:9.2f} ms', flush=True)
        return dict(model=name, precision=precision, adamw=adamw_form, phases=phases)

    return each_row(args, device, measure)


if __name__ == '__main__':
    main()
