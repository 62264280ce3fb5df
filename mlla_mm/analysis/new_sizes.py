"""What a new input size costs a training step, per backbone, each in a process of its own: detection trains on many
sizes.

Each row steps through ``--sizes`` in order, ``--repeats`` train steps at each (autocast, a GradScaler for fp16, the
chosen optimizer, as :func:`.timing.train_step`), every step timed on the wall clock up to a synchronisation, with
cuDNN's autotuning off as mmdet's configs have it (a whole model: as its config sets it). Measures:

- ``first_size_step_s``: the first step of the process's first size, which also pays for what is set up once
  (cuDNN's handles, Triton kernels and compiled graphs, hence it depends on the compile caches' state);
- ``new_size_step_s``: median of the first steps at each later size not seen before;
- ``seen_size_step_ms``: median of the steps at sizes seen before (the repeats, and sizes that come again).

MLLA's ``'auto'`` rows run as users get them (uncompiled for their first images, :class:`~mlla_mm.MLLA`), not
compiled at once as in ``benchmark.py``. A run of several rows measures each in a process of its own
(:func:`run_rows_apart`): in one process, a row would find the cuDNN set-ups, kernels and graphs of the rows before
it, at the very shapes it is about to meet. ``tools/analysis/new_sizes.py`` is its command line.
"""
import json
import os
import os.path as osp
import statistics
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .results import append_csv, machine, write_json
from .rows import backbone_batch, model_batch
from .timing import amp_tools, optimizer_maker, synchronize, train_step

# two images at the sizes a multi-scale + crop detection pipeline pads its batches to, two of them again at the end
DEFAULT_SIZES = ('800x1344', '736x1216', '640x1088', '512x864', '768x1024', '704x1312', '800x1344', '736x1216')
MEASURES = {'first_size_step_s': 's', 'new_size_step_s': 's', 'seen_size_step_ms': 'ms'}


def parse_sizes(items: Sequence[str]) -> List[Tuple[int, int]]:
    """``['800x1344', ...]`` -> ``[(800, 1344), ...]``; a ValueError naming the item that is not ``HxW``."""
    sizes = []
    for item in items:
        parts = str(item).lower().split('x')
        if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(f'size {item!r} is not HEIGHTxWIDTH in pixels, e.g. 800x1344')
        sizes.append((int(parts[0]), int(parts[1])))
    if len({size for size in sizes}) < 2:
        raise ValueError(f'sizes {list(items)}: at least two different sizes are needed')
    return sizes


def step_times(model, makers: Dict[Tuple[int, int], object], sizes: Sequence[Tuple[int, int]], repeats: int,
               device: torch.device, precision: str, optimizer=None) -> List[Tuple[Tuple[int, int], bool, float]]:
    """``(size, new, seconds)`` of every step: ``repeats`` steps at each size of ``sizes`` in order (``makers``: a
    batch maker per size); ``new``: the first step at a size not seen before."""
    autocast, scaler = amp_tools(device, precision)
    model.train()
    seen, steps = set(), []
    for size in sizes:
        inputs = makers[size]()['train']
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            train_step(model, inputs, optimizer, scaler, autocast)
            synchronize(device)
            steps.append((size, size not in seen, time.perf_counter() - start))
            seen.add(size)
    return steps


def summarise(steps: List[Tuple[Tuple[int, int], bool, float]]) -> Dict[str, float]:
    """The measures of :data:`MEASURES` from :func:`step_times`' steps."""
    new = [seconds for _, is_new, seconds in steps[1:] if is_new]
    seen = [seconds for _, is_new, seconds in steps if not is_new]
    if not new or not seen:
        raise ValueError('the steps need at least two sizes and a size seen twice (repeats >= 2 or a size again)')
    return dict(first_size_step_s=steps[0][2], new_size_step_s=statistics.median(new),
                seen_size_step_ms=statistics.median(seen) * 1e3, new_sizes=len(new) + 1, seen_steps=len(seen))


def input_name(batch: int, sizes: Sequence[Tuple[int, int]]) -> str:
    """``'2x3 at 6 sizes 512x864-800x1344'``: the results CSV's ``input`` of a run."""
    distinct = sorted(set(sizes), key=lambda size: size[0] * size[1])
    low, high = distinct[0], distinct[-1]
    return f'{batch}x3 at {len(distinct)} sizes {low[0]}x{low[1]}-{high[0]}x{high[1]}'


def csv_lines(row: Dict, info: Dict) -> List[Dict]:
    """The results-CSV lines of one row (its ``task``, ``model``, ``input``, ``precision`` and measures)."""
    if 'error' in row:
        return []
    return [dict(date=info['date'], commit=info['commit'], card=info['card'], torch=info['torch'], task=row['task'],
                 model=row['model'], input=row['input'], precision=row['precision'], measure=measure,
                 value=f'{row[measure]:.6g}', unit=unit) for measure, unit in MEASURES.items()]


def as_users_get_it(model, fast_cfgs: Sequence[Dict]) -> None:
    """An ``'auto'`` MLLA (the model, or its backbone) with the counts of images before compiling that it has by
    default: the rows of ``benchmark.py`` compile at once (:func:`.rows.measured_fast_cfg`). Counts that a
    ``--fast-cfg`` gives are left as given."""
    from ..models.backbones import MLLA
    from ..models.fast.config import FAST_CFG_DEFAULTS
    backbone = model if isinstance(model, MLLA) else getattr(model, 'backbone', None)
    if not isinstance(backbone, MLLA) or backbone.attn_impl != 'auto':
        return
    for key in ('compile_training_after', 'compile_inference_after'):
        if not any(key in fast_cfg for fast_cfg in fast_cfgs):
            backbone.fast_cfg[key] = FAST_CFG_DEFAULTS[key]


def measure_sizes(model, cfg, sizes: Sequence[Tuple[int, int]], batch: int, repeats: int, device: torch.device,
                  precision: str, adamw_form: str) -> Dict:
    """One row's measures (:func:`summarise`) over ``sizes`` with ``repeats`` steps each."""
    if cfg is None:
        torch.backends.cudnn.benchmark = False  # as mmdet's configs train: autotuning every new size costs more
        makers = {size: backbone_batch(batch, size, device) for size in set(sizes)}
    else:
        from ..apis.config import task_of
        preprocessor = model.data_preprocessor.to(device)
        makers = {size: model_batch(task_of(cfg), preprocessor, batch, size, device) for size in set(sizes)}
    optimizer = optimizer_maker(adamw_form, cfg)(model)
    return summarise(step_times(model, makers, sizes, repeats, device, precision, optimizer))


def print_row(row: Dict) -> None:
    if 'error' in row:
        print(f'{row["model"]:<36} {row["precision"]:<5} error: {row["error"]}', flush=True)
        return
    print(f'{row["model"]:<36} {row["precision"]:<5} first size {row["first_size_step_s"]:7.2f} s   new size '
          f'{row["new_size_step_s"]:7.2f} s   seen size {row["seen_size_step_ms"]:8.1f} ms', flush=True)


def run(args, each_row, device: torch.device, results: Optional[str] = None) -> Dict:
    """Measures each row of ``each_row`` (:func:`.benchmark.each_row`), prints it and appends its lines to
    ``results`` as soon as it is measured."""
    info = machine(device)
    sizes = parse_sizes(args.sizes)

    def measure_row(cfg, precision, adamw_form, model, make, name):
        from .rows import task_name
        row = dict(task=task_name(cfg), model=name, input=input_name(args.batch, sizes), precision=precision,
                   adamw=adamw_form, process=os.getpid())
        as_users_get_it(model, args.fast_cfgs)
        try:
            row.update(measure_sizes(model.to(device), cfg, sizes, args.batch, args.repeats, device, precision,
                                     adamw_form))
        except RuntimeError as err:  # e.g. out of memory at a large size: record it, go on with the rest
            row['error'] = f'{type(err).__name__}: {str(err).splitlines()[0]}'
        print_row(row)
        if results:
            append_csv(csv_lines(row, info), results)
        return row

    return each_row(args, device, measure_row, only=args.row)


def run_rows_apart(command: Sequence[str], argv: Sequence[str], rows: int, json_path: Optional[str] = None) -> Dict:
    """Each of a run's ``rows`` measured by a process of its own: ``command`` (the tool) with the run's ``argv``
    and ``--row K``, one after the other; their results, merged (and written to ``json_path``). A row whose process
    fails is reported by index and the rest go on; ``failed`` lists them."""
    merged: Dict = dict(machine=None, args=None, rows=[], failed=[])
    with tempfile.TemporaryDirectory() as folder:
        for index in range(rows):
            row_json = osp.join(folder, f'row{index}.json')
            done = subprocess.run([*command, *argv, '--row', str(index), '--json', row_json])
            if done.returncode != 0 or not osp.exists(row_json):
                print(f'row {index}: its process failed (exit status {done.returncode})', flush=True)
                merged['failed'].append(index)
                continue
            with open(row_json) as f:
                result = json.load(f)
            merged['machine'] = merged['machine'] or result['machine']
            merged['args'] = merged['args'] or {**result['args'], 'row': None, 'json': json_path}
            merged['rows'] += result['rows']
    if json_path:
        write_json(merged, json_path)
    return merged
