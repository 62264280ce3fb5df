"""A hook that writes the wall-clock time at which a process's first training iteration and its first test
iteration end.

Why: ``tools/analysis/wall_time.py`` times whole jobs from their launch; with these lines in a job's log it also
knows, from the same run, how long the user waited for the first step (compiling included) and for the first
result, without a separate process for each.
"""
import re
import time
from typing import Dict

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

MARKER = 'first-iteration-end'
LINE = re.compile(rf'^{MARKER} (train|test) (\d+(?:\.\d+)?)$', re.MULTILINE)


@HOOKS.register_module()
class FirstIterationClockHook(Hook):
    """Prints ``first-iteration-end <train|test> <seconds since the epoch>`` once per mode, after the GPU's work
    for that iteration is done."""

    priority = 'LOWEST'

    def __init__(self):
        self._stamped = set()

    def _stamp(self, mode: str) -> None:
        if mode in self._stamped:
            return
        self._stamped.add(mode)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        print(f'{MARKER} {mode} {time.time():.6f}', flush=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._stamp('train')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._stamp('test')


def first_iteration_times(log_text: str) -> Dict[str, float]:
    """``{'train': t, 'test': t}`` (seconds since the epoch) of the hook's lines in a log; the first of each."""
    times = {}
    for mode, seconds in LINE.findall(log_text):
        times.setdefault(mode, float(seconds))
    return times
