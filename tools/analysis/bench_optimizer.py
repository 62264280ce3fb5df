"""Time one optimizer step of a config's model: mmengine's default constructor (one parameter group per parameter)
against GroupedOptimWrapperConstructor, each with AdamW's foreach and fused forms.

    python tools/analysis/bench_optimizer.py configs/detection/mask_rcnn_mlla_t.py            # on the GPU
    python tools/analysis/bench_optimizer.py configs/detection/mask_rcnn_mlla_t.py --tiny-params --cpu

The step is timed alone (gradients set once, then ``optimizer.step()`` repeatedly, synchronised), so on a GPU the
numbers are the host's time to issue the step where that exceeds the GPU's. ``--tiny-params`` replaces every
parameter by a one-element tensor of the same name, so that the CPU's time is the optimizer's per-group and
per-tensor bookkeeping, not its arithmetic.
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout


def shrink(model):
    """Every parameter a one-element tensor, names and requires_grad kept."""
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            setattr(module, name, torch.nn.Parameter(param.detach().flatten()[:1].clone(),
                                                     requires_grad=param.requires_grad))
    return model


def time_step(optimizer, device, iters):
    times = []
    for _ in range(iters + 3):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[3:])


def main():
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    from mlla_mm.apis import build_model, load_config
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=50)
    parser.add_argument('--tiny-params', action='store_true')
    parser.add_argument('--cpu', action='store_true')
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel('WARNING')  # mmengine logs every parameter's options
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
    cfg = load_config(args.config)
    model = build_model(cfg)
    if args.tiny_params:
        model = shrink(model)
    model = model.to(device)
    for param in model.parameters():
        if param.requires_grad:
            param.grad = torch.randn_like(param) * 1e-3
    print(f'{args.config} on {torch.cuda.get_device_name() if device.type == "cuda" else "CPU"}, torch '
          f'{torch.__version__}{", one-element parameters" if args.tiny_params else ""}')
    for constructor in ('DefaultOptimWrapperConstructor', 'GroupedOptimWrapperConstructor'):
        for fused in (False, True):
            wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
            wrapper_cfg.constructor = constructor
            wrapper_cfg.optimizer.fused = fused or None
            wrapper_cfg.optimizer.foreach = None if fused else True
            optimizer = build_optim_wrapper(model, wrapper_cfg).optimizer
            ms = time_step(optimizer, device, args.iters)
            print(f'{constructor:<32} {"fused" if fused else "foreach":<8} {len(optimizer.param_groups):>4} groups '
                  f'{ms:8.2f} ms per step')


if __name__ == '__main__':
    main()
