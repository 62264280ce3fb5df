"""Run a Python script as ``__main__``, with an optional hook that runs when it ends, normally or by SIGTERM
(``timeout``'s signal, turned into a normal exit so that the hook still runs). Shared by compile_cache.py and
sample_stacks.py."""
import atexit
import runpy
import signal
import sys
from typing import Callable, Optional, Sequence


def run_as_main(script: str, args: Sequence[str], on_exit: Optional[Callable[[], None]] = None) -> None:
    if on_exit is not None:
        atexit.register(on_exit)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.argv = [script, *args]
    runpy.run_path(script, run_name='__main__')
