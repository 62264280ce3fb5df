"""A hook that writes the wall-clock time at which a process's training and test loops start, and at which their
first iterations end.

Why: ``tools/analysis/wall_time.py`` times whole jobs from their launch; with these lines in a job's log it also
knows, from the same run, how long the user waited for the first step (compiling included) and for the first
result, and how much of that wait was start-up (imports, building the runner) before the loop began, without a
separate process for each.
"""
import re
import time
from typing import Dict

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

MARKER = 'first-iteration-end'
LINE = re.compile(rf'^{MARKER} (train|test) (\d+(?:\.\d+)?)$', re.MULTILINE)
START_MARKER = 'loop-start'
START_LINE = re.compile(rf'^{START_MARKER} (train|test) (\d+(?:\.\d+)?)$', re.MULTILINE)


@HOOKS.register_module()
class FirstIterationClockHook(Hook):
    """Prints ``loop-start <train|test> <seconds since the epoch>`` when a loop of that mode starts, and
    ``first-iteration-end <train|test> <seconds>`` after the GPU's work for its first iteration is done; each once
    per mode."""

    priority = 'LOWEST'

    def __init__(self):
        self._stamped = set()

    def _stamp(self, marker: str, mode: str) -> None:
        if (marker, mode) in self._stamped:
            return
        self._stamped.add((marker, mode))
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        print(f'{marker} {mode} {time.time():.6f}', flush=True)

    def before_train(self, runner) -> None:
        self._stamp(START_MARKER, 'train')

    def before_test(self, runner) -> None:
        self._stamp(START_MARKER, 'test')

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._stamp(MARKER, 'train')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._stamp(MARKER, 'test')


def first_iteration_times(log_text: str) -> Dict[str, float]:
    """``{'train': t, 'test': t}`` (seconds since the epoch) of the hook's first-iteration lines in a log; the first
    of each."""
    return _first_of_each(LINE, log_text)


def loop_start_times(log_text: str) -> Dict[str, float]:
    """``{'train': t, 'test': t}`` (seconds since the epoch) of the hook's loop-start lines in a log; the first of
    each."""
    return _first_of_each(START_LINE, log_text)


def _first_of_each(line: re.Pattern, log_text: str) -> Dict[str, float]:
    times = {}
    for mode, seconds in line.findall(log_text):
        times.setdefault(mode, float(seconds))
    return times
