"""CPU: Dynamo + AOT + Inductor Triton codegen of MLLA-T's whole-backbone training graphs at a given input,
duck sizing on or off; kernels never compiled."""
import sys, time, traceback
sys.path.insert(0, '.')
exec(open('benchmarks/h100_2026-11-27_head/cpu_codegen/codegen_setup.py').read())
import torch.fx.experimental._config as fx_config
from mlla_mm import MLLA
from mlla_mm.models.layers import fast_block
dtype, batch, height, width, duck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fx_config.use_duck_shape = bool(duck)
fast_block._compiles = lambda x: True
torch.manual_seed(0)
model = MLLA('tiny', attn_impl='fast', drop_path_rate=0.2, cuda_graphs=False).train()
x = torch.randn(batch, 3, height, width)
t0 = time.time()
try:
    with torch.autocast('cpu', dtype={'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype]):
        model(x)
    print('ran?!')
except RuntimeError as error:
    print(f'{sys.argv[1:]}: traced, lowered and generated in {time.time() - t0:.1f} s, then: {str(error)[:100]}',
          flush=True)
    if 'dummy kernel' not in str(error):
        traceback.print_exc()
from torch._dynamo.utils import compile_times
print(compile_times(repr='str', aggregate=True)[:3000])
