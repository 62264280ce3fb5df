"""How many graphs the compiled whole backbone traces for train steps of several batch sizes and image sizes, on
the CPU (tracing only: the test suite's counting backend, no code generation). A small MLLA (16 channels, one block
a stage), so it takes about 2 minutes on 2 cores.

    python benchmarks/h100_2026-11-28_training/duck_probe.py [--duck]

``--duck`` runs with Dynamo's duck sizing on, as before ``fast_block._without_duck_sizes``. Printed: batch, height,
width and the forward and backward graphs counted so far.
"""
import os.path as osp
import sys

import torch

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..')
sys.path[:0] = [ROOT, osp.join(ROOT, 'tests')]

import test_fast_path  # noqa: E402  its counted_compiles fixture
from mlla_mm import MLLA  # noqa: E402
from mlla_mm.models.layers import fast_block  # noqa: E402


class Patcher:  # what the fixture needs of pytest's monkeypatch
    def setattr(self, obj, name, value):
        setattr(obj, name, value)


graphs = next(test_fast_path.counted_compiles.__wrapped__(Patcher()))
fast_block._compiles = lambda x: True  # the CUDA-only switch, here on the CPU
if '--duck' in sys.argv:
    fast_block._without_duck_sizes = lambda compiled: compiled
torch.manual_seed(0)
model = MLLA(dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 16]), attn_impl='fast',
             drop_path_rate=0.1, cuda_graphs=False)
for batch, height, width in [(4, 128, 128), (2, 128, 128), (3, 96, 160), (1, 128, 96)]:
    model.zero_grad()
    sum(out.mean() for out in model.train()(torch.randn(batch, 3, height, width))).backward()
    print(batch, height, width, len(graphs), flush=True)
