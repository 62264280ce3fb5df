"""Benchmark results as data: the machine they were measured on, JSON, and rows appended to a results CSV.

A results CSV holds one measured value per line, with the date, the code's commit, the card and torch version
next to it, so that tables can be generated from the files and rows of other cards and versions sit side by side:
``date,commit,card,torch,task,model,input,precision,measure,value,unit``.
"""
import csv
import datetime
import json
import os
import os.path as osp
import platform
import subprocess
from typing import Dict, Iterable, List, Optional

import torch

CSV_COLUMNS = ('date', 'commit', 'card', 'torch', 'task', 'model', 'input', 'precision', 'measure', 'value', 'unit')
# a benchmark row's key -> (the CSV's measure, its unit); the training step's key depends on its optimizer
MEASURES = {'infer_ms': ('infer_ms', 'ms'), 'images_per_s': ('throughput_img_s', 'img/s'),
            'train_peak_mem_mib': ('peak_mem_mib', 'MiB')}
# the first call's wall time (mostly compiling, on the fast path): written with the compile cache's state, cold
# (empty) or warm (filled by an earlier run of the same rows), as first_step_cold_s, first_infer_warm_s, ...
FIRST_CALL_MEASURES = {'first_train_step_s': 'first_step', 'first_infer_s': 'first_infer'}
COMPILE_CACHE_STATES = ('cold', 'warm')
TRAIN_STEP_MEASURES = {'none': 'train_step_ms', 'config': 'train_step_ms', 'fused': 'train_step_fused_adamw_ms',
                       'foreach': 'train_step_foreach_adamw_ms'}


def git_commit(path: str = osp.dirname(osp.abspath(__file__))) -> str:
    """The short hash of the checkout's HEAD that holds ``path`` (this package), or ``'unknown'`` outside one."""
    try:
        result = subprocess.run(['git', '-C', path, 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else 'unknown'


def card_name(device: torch.device) -> str:
    """The GPU's name (``torch.cuda.get_device_name``) or, on the CPU, ``'cpu <processor>'``."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu {platform.processor() or platform.machine()}'


def machine(device: torch.device) -> Dict:
    """Where and with what a run was measured: date, commit, card, torch, CUDA and Python versions."""
    info = dict(date=datetime.date.today().isoformat(), commit=git_commit(), card=card_name(device),
                torch=torch.__version__, python=platform.python_version())
    if device.type == 'cuda':
        info['cuda'] = torch.version.cuda
    return info


def write_json(results: Dict, path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)


def csv_rows(row: Dict, info: Dict, compile_cache: Optional[str] = None) -> List[Dict]:
    """The results-CSV lines of one benchmark row (``row``: its ``task``, ``model``, ``input``, ``precision``,
    ``adamw`` and measured keys; ``info``: :func:`machine`). The training step's measure names its optimizer
    (``train_step_ms``: forward and backward alone, or the config's optimizer as training steps it); its peak memory
    and first step are written with ``train_step_ms`` only. The first calls' times are written only with
    ``compile_cache`` ('cold' or 'warm'), whose state they depend on. Rows with an error write nothing."""
    if 'error' in row:
        return []
    if compile_cache not in (None, *COMPILE_CACHE_STATES):
        raise ValueError(f'compile_cache must be one of {COMPILE_CACHE_STATES} or None, got {compile_cache!r}')
    plain_step = TRAIN_STEP_MEASURES.get(row.get('adamw')) == 'train_step_ms'
    values = [(measure, row[key], unit) for key, (measure, unit) in MEASURES.items()
              if key in row and (key != 'train_peak_mem_mib' or plain_step)]
    if compile_cache:
        values += [(f'{measure}_{compile_cache}_s', row[key], 's') for key, measure in FIRST_CALL_MEASURES.items()
                   if key in row and (key != 'first_train_step_s' or plain_step)]
    if 'train_step_ms' in row:
        values.insert(0, (TRAIN_STEP_MEASURES[row['adamw']], row['train_step_ms'], 'ms'))
    return [dict(date=info['date'], commit=info['commit'], card=info['card'], torch=info['torch'], task=row['task'],
                 model=row['model'], input=row['input'], precision=row['precision'], measure=measure,
                 value=f'{value:.6g}', unit=unit) for measure, value, unit in values]


def check_results_file(path: str) -> bool:
    """Whether ``path`` is a results CSV with lines already (False: absent or empty); a ValueError naming the file
    and its header if it holds something else. Checked before measuring, so that no measurement is lost."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    with open(path, newline='') as f:
        header = next(csv.reader(f), [])
    if tuple(header) != CSV_COLUMNS:
        raise ValueError(f'{path}: its columns {header} are not a results file\'s {list(CSV_COLUMNS)}; '
                         'give another file')
    return True


def append_csv(lines: Iterable[Dict], path: str) -> int:
    """Append ``lines`` to the results CSV at ``path`` (its header first if the file is new or empty); returns how
    many. Lines end in ``\\n``, as in the committed results files. An existing file with other columns is left as it
    is (:func:`check_results_file`)."""
    lines = list(lines)
    new = not check_results_file(path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator='\n')
        if new:
            writer.writeheader()
        writer.writerows(lines)
    return len(lines)


def check_results_argument(parser, path: Optional[str]) -> None:
    """A command line's ``--results PATH`` checked before anything is measured: ``parser.error`` (exit 2) naming the
    file if it is something other than a results CSV; nothing when ``path`` is None."""
    if path:
        try:
            check_results_file(path)
        except ValueError as err:
            parser.error(f'--results: {err}')
