"""Runs Inductor's Triton scheduling/codegen (cpu_backend='triton') for the per-block training graphs, forward and
backward lowered at once, without compiling the kernels: does any graph fail in scheduling or tiling?"""
import os, sys, traceback
import torch, torch._inductor.config as ic, torch._functorch.config as fc
import torch.utils._triton as tu
ic.cpu_backend = 'triton'
ic.compile_threads = 1
fc.force_non_lazy_backward_lowering = True
tu.triton_hash_with_backend = lambda: 'dummy'
import torch._inductor.codegen.triton as ct
if hasattr(ct, 'triton_hash_with_backend'):
    ct.triton_hash_with_backend = lambda: 'dummy'
from torch._inductor import async_compile
class Dummy:
    def __call__(self, *a, **k): raise RuntimeError('dummy kernel (codegen only)')
    def run(self, *a, **k): raise RuntimeError('dummy kernel (codegen only)')
    def __getattr__(self, name): return lambda *a, **k: None
async_compile.AsyncCompile.triton = lambda self, *a, **k: Dummy()
exec(open("benchmarks/h100_2026-11-27_head/cpu_codegen/count_patch.py").read())
from mlla_mm import MLLA
from mlla_mm.models.layers import fast_block
fast_block._compiles = lambda x: True
os.environ['MLLA_FAST_STRICT'] = '1'
stages = '--stages' in sys.argv
arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
fast = MLLA(arch, attn_impl='fast', cuda_graphs=False, drop_path_rate=0., compile_stages=stages,
            compile_backbone='--whole' in sys.argv).train()
x = torch.randn(2, 3, 160, 224)
try:
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = fast(x)
    print('forward ran?!')
except Exception as e:
    msg = str(e)
    print('STOPPED:', type(e).__name__, msg[:300])
    if 'dummy kernel' not in msg:
        traceback.print_exc(limit=-15)
