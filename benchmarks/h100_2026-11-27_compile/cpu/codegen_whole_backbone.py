"""CPU: how long Inductor takes to trace, lower and generate Triton code for MLLA-T's whole-backbone training graphs
(forward and backward lowered together), the kernels never compiled (codegen_setup.py of
benchmarks/h100_2026-11-27_head/cpu_codegen/, whose stand-in kernel raises when the first would run). Run from the
root of the tree to time, which decides the code measured (the images as tiles, or not):
    MLLA_FAST_STRICT=1 python .../codegen_whole_backbone.py bf16"""
import sys
import time
import traceback

sys.path.insert(0, '.')
exec(open(sys.argv[2] if len(sys.argv) > 2 else
          'benchmarks/h100_2026-11-27_head/cpu_codegen/codegen_setup.py').read())
from mlla_mm import MLLA  # noqa: E402
from mlla_mm.models.layers import fast_block  # noqa: E402

print('mlla_mm from', fast_block.__file__, flush=True)
fast_block._compiles = lambda x: True
dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}[sys.argv[1]]
torch.manual_seed(0)
model = MLLA('tiny', attn_impl='fast', drop_path_rate=0.2, cuda_graphs=False).train()
x = torch.randn(2, 3, 224, 320)
t0 = time.time()
try:
    with torch.autocast('cpu', dtype=dtype):
        outs = model(x)
    print('ran?!')
except RuntimeError as error:
    print(f'{sys.argv[1]}: traced, lowered and generated in {time.time() - t0:.1f} s, then: {str(error)[:120]}',
          flush=True)
    if 'dummy kernel' not in str(error):
        traceback.print_exc()
