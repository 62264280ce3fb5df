"""Codegen only (Inductor's Triton scheduling on the CPU, kernels not compiled): each stage width's block graph,
forward and backward lowered together, as the GPU test's per-block path compiles them."""
import os, sys, traceback
exec(open('benchmarks/h100_2026-11-27_head/cpu_codegen/codegen_setup.py').read())
from mlla_mm import MLLA
from mlla_mm.models.layers import fast_block
print('mlla_mm from', fast_block.__file__)
fast_block._compiles = lambda x: True
os.environ['MLLA_FAST_STRICT'] = '1'
arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
model = MLLA(arch, attn_impl='fast', cuda_graphs=False, drop_path_rate=0., compile_stages=False,
             compile_backbone=False).train()
for i, layer in enumerate(model.layers):
    block = layer.blocks[0]
    c = 64 * 2 ** i
    h, w = 40 // 2 ** i, 56 // 2 ** i
    x = torch.randn(2, h * w, c, requires_grad=True)
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            block(x, (h, w))
        print(f'stage {i}: ran?!')
    except Exception as e:
        print(f'stage {i} (C={c}):', type(e).__name__, str(e)[:200].replace(chr(10), ' '))
        if 'dummy kernel' not in str(e):
            traceback.print_exc(limit=-8)
