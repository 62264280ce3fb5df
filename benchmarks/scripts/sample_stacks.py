"""Run a Python script and sample its main thread's stack: where does a long compile spend its time?

    python benchmarks/scripts/sample_stacks.py --out out/fp16.folded.gz [--interval 0.1] \
        tools/analysis/benchmark.py --level backbone ...

Every ``--interval`` seconds a thread records the main thread's Python stack. ``--out`` gets them as folded stacks
(``frame;frame;... milliseconds`` per line, gzip), the format flame-graph tools read, written every ``--flush``
seconds and again when the script ends, normally or by SIGTERM (``timeout``'s signal, turned into a normal exit).
So a run stopped at a device call's deadline keeps its profile. ``--summary`` prints the inclusive time of the
frames that name a compile phase (see :data:`PHASES`) from such a file.

Why not py-spy: it needs ptrace rights, which a lent machine may not give, and its wheel must be carried; this needs
neither. Its limit: a sample waits for the GIL, so a stretch in C++ that holds it is counted, by each sample's
weight (the time since the sample before), to the stack seen when it returns.
"""
import argparse
import collections
import gzip
import os
import sys
import threading
import time

from script_runner import run_as_main  # beside this file

# Frames that mark a phase of torch.compile (inclusive time is summed per phase; a stack counts for each it holds).
PHASES = {
    'dynamo: trace and compile a frame': 'torch/_dynamo/convert_frame.py:_compile',
    'aot autograd (joint graph, partition)': 'torch/_functorch/aot_autograd.py:aot_module_simplified',
    'inductor: compile a graph': 'torch/_inductor/compile_fx.py:fx_codegen_and_compile',
    'inductor: lowering (GraphLowering.run)': 'torch/_inductor/graph.py:run',
    'inductor: scheduler (fusion)': 'torch/_inductor/scheduler.py:__init__',
    'inductor: code generation': 'torch/_inductor/graph.py:codegen',
    'inductor: waiting for kernel compiles': 'torch/_inductor/async_compile.py:wait',
    'inductor: autotuning at first run': 'torch/_inductor/runtime/triton_heuristics.py:benchmark_all_configs',
    'triton compile in this process': 'torch/_inductor/runtime/triton_heuristics.py:_precompile_config',
    'sympy (anywhere)': 'sympy/',
    'cuda graphs: record': 'torch/_inductor/cudagraph_trees.py:record_function',
}


def frame_name(frame) -> str:
    path = frame.f_code.co_filename
    for marker in ('site-packages/', 'dist-packages/'):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f'{path}:{frame.f_code.co_name}'


class Sampler:
    def __init__(self, out: str, interval: float, flush: float):
        self.out, self.interval, self.flush_every = out, interval, flush
        self.weights = collections.Counter()  # folded stack -> seconds
        self.main = threading.main_thread().ident
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.stop = threading.Event()

    def run(self):
        last = last_flush = time.monotonic()
        while not self.stop.wait(self.interval):
            frame = sys._current_frames().get(self.main)
            now = time.monotonic()
            names = []
            while frame is not None:
                names.append(frame_name(frame))
                frame = frame.f_back
            with self.lock:
                self.weights[';'.join(reversed(names))] += now - last
            last = now
            if now - last_flush > self.flush_every:
                self.write()
                last_flush = now

    def write(self):
        with self.lock:
            lines = [f'{stack} {seconds * 1e3:.0f}\n' for stack, seconds in self.weights.most_common()]
        tmp = self.out + '.tmp'
        with gzip.open(tmp, 'wt') as f:
            f.write(f'# sampled {time.monotonic() - self.t0:.1f} s of wall time\n')
            f.writelines(lines)
        os.replace(tmp, self.out)


def read_folded(path: str):
    with gzip.open(path, 'rt') as f:
        for line in f:
            if line.startswith('#'):
                continue
            stack, ms = line.rsplit(' ', 1)
            yield stack.split(';'), float(ms) / 1e3


def summary(path: str, top: int = 25) -> str:
    """Seconds per compile phase, and the frames with the most self time, of a folded file."""
    total = 0.0
    phases = collections.Counter()
    own = collections.Counter()
    for frames, seconds in read_folded(path):
        total += seconds
        for phase, marker in PHASES.items():
            if any(marker in f for f in frames):
                phases[phase] += seconds
        own[frames[-1]] += seconds
    lines = [f'{path}: {total:.1f} s sampled']
    lines += [f'  {seconds:8.1f} s  {phase}' for phase, seconds in phases.items()]
    lines.append('  most self time:')
    lines += [f'  {seconds:8.1f} s  {frame}' for frame, seconds in own.most_common(top)]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', help='folded stacks, gzip')
    parser.add_argument('--interval', type=float, default=0.1, help='seconds between samples')
    parser.add_argument('--flush', type=float, default=20.0, help='seconds between writes of --out')
    parser.add_argument('--summary', nargs='+', metavar='FOLDED', help='print the phases of these files and stop')
    parser.add_argument('script', nargs='?')
    parser.add_argument('args', nargs=argparse.REMAINDER)
    options = parser.parse_args()
    if options.summary:
        print('\n'.join(summary(path) for path in options.summary))
        return
    if not (options.out and options.script):
        parser.error('--out and a script are needed (or --summary FILES)')
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    sampler = Sampler(options.out, options.interval, options.flush)
    threading.Thread(target=sampler.run, daemon=True).start()
    sys.path.insert(0, os.path.dirname(os.path.abspath(options.script)))
    run_as_main(options.script, options.args, sampler.write)


if __name__ == '__main__':
    main()
