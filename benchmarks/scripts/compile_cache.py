"""Run a Python script with torch.compile's caches carried in files, for device machines that start empty.

    python benchmarks/scripts/compile_cache.py --load 'cache/*.bin' --save out/this_run.bin \
        tools/analysis/benchmark.py --level backbone ...

``--load``: torch.compile's cache artifacts (``torch.compiler.save_cache_artifacts``) to load first, a glob
(files that do not exist are skipped). ``--save``: where to write the artifacts of this process when it ends,
normally or by SIGTERM (``timeout``'s signal), which is turned into a normal exit so that the save still runs.

Why: a device machine is fresh each session, and a cold compile of MLLA's whole backbone takes about 5 minutes of
a 30-minute session (benchmarks/h100_2026-11-27_default/). The Inductor cache directory of a session held 1.4 GB,
too large to carry (64 MiB); these artifacts hold only the graphs this process compiled. For MLLA-T they were
still too large to come back from a lent machine (32 and 76 MiB against 16 MiB a file,
benchmarks/h100_2026-11-27_diag/); smaller jobs, or machines of one's own, can use them.
"""
import argparse
import glob
import os

import torch
from script_runner import run_as_main  # beside this file


def load(pattern: str) -> None:
    for path in sorted(glob.glob(pattern)):
        with open(path, 'rb') as f:
            info = torch.compiler.load_cache_artifacts(f.read())
        print(f'compile cache: loaded {path}: {summary(info)}', flush=True)


def save(path: str) -> None:
    result = torch.compiler.save_cache_artifacts()
    if result is None or not result[0]:
        print(f'compile cache: nothing compiled, {path} not written', flush=True)
        return
    data, info = result
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + '.tmp', 'wb') as f:
        f.write(data)
    os.replace(path + '.tmp', path)  # a save cut off half-way leaves no truncated file behind
    print(f'compile cache: saved {path} ({len(data) / 2 ** 20:.1f} MiB): {summary(info)}', flush=True)


def summary(info) -> str:
    """How many artifacts of each kind (inductor, autotune, aot_autograd, ...) a CacheInfo lists."""
    if info is None:
        return 'none'
    kinds = getattr(info, 'artifacts', {})
    return ', '.join(f'{len(keys)} {kind}' for kind, keys in kinds.items() if keys) or 'none'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--load', help="glob of artifact files to load first (quote it)")
    parser.add_argument('--save', help='file to write this process\'s artifacts to when it ends')
    parser.add_argument('script', help='the Python script to run')
    parser.add_argument('args', nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    if args.load:
        load(args.load)
    run_as_main(args.script, args.args, (lambda: save(args.save)) if args.save else None)


if __name__ == '__main__':
    main()
