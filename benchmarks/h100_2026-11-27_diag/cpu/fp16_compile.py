"""CPU: the whole MLLA-T backbone's training graphs (compile_backbone, the default) under bf16 and fp16 autocast,
traced by Dynamo and AOT autograd into a counting backend (no Inductor): how many graphs, of how many nodes, in how
long. Why: on the H100 the fp16 training graphs compile far longer than the bf16 ones. From the repository's root:
python benchmarks/h100_2026-11-27_diag/cpu/fp16_compile.py bf16|fp16"""
import sys
import time

import torch
from torch._dynamo.backends.common import aot_autograd
from torch._dynamo.backends.debugging import boxed_nop
from torch._functorch.partitioners import min_cut_rematerialization_partition

sys.path.insert(0, '.')
from mlla_mm import MLLA  # noqa: E402
from mlla_mm.models.layers import fast_block  # noqa: E402

dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}[sys.argv[1]]
graphs = []
real_compile = torch.compile


def count(gm, example_inputs):
    graphs.append(gm)
    return boxed_nop(gm, example_inputs)


def compile_counting(fn, **kwargs):  # fast_block's own compile calls, its options dropped, Inductor's partitioner
    kwargs.pop('options')
    return real_compile(fn, **kwargs, backend=aot_autograd(fw_compiler=count, bw_compiler=count,
                                                           partition_fn=min_cut_rematerialization_partition))


torch.compile = compile_counting
fast_block._compile_enabled = lambda: True
fast_block._compiles = lambda x: True
torch.manual_seed(0)
model = MLLA('tiny', attn_impl='fast', drop_path_rate=0.2, cuda_graphs=False).train()
for step in range(2):
    x = torch.randn(2, 3, 224, 320)
    t0 = time.time()
    with torch.autocast('cpu', dtype=dtype):
        outs = model(x)
    loss = sum(o.float().mean() for o in outs) * 65536.0  # as GradScaler scales an fp16 loss
    loss.backward()
    print(sys.argv[1], 'step', step, f'{time.time() - t0:.1f} s', len(graphs), 'graphs',
          [len(g.graph.nodes) for g in graphs], flush=True)
