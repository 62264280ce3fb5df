"""Which FX node makes torch 2.14's Inductor fail in get_fill_order for the whole-backbone graph (CPU, Triton codegen)."""
import sys, time
sys.path.insert(0, '.')
exec(open('benchmarks/h100_2026-11-27_head/cpu_codegen/codegen_setup.py').read())
import torch._inductor.graph as g
_run_node = g.GraphLowering.run_node
def run_node(self, n):
    try:
        return _run_node(self, n)
    except Exception as e:
        if 'Relational' in str(e) or 'Relational' in repr(e.__cause__):
            print('FAILED NODE:', n.format_node(), '\nval:', getattr(n.meta.get('val'), 'shape', None),
                  getattr(n.meta.get('val'), 'stride', lambda: None)(), '\nusers:', list(n.users)[:5],
                  '\nis_backward:', getattr(self, 'is_backward', '?'), '\nstack:', n.meta.get('stack_trace', '')[-1500:], flush=True)
        raise
g.GraphLowering.run_node = run_node
from mlla_mm import MLLA
from mlla_mm.models.layers import fast_block
fast_block._compiles = lambda x: True
torch.manual_seed(0)
model = MLLA('tiny', attn_impl='fast', drop_path_rate=0.2, cuda_graphs=False).train()
x = torch.randn(2, 3, 224, 320)
t0 = time.time()
try:
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model(x)
except Exception as error:
    print(f'after {time.time() - t0:.1f} s: {type(error).__name__}: {str(error)[:300]}', flush=True)
