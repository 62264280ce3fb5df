"""Lets the tools of this repository run with its own environment, the ``.venv`` that `make demo` / `make test`
build at the repository root.

A tool started by a Python that cannot import torch and mmengine (``python tools/train.py ...`` in a shell where
``.venv`` is not active) runs itself again with ``.venv/bin/python``, the same arguments and environment. Without
a ``.venv`` it stops with a message that says how to make one. Imported by the entry points of tools/ before
anything that needs torch; it needs nothing but the standard library.
"""
import importlib.util
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VENV_PYTHON = osp.join(REPO, '.venv', 'bin', 'python')
REQUIRED = ('torch', 'mmengine')
# set for the re-run, so that a .venv that lacks torch too ends with the message instead of running itself again
RERUN_MARK = 'MLLA_MM_RERUN_IN_VENV'


def missing_modules(names=REQUIRED):
    """The modules of ``names`` that this interpreter cannot import."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def use_repo_venv(script=None):
    """Return if this interpreter has torch and mmengine; else run ``script`` (default: the running one) with the
    repository's ``.venv/bin/python`` in place of this process, or exit with a message naming what is missing."""
    missing = missing_modules()
    if not missing:
        os.environ.pop(RERUN_MARK, None)
        return
    script = osp.abspath(script or sys.argv[0])
    if os.access(VENV_PYTHON, os.X_OK) and not os.environ.get(RERUN_MARK):
        os.environ[RERUN_MARK] = '1'
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(VENV_PYTHON, [VENV_PYTHON, script, *sys.argv[1:]])
    if os.environ.get(RERUN_MARK):
        where = f'{VENV_PYTHON} cannot import {", ".join(missing)} either: run `make env` in {REPO} to finish it'
    else:
        where = f'there is no {VENV_PYTHON}: run `make env` in {REPO} to make it (the tools then use it)'
    sys.exit(f'{osp.basename(script)}: {sys.executable} cannot import {", ".join(missing)}, and {where}, '
             f'or start the tool with a Python that has the project installed')
