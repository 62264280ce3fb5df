"""Profile the MLLA-T backbone train step / inference on CUDA: top kernels by GPU time."""
import os
import sys
import torch
sys.path.insert(0, os.getcwd())
from mlla_mm import MLLA
from torch.profiler import profile, ProfilerActivity

impl = sys.argv[1] if len(sys.argv) > 1 else 'plain'
dev = 'cuda'
kw = {}
try:
    m = MLLA(arch='tiny', drop_path_rate=0.0, attn_impl=impl).to(dev)
except TypeError:
    m = MLLA(arch='tiny', drop_path_rate=0.0).to(dev)
x = torch.randn(2, 3, 800, 1344, device=dev)
for dt in [torch.bfloat16, torch.float32]:
    def step():
        with torch.autocast('cuda', dtype=dt, enabled=dt != torch.float32):
            out = m(x)
            loss = sum(o.float().mean() for o in out)
        loss.backward()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    print('=====', impl, dt)
    print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=25, max_name_column_width=90))
