"""The qk gradients' precision of the linear attention alone: the plain module against the fast path's function,
bf16 autocast, eager, on the CPU, both against float64. From the repository's root:
python benchmarks/h100_2026-11-27_diag/cpu/attn_harness.py base|rope32 [channels] [draws]"""
import statistics
import sys

import torch
from mlla_mm.models.layers.linear_attention import LinearAttention
from mlla_mm.models.layers import fast_block as fb

variant = sys.argv[1] if len(sys.argv) > 1 else 'base'
if variant == 'rope32':  # RoPE result kept in float32, as the plain path does
    def rope32(qk, cos, sin):
        b, n, c2 = qk.shape
        pairs = qk.float().view(b, n, 2, c2 // 4, 2)
        real, imag = pairs[..., 0], pairs[..., 1]
        cos, sin = cos.float().view(n, 1, -1), sin.float().view(n, 1, -1)
        return torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1).view(b, n, c2)
    fb._apply_rope_qk = rope32

def rel(a, b):
    return ((a - b).norm() / b.norm()).item()

C, heads, H, W = int(sys.argv[2]) if len(sys.argv) > 2 else 64, 2, 24, 28
rows = []
for draw in range(int(sys.argv[3]) if len(sys.argv) > 3 else 30):
    torch.manual_seed(draw)
    attn = LinearAttention(C, heads)
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.nn.functional.silu(torch.randn(2, H * W, C) * 1.5)
    dout = torch.randn(2, H * W, C, dtype=torch.float64)
    res = {}
    for name in ('ref', 'plain', 'fast'):
        m = attn.double() if name == 'ref' else attn.float()
        m.zero_grad(set_to_none=True)
        xi = (x.double() if name == 'ref' else x).clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=name != 'ref'):
            if name == 'fast':
                out = fb.linear_attention_fast(xi, H, W, heads, m.qk.weight, m.qk.bias, m.lepe.weight, m.lepe.bias)
            else:
                out = m(xi, (H, W))
        (out.double() * dout).sum().backward()
        g = m.qk.bias.grad.double()
        res[name] = dict(bq=g[:C].clone(), bk=g[C:].clone(), w=m.qk.weight.grad.double().clone(),
                         x=xi.grad.double().clone(), out=out.double().detach())
    rows.append({k: (rel(res['fast'][k], res['ref'][k]), rel(res['plain'][k], res['ref'][k])) for k in res['ref']})
for k in rows[0]:
    ratios = [r[k][0] / r[k][1] for r in rows]
    fast_err, plain_err = statistics.mean(r[k][0] for r in rows), statistics.mean(r[k][1] for r in rows)
    print(f'{variant} C={C} {k}: fast err mean {fast_err:.3e}, plain {plain_err:.3e}; '
          f'ratio mean {statistics.mean(ratios):.2f} max {max(ratios):.2f}')
