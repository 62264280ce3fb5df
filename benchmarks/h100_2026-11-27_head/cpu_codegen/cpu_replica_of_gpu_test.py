"""CPU replica of tests/gpu/test_fast_path_gpu.py::test_backbone_train_steps_with_cuda_graphs_match_plain."""
import copy, sys, time
import torch
from mlla_mm import MLLA
from mlla_mm.models.layers import fast_block

def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()

def train_step(model, x, dtype, seed):
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        outs = model(x)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o.shape, generator=g, dtype=torch.float64) for o in outs]
    sum((o.double() * w).sum() for o, w in zip(outs, weights)).backward()
    names = [n for n, p in model.named_parameters() if p.grad is not None]
    grads = [p.grad.double() for p in model.parameters() if p.grad is not None]
    return [o.detach().double() for o in outs] + grads, ['out%d' % i for i in range(len(outs))] + names

fast_block._compiles = lambda x: True
frozen, stages, impl = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3]
arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
torch.manual_seed(0)
plain = MLLA(arch, attn_impl='plain', drop_path_rate=0., frozen_stages=frozen).train()
fast = MLLA(arch, attn_impl=impl, drop_path_rate=0., frozen_stages=frozen, compile_stages=stages,
            compile_backbone=False).train()
fast.load_state_dict(plain.state_dict())
reference = copy.deepcopy(plain).double()
x = torch.randn(2, 3, 160, 224)
t = time.time()
ref, names = train_step(reference, x.double(), None, 0)
p, _ = train_step(plain, x, torch.bfloat16, 0)
f, _ = train_step(fast, x, torch.bfloat16, 0)
print('took', time.time() - t)
largest = max(r.norm() for r in ref)
worst = []
for name, r, pp, ff in zip(names, ref, p, f):
    if r.norm() < 1e-10 * largest:
        continue
    ef, ep = rel(ff, r), rel(pp, r)
    worst.append((ef - (3 * ep + 2e-2), name, ef, ep))
for w in sorted(worst)[-8:]:
    print('%-45s fast %.4f plain %.4f margin %.4f %s' % (w[1], w[2], w[3], w[0], 'FAIL' if w[0] > 0 else ''))
