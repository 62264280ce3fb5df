"""FirstIterationClockHook: one line per mode, at the first iteration only, that first_iteration_times reads
back; it is found by type name from mmdet's and mmseg's registries."""
import time

import pytest

from mlla_mm.engine import FirstIterationClockHook, first_iteration_times


def test_one_line_per_mode_at_the_first_iteration_only(capsys):
    hook = FirstIterationClockHook()
    before = time.time()
    for batch_idx in range(3):
        hook.after_train_iter(None, batch_idx)
    hook.after_test_iter(None, 0)
    hook.after_test_iter(None, 1)
    after = time.time()
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 2
    times = first_iteration_times('some log line\n' + out + 'first-iteration-end train 1.0\n')
    assert set(times) == {'train', 'test'}
    assert before <= times['train'] <= times['test'] <= after  # the first of each line, not the later one


def test_lines_that_only_look_alike_are_not_read():
    assert first_iteration_times('x first-iteration-end train 5\nfirst-iteration-end val 6\n'
                                 'first-iteration-end test soon\n') == {}


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_built_by_type_name_in_the_toolboxes_registries(scope):
    from mmengine.registry import HOOKS, DefaultScope
    pytest.importorskip(scope)
    with DefaultScope.overwrite_default_scope(scope):
        hook = HOOKS.build(dict(type='FirstIterationClockHook'))
    assert isinstance(hook, FirstIterationClockHook)
