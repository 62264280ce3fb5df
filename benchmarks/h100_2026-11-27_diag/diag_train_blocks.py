"""Diagnosis of test_backbone_train_steps_with_cuda_graphs_match_plain[-1-False-{False,True}-False] on the GPU:
the test's steps, every check printed (not asserted), worst cases listed.

    python diag_train_blocks.py [--stages] [--no-graphs] [--no-coalesce] [--fp32]
"""
import argparse
import copy
import os
import sys
import traceback

import torch

sys.path.insert(0, os.getcwd())
from mlla_mm import MLLA  # noqa: E402
from mlla_mm.models.layers import fast_block  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument('--stages', action='store_true')
parser.add_argument('--no-graphs', action='store_true')
parser.add_argument('--no-coalesce', action='store_true')
parser.add_argument('--fp32', action='store_true', help='no autocast in the fast and plain steps')
args = parser.parse_args()
os.environ['MLLA_FAST_STRICT'] = '1'

if args.no_coalesce:
    original = fast_block._compile_once

    def no_coalesce(key, what, fn, cuda_graphs, dynamic_weights, inductor_options=None, **settings):
        options = dict(inductor_options or {}, **{'triton.coalesce_tiling_analysis': False})
        return original(key, what, fn, cuda_graphs, dynamic_weights, inductor_options=options, **settings)
    fast_block._compile_once = no_coalesce


def train_step(model, x, dtype, seed):
    model.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=dtype, enabled=dtype is not None):
        outs = model(x)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    weights = [torch.randn(o.shape, generator=generator, device=x.device, dtype=torch.float64) for o in outs]
    sum((o.double() * w).sum() for o, w in zip(outs, weights)).backward()
    names = [f'out{i}' for i in range(len(outs))]
    names += [n for n, p in model.named_parameters() if p.grad is not None]
    grads = [p.grad.double() for p in model.parameters() if p.grad is not None]
    return names, [o.detach().double() for o in outs] + grads


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


print(vars(args), torch.__version__, torch.cuda.get_device_name(), flush=True)
dtype = None if args.fp32 else torch.bfloat16
try:
    arch = dict(embed_dims=64, depths=[1, 2, 2, 1], num_heads=[2, 4, 8, 16])
    torch.manual_seed(0)
    plain = MLLA(arch, attn_impl='plain', drop_path_rate=0.).cuda().train()
    fast = MLLA(arch, attn_impl='fast', cuda_graphs=not args.no_graphs, drop_path_rate=0., triton_dwconv=False,
                compile_convs=False, compile_stages=args.stages, compile_backbone=False).cuda().train()
    fast.load_state_dict(plain.state_dict())
    reference = copy.deepcopy(plain).double()
    inputs = [torch.randn(2, 3, height, 224, device='cuda') for height in (160, 192)]
    first = {}
    bad = 0
    for step in range(4):
        shape = step % 2
        x = inputs[shape]
        names, got = train_step(fast, x, dtype, seed=shape)
        if shape in first:
            errs = [(rel(a, f), n) for n, f, a in zip(names, first[shape], got)]
            worst = sorted(errs, reverse=True)[:5]
            bad += sum(e >= 1e-3 for e, _ in errs)
            print(f'step {step} replay vs first: {sum(e >= 1e-3 for e, _ in errs)} of {len(errs)} >= 1e-3; worst',
                  [(n, f'{e:.2e}') for e, n in worst], flush=True)
            continue
        first[shape] = got
        _, ref = train_step(reference, x.double(), None, seed=shape)
        _, got_plain = train_step(plain, x, dtype, seed=shape)
        largest = max(r.norm() for r in ref)
        rows = []
        for n, r, p, f in zip(names, ref, got_plain, got):
            finite = bool(torch.isfinite(f).all())
            if r.norm() < 1e-10 * largest:
                continue
            ef, ep = rel(f, r), rel(p, r)
            ok = finite and ef < 3 * ep + 2e-2
            bad += not ok
            rows.append((ef / (3 * ep + 2e-2), n, ef, ep, finite, ok))
        print(f'step {step} (shape {tuple(x.shape)}): {sum(not r[-1] for r in rows)} of {len(rows)} fail', flush=True)
        for ratio, n, ef, ep, finite, ok in sorted(rows, reverse=True)[:12]:
            print(f'   {"FAIL" if not ok else "ok  "} {n}: fast {ef:.3e} plain {ep:.3e} (of bound {ratio:.2f})'
                  f'{"" if finite else " NONFINITE"}', flush=True)
    print('compiled keys', list(fast_block._compiled), 'failed', fast_block._failed)
    print('RESULT', 'FAIL' if bad else 'PASS', bad)
except Exception:
    traceback.print_exc()
    print('RESULT EXCEPTION')
