"""FirstIterationClockHook: one line per mode at the first iteration only, and one per mode at the start of its
loop, that first_iteration_times and loop_start_times read back; it is found by type name from mmdet's and mmseg's
registries."""
import time

import pytest

from mlla_mm.engine import FirstIterationClockHook, first_iteration_times, loop_start_times


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


def test_one_line_per_loop_start_that_loop_start_times_reads(capsys):
    hook = FirstIterationClockHook()
    before = time.time()
    hook.before_train(None)
    hook.after_train_iter(None, 0)
    hook.before_test(None)
    hook.before_test(None)  # a second test loop (validation during training, say) writes nothing
    after = time.time()
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3
    starts, ends = loop_start_times(out), first_iteration_times(out)
    assert set(starts) == {'train', 'test'} and set(ends) == {'train'}
    assert before <= starts['train'] <= ends['train'] <= starts['test'] <= after


def test_lines_that_only_look_alike_are_not_read():
    assert first_iteration_times('x first-iteration-end train 5\nfirst-iteration-end val 6\n'
                                 'first-iteration-end test soon\nloop-start train 7\n') == {}
    assert loop_start_times('x loop-start train 5\nloop-start val 6\nfirst-iteration-end train 7\n') == {}


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_built_by_type_name_in_the_toolboxes_registries(scope):
    from mmengine.registry import HOOKS, DefaultScope
    pytest.importorskip(scope)
    with DefaultScope.overwrite_default_scope(scope):
        hook = HOOKS.build(dict(type='FirstIterationClockHook'))
    assert isinstance(hook, FirstIterationClockHook)
