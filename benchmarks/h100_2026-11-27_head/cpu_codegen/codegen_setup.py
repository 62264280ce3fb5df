"""Set-up for codegen_per_width.py (exec'd by it): Inductor generates Triton code for the CPU
(cpu_backend='triton'), lowers the backward with the forward, never compiles a kernel (a stand-in raises when the
first one would run), and says when each graph's code generation starts and ends."""
import torch
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config
import torch._inductor.codegen.triton as triton_codegen
import torch._inductor.graph as inductor_graph
import torch.utils._triton as torch_triton
from torch._inductor import async_compile

inductor_config.cpu_backend = 'triton'
inductor_config.compile_threads = 1
functorch_config.force_non_lazy_backward_lowering = True
# no Triton driver without a GPU: the backend hash is asked for when a kernel's code is generated
torch_triton.triton_hash_with_backend = lambda: 'dummy'
if hasattr(triton_codegen, 'triton_hash_with_backend'):
    triton_codegen.triton_hash_with_backend = lambda: 'dummy'


class StandInKernel:
    def __call__(self, *args, **kwargs):
        raise RuntimeError('dummy kernel (codegen only)')

    run = __call__

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


async_compile.AsyncCompile.triton = lambda self, *args, **kwargs: StandInKernel()
_codegen = inductor_graph.GraphLowering.codegen


def reported_codegen(self, *args, **kwargs):
    print('codegen: backward=%s' % getattr(self, 'is_backward', '?'), flush=True)
    out = _codegen(self, *args, **kwargs)
    print('  codegen ok', flush=True)
    return out


inductor_graph.GraphLowering.codegen = reported_codegen
