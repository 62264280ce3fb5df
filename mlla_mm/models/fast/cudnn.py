"""cuDNN without its autotuning, for the backbone's plain path under ``attn_impl='auto'``.

With ``torch.backends.cudnn.benchmark`` on (mmseg's configs turn it on), cuDNN times every candidate kernel of
every convolution at the first call of each shape. For MLLA's depthwise convolutions (forward and backward, stage by
stage) that first-call timing costs far more than the kernels it picks save in a job's first minutes, and
``'auto'`` moves to its compiled path before a long job's steps add up to it. cuDNN's heuristics pick the kernels
instead; the results are the same function.
"""
import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def without_autotuning() -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` off inside, restored after (also when the body raises)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
