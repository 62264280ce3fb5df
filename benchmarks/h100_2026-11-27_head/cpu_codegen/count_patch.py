import torch._inductor.graph as g
_orig = g.GraphLowering.codegen
def counted(self, *a, **k):
    print('codegen: backward=%s' % getattr(self, 'is_backward', '?'), flush=True)
    out = _orig(self, *a, **k)
    print('  codegen ok', flush=True)
    return out
g.GraphLowering.codegen = counted
