"""CPU latency of an exported ONNX file under ONNX Runtime beside the same model in PyTorch, on this machine.

    python tools/deployment/benchmark_onnx.py CONFIG FILE.onnx [CHECKPOINT] [--shape H W] [--repeats N]
        [--warmup N] [--threads N] [--part model|backbone|neck] [--out RESULT.json]

Both run batch 1 in float32 on the CPU with the same number of threads: PyTorch the exported module's plain path
under ``torch.inference_mode()``, ONNX Runtime its CPU provider with all graph optimisations. Each side is timed
``--repeats`` times after ``--warmup`` untimed runs, alternating, and the median (and fastest) run is reported
with the CPU, versions, commit and date. On a shared machine the median of several repeats is the figure to quote.
"""
import argparse
import datetime
import json
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.apis import load_config, task_of  # noqa: E402
from mlla_mm.deployment import PARTS, build_export_module  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the ONNX file was exported from')
    parser.add_argument('onnx', help='the exported ONNX file')
    parser.add_argument('checkpoint', nargs='?', help="the weights it was exported with (default: initial)")
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=(512, 512),
                        help='input height and width (default: 512 512)')
    parser.add_argument('--part', choices=PARTS, help='as for export_onnx.py (default: model for segmentation)')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs of each (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs of each first (default: 2)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help=f'CPU threads of both (default: torch\'s, here {torch.get_num_threads()})')
    parser.add_argument('--out', help='also write the result as JSON here')
    return parser.parse_args(argv)


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def time_ms(run, warmup: int) -> float:
    for _ in range(warmup):
        run()
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit('--repeats and --threads must be positive, --warmup not negative')
    if not osp.isfile(args.onnx):
        raise SystemExit(f'ONNX file not found: {args.onnx}')
    import onnxruntime

    cfg = load_config(args.config)
    part = args.part or ('model' if task_of(cfg) == 'mmseg' else 'backbone')
    _, reference, _ = build_export_module(cfg, args.checkpoint, part)
    torch.set_num_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(args.onnx, options, providers=['CPUExecutionProvider'])
    x = torch.randn(1, 3, *args.shape)
    feed = {session.get_inputs()[0].name: x.numpy()}

    def run_torch():
        with torch.inference_mode():
            reference(x)

    times = {'pytorch': [], 'onnxruntime': []}
    for i in range(args.repeats):  # alternating, so that a burst of load on the machine hits both
        times['pytorch'].append(time_ms(run_torch, args.warmup if i == 0 else 0))
        times['onnxruntime'].append(time_ms(lambda: session.run(None, feed), args.warmup if i == 0 else 0))
    result = dict(
        date=datetime.date.today().isoformat(), commit=commit(), cpu=cpu_name(), threads=args.threads,
        torch=torch.__version__, onnxruntime=onnxruntime.__version__, config=args.config, part=part,
        input=f'1x3x{args.shape[0]}x{args.shape[1]}', repeats=args.repeats,
        **{f'{name}_median_ms': round(statistics.median(t), 1) for name, t in times.items()},
        **{f'{name}_min_ms': round(min(t), 1) for name, t in times.items()})
    print(f"{result['config']} ({part}) {result['input']} float32, {result['cpu']}, {args.threads} threads, "
          f"torch {result['torch']}, onnxruntime {result['onnxruntime']}, commit {result['commit']}, "
          f"{result['date']}")
    for name in times:
        print(f"{name}: median {result[name + '_median_ms']} ms, fastest {result[name + '_min_ms']} ms "
              f"of {args.repeats}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {args.out}')
    return result


if __name__ == '__main__':
    main()
