import torch, torch.nn.functional as F, triton
import importlib.util
spec = importlib.util.spec_from_file_location('tdw', 'mlla_mm/models/layers/triton_dwconv.py')
T = importlib.util.module_from_spec(spec); spec.loader.exec_module(T)
print(torch.__version__, triton.__version__, flush=True)
def check(b, h, w, c, dtype=torch.float32, **launch):
    torch.manual_seed(0)
    x = torch.randn(b, h * w, c, device='cuda', dtype=torch.float64, requires_grad=True)
    wt = torch.randn(c, 1, 3, 3, device='cuda', dtype=torch.float64, requires_grad=True)
    bs = torch.randn(c, device='cuda', dtype=torch.float64, requires_grad=True)
    img = x.reshape(b, h, w, c).permute(0, 3, 1, 2)
    ref = F.conv2d(img, wt, bs, padding=1, groups=c).permute(0, 2, 3, 1).reshape(b, h * w, c)
    g = torch.randn_like(ref)
    gx, gw, gb = torch.autograd.grad(ref, (x, wt, bs), g)
    X, W, B, G = (t.detach().to(dtype) for t in (x, wt, bs, g))
    out = T.dwconv3x3(X, W, B, h, w)
    gx2 = T.dwconv3x3(G, W, None, h, w, mirror=True)
    gw2, gb2 = T.dwconv3x3_weight_grad(G, X, h, w)
    torch.cuda.synchronize()
    errs = [((a.double() - r).abs().max() / r.abs().max()).item() for a, r in [(out, ref), (gx2, gx), (gw2, gw), (gb2, gb)]]
    extra = ''
    if errs[2] > 1e-4:
        bad = ((gw2.double() - gw).abs() / gw.abs().max()).reshape(c, 9).amax(0)
        extra = ' per-tap ' + ' '.join(f'{v:.1e}' for v in bad.tolist())
    print((b, h, w, c), str(dtype)[6:], launch, ' '.join(f'{e:.1e}' for e in errs), extra, flush=True)
for shape in [(1, 3, 3, 64), (1, 3, 5, 64), (2, 9, 17, 64), (2, 30, 20, 64), (2, 200, 336, 64), (2, 50, 84, 256), (1, 1, 1, 128)]:
    check(*shape)
for stages in (1, 2):
    T.NUM_STAGES = stages
    check(2, 30, 20, 64); check(2, 50, 84, 256)
T.NUM_STAGES = None
T.ROWS = 1
check(2, 30, 20, 64); check(2, 50, 84, 256)
