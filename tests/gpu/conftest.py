"""Shared by the GPU tests: with ``MLLA_GPU_FAILURES=PATH``, each failure's report is appended to PATH the moment
it arrives, not only in pytest's summary at the end.

Why: the device calls run these tests under a deadline, and when it interrupts pytest with several xdist workers,
the summary (which holds the tracebacks) is lost: so it was for two failures on an H100 in the seventh session of
2026-11-27, whose cause is still unknown (benchmarks/h100_2026-11-27_head/README.md).
"""
import os


def pytest_runtest_logreport(report):
    path = os.environ.get('MLLA_GPU_FAILURES')
    # With xdist, workers report to the controller, which calls this hook again: write there (or without xdist) only.
    if path and report.failed and 'PYTEST_XDIST_WORKER' not in os.environ:
        with open(path, 'a') as log:
            log.write(f'==== {report.nodeid} ({report.when}, {report.duration:.0f} s)\n{report.longreprtext}\n\n')
