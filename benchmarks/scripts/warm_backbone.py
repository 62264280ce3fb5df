"""Fill the Inductor cache with a config's compiled MLLA backbone, without building the rest of its model.

    python benchmarks/scripts/warm_backbone.py configs/detection/mask_rcnn_mlla_t.py --shape 800 1344 --batch 2 \
        --precision fp16 [--iters 20] [benchmark.py's --cuda-graphs / --fast-kernels / --compile-stages]

The backbone is the one ``tools/analysis/benchmark.py --level model --attn-impl fast`` builds from the config with
the same options (its ``row_variants`` and ``config_variant``: the config's drop-path rate, the fast path), stepped
forward and backward under autocast as ``measure`` steps it, so that benchmark (and training at that size) later
finds its training graphs in the cache. ``--iters N`` also times N steps after the compiling one: the backbone's
share of the model's train step.

Why: on a cold cache the fast path's training graphs take about 5 minutes to compile on the H100 host, and on a
fresh device machine mmcv's CUDA ops take about 4 minutes to build. The backbone needs no mmcv, so the two can run
at once, and the whole-model benchmark, which needs mmcv, then starts warm (benchmarks/h100_2026-11-28_models/).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import torch

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..')
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='a detection or segmentation config with an MLLA backbone')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1344], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--precision', choices=['fp16', 'bf16', 'fp32'], default='fp16')
    parser.add_argument('--iters', type=int, default=1, help='timed steps after the compiling one (a median)')
    parser.add_argument('--device', default='cuda', help='cpu: a quick check of this script (nothing compiles)')
    options, benchmark_options = parser.parse_known_args(argv)

    import benchmark  # tools/analysis/benchmark.py

    from mlla_mm import MLLA
    from mlla_mm.analysis.benchmark import backbone_batch, measure
    from mlla_mm.apis.runner import load_config

    # benchmark.py's own parsing and rows: its defaults and any of its options given here apply as they do there
    args = benchmark.parse_args(['--level', 'model', '--config', options.config, '--peers', 'mlla',
                                 '--attn-impl', 'fast', *benchmark_options])
    cfg = load_config(options.config)
    if cfg.model.get('backbone', {}).get('type') != 'MLLA':
        parser.error(f'{options.config}: model.backbone is not an MLLA backbone')
    _, impl, graphs, kernels, stages = benchmark.row_variants(args)[0]
    backbone_cfg = dict(benchmark.config_variant(cfg, 'mlla', impl, graphs, kernels, stages).model.backbone)
    backbone_cfg.pop('type')
    benchmark.use_configs_cudnn_setting(cfg)  # as the model-level benchmark and training do
    device = torch.device(options.device)
    torch.manual_seed(0)
    backbone = MLLA(**backbone_cfg)
    start = time.perf_counter()
    result = measure(backbone, backbone_batch(options.batch, options.shape, device), device, options.precision,
                     warmup=1 + (options.iters > 1), iters=options.iters, batch_size=options.batch,
                     make_optimizer=lambda m: None, infer=False)
    result.update(config=options.config, backbone=backbone_cfg, shape=options.shape, batch=options.batch,
                  precision=options.precision, seconds=time.perf_counter() - start, torch=torch.__version__,
                  cudnn_benchmark=torch.backends.cudnn.benchmark,
                  inductor_cache=os.environ.get('TORCHINDUCTOR_CACHE_DIR', 'the default'))
    print(json.dumps(result), flush=True)
    return result


if __name__ == '__main__':
    main()
