"""CPU, eager fast path (bf16 autocast): does tests/gpu's assert_as_accurate_as_plain pass the real fast path, and
fail it when broken? From the repository's root: python benchmarks/h100_2026-11-27_diag/cpu/check_criterion.py
none|detach_normaliser|coarse_rope"""
import copy
import sys

import torch

sys.path.insert(0, '.')
sys.path.insert(0, 'tests/gpu')
import test_fast_path_gpu as t  # noqa: E402
from mlla_mm import MLLA  # noqa: E402
from mlla_mm.models.layers import fast_block as fb  # noqa: E402

bug = sys.argv[1]
if bug == 'detach_normaliser':  # a missing gradient term: the normaliser treated as a constant
    import inspect
    line = 'normaliser = 1.0 / ((q32 * k_mean).sum(dim=-1, keepdim=True) + 1e-6)'
    code = inspect.getsource(fb.linear_attention_fast).replace(line, f'normaliser = ({line[13:]}).detach()')
    assert 'detach()' in code
    ns = dict(fb.__dict__); exec(code, ns); fb.linear_attention_fast = ns['linear_attention_fast']
if bug == 'coarse_rope':  # a precision loss: the rotated q and k rounded to steps of 1/64
    src = fb._apply_rope_qk
    fb._apply_rope_qk = lambda qk, c, s: (src(qk, c, s).float() * 64).round().div(64).to(qk.dtype)

def train_step(model, x, dtype, seed):
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
        outs = model(x)
    g = torch.Generator().manual_seed(seed)
    w = [torch.randn(o.shape, generator=g, dtype=torch.float64) for o in outs]
    sum((o.double() * v).sum() for o, v in zip(outs, w)).backward()
    r = {f'output {i}': o.detach().double() for i, o in enumerate(outs)}
    r.update({n: p.grad.double() for n, p in model.named_parameters() if p.grad is not None})
    return r

arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
torch.manual_seed(0)
plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).train()
fast = MLLA(arch, attn_impl='fast', drop_path_rate=0., compile_backbone=False).train()
fast.load_state_dict(plain.state_dict())
ref_m = copy.deepcopy(plain).double()
for seed, h in enumerate((160, 192)):
    x = torch.randn(2, 3, h, 224)
    ref = train_step(ref_m, x.double(), None, seed)
    p, f = train_step(plain, x, torch.bfloat16, seed), train_step(fast, x, torch.bfloat16, seed)
    try:
        t.assert_as_accurate_as_plain(ref, p, f, context=h)
        print(bug, h, 'PASS')
    except AssertionError as e:
        print(bug, h, 'FAIL', str(e)[:200])
