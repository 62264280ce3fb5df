"""Bisect helper: MLLA-T fast path (or ConvNeXt-T) bf16 train step at 2x3x800x1344 of the mlla_mm found in cwd.
Compiles, signals ready, waits for its turn (so timings never overlap another process's compile), then times."""
import os, statistics, sys, time
sys.path.insert(0, os.getcwd())
import torch
from torch.profiler import ProfilerActivity, profile
name, sync_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if name == 'convnext':
    from mlla_mm.analysis.benchmark import build_backbone
    model = build_backbone('convnext_t')
else:
    import mlla_mm
    from mlla_mm import MLLA
    print(name, 'uses', mlla_mm.__file__, flush=True)
    model = MLLA('tiny', drop_path_rate=0., attn_impl='fast')
model = model.cuda().train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
x = torch.randn(2, 3, 800, 1344, device='cuda')

def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    opt.step()

t0 = time.time()
for i in range(4):
    step(); torch.cuda.synchronize()
    print(f'{name}: warm step {i} done at {time.time() - t0:.1f} s', flush=True)
open(f'{sync_dir}/ready_{name}', 'w').close()
while not os.path.exists(f'{sync_dir}/turn_{name}'):
    time.sleep(0.5)
try:
    walls = []
    for i in range(30):
        torch.cuda.synchronize(); t = time.perf_counter(); step(); torch.cuda.synchronize()
        walls.append((time.perf_counter() - t) * 1e3)
    ev = []
    for i in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); step(); e.record(); e.synchronize(); ev.append(s.elapsed_time(e))
    torch.cuda.synchronize(); t = time.perf_counter()
    for i in range(10):
        step()
    host = (time.perf_counter() - t) * 100; torch.cuda.synchronize(); both = (time.perf_counter() - t) * 100
    print(f'RESULT {name}: wall median {statistics.median(walls):.2f} ms (min {min(walls):.2f}, max {max(walls):.2f}); '
          f'event median {statistics.median(ev):.2f} ms; 10 steps unsynced: host {host:.2f} ms/step, with sync {both:.2f}',
          flush=True)
    print(f'{name} walls:', ' '.join(f'{w:.1f}' for w in walls))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step(); torch.cuda.synchronize()
    gpu = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    print(f'{name}: profiled step: {len(gpu)} GPU events, {sum(e.device_time for e in gpu) / 1e3:.2f} ms of GPU time')
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=18, max_name_column_width=70))
    print(prof.key_averages().table(sort_by='self_device_time_total', row_limit=12, max_name_column_width=70))
    try:
        from torch._dynamo.utils import counters
        print(name, 'inductor counters:', {k: v for k, v in counters['inductor'].items() if 'cudagraph' in k or 'graph' in k})
        from torch._inductor import cudagraph_trees
        mgr = cudagraph_trees.get_container(torch.cuda.current_device()).tree_manager
        if mgr is not None:
            print(name, 'cudagraph tree: roots', sum(len(v) for v in mgr.roots.values()), 'nodes', len(mgr.graph_id_to_node)
                  if hasattr(mgr, 'graph_id_to_node') else '?', 'rerecords', {str(k): dict(v) for k, v in mgr.num_rerecord.items()}
                  if hasattr(mgr, 'num_rerecord') else '?', 'warmed', len(mgr.warmed_up_functions))
    except Exception as err:
        print(name, 'counters failed:', repr(err))
except Exception as err:
    print(name, 'FAILED:', repr(err), flush=True)
finally:
    open(f'{sync_dir}/done_{name}', 'w').close()
