"""Shared by the GPU tests: with ``MLLA_GPU_FAILURES=PATH``, each failure's report is appended to PATH the moment
it arrives, not only in pytest's summary at the end; the fixture :func:`captures_fail`.

Why the report: when a run with several xdist workers is interrupted (a time limit, say), pytest's summary, which
holds the tracebacks, is lost.
"""
import os

import pytest
import torch


@pytest.fixture
def captures_fail(monkeypatch):
    """Every CUDA-graph capture of the backbone's fast path fails as CUDA makes it fail: the backbone's features
    synchronise with the host while capturing (and run as before otherwise)."""
    from mlla_mm.models.fast import backbone
    features = backbone.features

    def syncs_while_capturing(model, x, cfg):
        if torch.cuda.is_current_stream_capturing():
            torch.cuda.synchronize()
        return features(model, x, cfg)

    monkeypatch.setattr(backbone, 'features', syncs_while_capturing)


def pytest_runtest_logreport(report):
    path = os.environ.get('MLLA_GPU_FAILURES')
    # With xdist, workers report to the controller, which calls this hook again: write there (or without xdist) only.
    if path and report.failed and 'PYTEST_XDIST_WORKER' not in os.environ:
        with open(path, 'a') as log:
            log.write(f'==== {report.nodeid} ({report.when}, {report.duration:.0f} s)\n{report.longreprtext}\n\n')
