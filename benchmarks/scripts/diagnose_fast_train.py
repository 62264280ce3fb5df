"""Time a few MLLA-T fast-path train steps one by one and print what the compiler and CUDA graphs report.

    python benchmarks/scripts/diagnose_fast_train.py [--cuda-graphs on|off] [--dtype bf16]
"""
import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.getcwd())
from mlla_mm import MLLA  # noqa: E402
from mlla_mm.models.layers import fast_block  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument('--cuda-graphs', default='on')
parser.add_argument('--dtype', default='bf16')
parser.add_argument('--steps', type=int, default=8)
args = parser.parse_args()
warnings.simplefilter('always')
dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}[args.dtype]
model = MLLA('tiny', drop_path_rate=0., attn_impl='fast', cuda_graphs=args.cuda_graphs == 'on').cuda().train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
x = torch.randn(2, 3, 800, 1344, device='cuda')
for step in range(args.steps):
    torch.cuda.synchronize()
    t0 = time.time()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype != torch.float32):
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    optimizer.step()
    torch.cuda.synchronize()
    print(f'step {step}: {1e3 * (time.time() - t0):.1f} ms, failed={fast_block._failed}', flush=True)
