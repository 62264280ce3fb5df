"""Speed and memory of MLLA against Swin-T, ResNet-50 and ConvNeXt-T, in one run, written as JSON and a table.

    # backbones alone, forward+backward and inference, 2x3x800x1344, bf16 autocast
    python tools/analysis/benchmark.py --level backbone --arch tiny --shape 800 1344 --batch 2 --precision bf16
    # whole Mask R-CNN (or UperNet) of a config, backbone swapped for each peer, fp16 autocast
    python tools/analysis/benchmark.py --level model --config configs/detection/mask_rcnn_mlla_t.py \
        --shape 800 1344 --batch 2 --precision fp16 --json benchmarks/mask_rcnn_t.json

Timings are medians over --iters iterations after --warmup ones (CUDA events on a GPU; wall clock on the CPU,
where --iters should be small). The JSON records the machine, torch version and date next to the numbers.
"""
import argparse
import copy
import datetime
import functools
import json
import os
import os.path as osp
import platform
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from mlla_mm.analysis.benchmark import (PEER_BACKBONES, PEER_CHANNELS, adamw, backbone_batch,  # noqa
                                        backbone_flops, build_backbone, measure)

BACKBONE_PEERS = ['mlla', 'swin_t', 'resnet50', 'convnext_t']
# --compile-stages: MLLA's compile_stages (on: in training; all: in inference too) without compile_backbone;
# backbone: 'all' and compile_backbone=True (the whole backbone as one compiled call), MLLA's defaults
STAGE_SETTINGS = {'off': False, 'on': True, 'all': 'all', 'backbone': 'backbone'}
MODEL_PEERS = ['mlla', 'swin_t', 'resnet50']


def compile_options(stages) -> dict:
    """MLLA's compile_stages and compile_backbone for a --compile-stages setting."""
    if stages == 'backbone':
        return dict(compile_stages='all', compile_backbone=True)
    return dict(compile_stages=stages or False, compile_backbone=False)


def machine() -> dict:
    info = dict(torch=torch.__version__, python=platform.python_version(), cpu=platform.processor() or
                platform.machine(), date=datetime.date.today().isoformat())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
        info['cuda'] = torch.version.cuda
    return info


def matmul_rate(device, dtype, size=8192, iters=20) -> float:
    """Measured dense matmul throughput (FLOP/s, a multiply-add counting 2) of this device in ``dtype``."""
    from mlla_mm.analysis.benchmark import time_call
    if device.type != 'cuda':
        size, iters = 1024, 3
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = sorted(time_call(lambda: a @ b, device, 3, iters))[iters // 2]
    return 2 * size ** 3 / (ms / 1e3)


def config_variant(cfg, peer, attn_impl=None, cuda_graphs=None, kernels=None, stages=None):
    """A copy of the config whose model has its backbone replaced by ``peer`` (necks/heads re-wired to the peer's
    channels), or MLLA's options set."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    model.backbone.pop('init_cfg', None)
    if attn_impl is not None:
        model.backbone.attn_impl = attn_impl
    if cuda_graphs is not None:
        model.backbone.cuda_graphs = cuda_graphs
    if kernels is not None:
        model.backbone.triton_dwconv = model.backbone.compile_convs = kernels
    if stages is not None:
        model.backbone.update(compile_options(stages))
    if peer != 'mlla':
        model.backbone = copy.deepcopy(PEER_BACKBONES[peer])
        channels = PEER_CHANNELS[peer]
        if 'neck' in model:
            model.neck.in_channels = channels
        if 'decode_head' in model:
            model.decode_head.in_channels = channels
            if 'auxiliary_head' in model:
                model.auxiliary_head.in_channels = channels[2]
    return cfg


def model_batch(task, data_preprocessor, batch_size, shape, device):
    """A preprocessed batch with ground truth: boxes and masks (mmdet) or a class map (mmseg)."""
    height, width = shape
    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 255, (3, height, width), dtype=torch.uint8, generator=generator))
        meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                    scale_factor=(1.0, 1.0))
        if task == 'mmdet':
            import numpy as np
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            boxes = []
            masks = np.zeros((6, height, width), dtype=np.uint8)
            for i in range(6):
                x0, y0 = torch.randint(0, width // 2, (1,)).item(), torch.randint(0, height // 2, (1,)).item()
                w, h = width // 4, height // 4
                boxes.append([x0, y0, x0 + w, y0 + h])
                masks[i, y0:y0 + h, x0:x0 + w] = 1
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                               labels=torch.randint(0, 3, (6,)),
                                               masks=BitmapMasks(masks, height, width))
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, height, width)))
        samples.append(sample)
    data = data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    data = dict(inputs=data['inputs'].to(device), data_samples=[s.to(device) for s in data['data_samples']])

    def make():
        return dict(train=dict(inputs=data['inputs'], data_samples=data['data_samples'], mode='loss'),
                    predict=dict(inputs=data['inputs'], data_samples=data['data_samples'], mode='predict'))
    return make


def use_configs_cudnn_setting(cfg) -> bool:
    """cuDNN's autotuning as the config's ``env_cfg`` sets it for training (mmdet: off, mmseg: on); returns it."""
    torch.backends.cudnn.benchmark = bool(cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
    return torch.backends.cudnn.benchmark


def model_and_batch(cfg, variant, batch_size, shape, device):
    """The config's model with a row's backbone (``variant``: one of :func:`row_variants`), SyncBN turned into
    BatchNorm for one process, and the maker of its preprocessed batch (:func:`model_batch`)."""
    from mmengine.model import revert_sync_batchnorm

    from mlla_mm.apis.runner import build_model, task_of
    peer, impl, graphs, kernels, stages = variant
    model = revert_sync_batchnorm(build_model(config_variant(cfg, peer, impl, graphs, kernels, stages)))
    return model, model_batch(task_of(cfg), model.data_preprocessor.to(device), batch_size, shape, device)


def row_variants(args) -> list:
    """``(peer, attn_impl, cuda_graphs, kernels, compile_stages)`` for each row to measure: MLLA once per
    --attn-impl (the plain path and the fast path, side by side; the fast path once per --cuda-graphs,
    --fast-kernels and --compile-stages setting), then the other backbones (None for MLLA's options)."""
    peers = args.peers or (BACKBONE_PEERS if args.level == 'backbone' else MODEL_PEERS)
    graph_settings = [setting == 'on' for setting in args.cuda_graphs]
    kernel_settings = [setting == 'on' for setting in args.fast_kernels]
    stage_settings = [STAGE_SETTINGS[setting] for setting in args.compile_stages]
    variants = []
    for peer in peers:
        if peer != 'mlla':
            variants.append((peer, None, None, None, None))
            continue
        for impl in args.attn_impl:
            if impl == 'plain':
                variants.append((peer, impl, None, None, None))
                continue
            variants.extend((peer, impl, graphs, kernels, stages) for graphs in graph_settings
                            for kernels in kernel_settings for stages in stage_settings)
    return variants


def to_channels_last(model, make):
    """``model`` with its 4-D weights in channels-last memory, and a batch maker whose 4-D inputs are too.

    Why measure it: under fp16 autocast cuDNN's fastest convolutions read and write NHWC, and a convolution whose
    input or weight is channels-last returns channels-last, so converting the weights carries the format through a
    head's convolutions, norms, resizes and concatenations. For UperNet on an H200 it changed nothing (Swin-T's
    step 184.51 -> 184.91 ms, benchmarks/h200_2026-11-28_heads/)."""
    model = model.to(memory_format=torch.channels_last)

    def convert(value):
        if isinstance(value, torch.Tensor) and value.dim() == 4:
            return value.contiguous(memory_format=torch.channels_last)
        return value

    def make_channels_last():
        return {mode: {key: convert(value) for key, value in inputs.items()} for mode, inputs in make().items()}
    return model, make_channels_last


def row_name(args, variant) -> str:
    """A row's model: the peer, or MLLA's arch with its path and fast-path options; ``+channels-last`` with
    --channels-last."""
    peer, impl, graphs, kernels, stages = variant
    suffix = ((',no-graphs' if graphs is False else '') + (',kernels' if kernels else '')
              + {True: ',stages', 'all': ',stages-all', 'backbone': ',whole'}.get(stages, ''))
    name = peer if peer != 'mlla' else f'mlla_{args.arch}[{impl}{suffix}]'
    return name + ('+channels-last' if args.channels_last else '')


def row_model_and_batch(cfg, variant, args, device):
    """A row's model and batch maker: the backbone alone (``cfg`` None, --level backbone) or the config's whole
    model with it (--level model); channels-last with --channels-last."""
    if cfg is None:
        peer, impl, graphs, kernels, stages = variant
        mlla_kwargs = dict(arch=args.arch, drop_path_rate=0.0, with_cp=args.with_cp, attn_impl=impl,
                           cuda_graphs=bool(graphs), triton_dwconv=bool(kernels), compile_convs=bool(kernels),
                           **compile_options(stages))
        model, make = build_backbone(peer, mlla_kwargs), backbone_batch(args.batch, args.shape, device)
    else:
        model, make = model_and_batch(cfg, variant, args.batch, args.shape, device)
    if args.channels_last:
        model, make = to_channels_last(model, make)
    return model, make


def measure_each_model(args, device, measure) -> dict:
    """``measure(cfg, precision, adamw_form, model, make, name)`` (a row's dict) over the rows of a run, for this
    tool and the scripts that take its arguments (step_phases.py, profile_step.py), returned as this tool's
    results (machine, args, rows) and written to --json. The config (``cfg``; None at the backbone level) is loaded
    and its cuDNN setting applied once, the seed reset per row, and each model freed, with the GPU's cache, before
    the next is built."""
    # Fixed shapes at the backbone level: let cuDNN pick its fastest kernels. A whole model follows its config's
    # env_cfg (mmdet: off), as training would: the RoI heads see a new number of boxes at every step, and cuDNN
    # would benchmark each new shape again.
    torch.backends.cudnn.benchmark = True
    cfg = None
    if args.level == 'model':
        from mlla_mm.apis.runner import load_config
        cfg = load_config(args.config)
        use_configs_cudnn_setting(cfg)
    rows = []
    for precision in args.precision:
        for adamw_form in args.adamw:
            for variant in row_variants(args):
                torch.manual_seed(0)
                model, make = row_model_and_batch(cfg, variant, args, device)
                rows.append(measure(cfg, precision, adamw_form, model, make, row_name(args, variant)))
                del model, make
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
    results = dict(machine=machine(), args=vars(args), rows=rows)
    if args.json:
        write_json(results, args.json)
    return results


def write_json(results: dict, path: str):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)


def optimizer_maker(form: str, cfg=None):
    """``model -> optimizer or None`` for an --adamw form: torch's AdamW (foreach or fused) over all trainable
    parameters in one group, the config's ``optim_wrapper`` as training builds it (``cfg`` needed), or none."""
    if form == 'config':
        from mmengine.optim import build_optim_wrapper
        return lambda model: build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)).optimizer
    return dict(foreach=adamw, fused=functools.partial(adamw, fused=True), none=lambda model: None)[form]


def run(args):
    """Measures and prints each row; returns (and writes to --json) the results."""
    device = torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')

    def measure_row(cfg, precision, adamw_form, model, make, name):
        name += ('' if adamw_form == 'foreach' or args.no_train else
                 '+no-optimizer' if adamw_form == 'none' else f'+{adamw_form}-adamw')
        row = dict(model=name, level=args.level, adamw=adamw_form,
                   precision=precision, batch=args.batch, shape=list(args.shape),
                   params_m=sum(p.numel() for p in model.parameters()) / 1e6)
        try:
            row.update(measure(model, make, device, precision, args.warmup, args.iters, args.batch,
                               train=not args.no_train, make_optimizer=optimizer_maker(adamw_form, cfg),
                               infer=not args.no_infer))
        except RuntimeError as err:  # e.g. a kernel without this dtype: record it, go on with the rest
            row['error'] = f'{type(err).__name__}: {str(err).splitlines()[0]}'
        if args.level == 'backbone' and args.roofline and 'infer_ms' in row:
            macs = backbone_flops(model, args.shape) * args.batch
            rate = matmul_rate(device, torch.float32 if precision == 'fp32' else
                               (torch.float16 if precision == 'fp16' else torch.bfloat16))
            row['gmacs'] = macs / 1e9
            row['achieved_tflops'] = 2 * macs / (row['infer_ms'] / 1e3) / 1e12
            row['matmul_tflops'] = rate / 1e12
            row['fraction_of_matmul_rate'] = row['achieved_tflops'] / row['matmul_tflops']
        print_row(row)
        return row

    return measure_each_model(args, device, measure_row)


HEADER = (f'{"model":<36} {"prec":<5} {"batch":>5} {"shape":>10} {"params":>8} {"infer ms":>9} {"img/s":>9} '
          f'{"train ms":>9} {"peak MiB":>9}')


def print_row(row):
    if not getattr(print_row, 'header_done', False):
        print(HEADER)
        print_row.header_done = True
    if 'error' in row:
        print(f'{row["model"]:<36} {row["precision"]:<5} {row["batch"]:>5} error: {row["error"]}')
        return
    shape = 'x'.join(map(str, row['shape']))
    value = {key: row.get(key, float('nan'))  # nan: not measured (--no-train, --no-infer)
             for key in ('infer_ms', 'images_per_s', 'train_step_ms', 'train_peak_mem_mib')}
    print(f'{row["model"]:<36} {row["precision"]:<5} {row["batch"]:>5} {shape:>10} {row["params_m"]:>7.1f}M '
          f'{value["infer_ms"]:>9.2f} {value["images_per_s"]:>9.1f} {value["train_step_ms"]:>9.2f} '
          f'{value["train_peak_mem_mib"]:>9.0f}'
          + (f'  {row["achieved_tflops"]:.2f} of {row["matmul_tflops"]:.1f} TFLOP/s' if 'achieved_tflops' in row
             else '')
          + (f'  first train step {row["first_train_step_s"]:.1f} s' if 'first_train_step_s' in row else ''),
          flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--level', choices=['backbone', 'model'], default='backbone')
    parser.add_argument('--arch', default='tiny', help='MLLA arch (backbone level)')
    parser.add_argument('--config', help='detection or segmentation config (model level)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1344], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--precision', nargs='+', choices=sorted(PRECISIONS_CHOICES), default=['fp32'])
    parser.add_argument('--peers', nargs='+', help='subset of mlla, swin_t, resnet50, convnext_t')
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--iters', type=int, default=50)
    parser.add_argument('--no-train', action='store_true', help='inference only')
    parser.add_argument('--no-infer', action='store_true',
                        help='training step only (a compiled model then compiles no inference graphs)')
    parser.add_argument('--with-cp', action='store_true', help='MLLA with gradient checkpointing')
    parser.add_argument('--attn-impl', nargs='+', choices=['plain', 'fast', 'auto'], default=['plain'],
                        help="MLLA's block implementation(s) to measure, each as its own row (e.g. plain fast)")
    parser.add_argument('--cuda-graphs', nargs='+', choices=['on', 'off'], default=['on'],
                        help='CUDA graphs on the fast path (MLLA cuda_graphs=...); "on off" measures both')
    parser.add_argument('--fast-kernels', nargs='+', choices=['on', 'off'], default=['off'],
                        help='on the fast path, also the Triton depthwise convolutions and the compiled stem / '
                             'patch merging (MLLA triton_dwconv=..., compile_convs=...); "off on" measures both')
    parser.add_argument('--compile-stages', nargs='+', choices=sorted(STAGE_SETTINGS), default=['backbone'],
                        help="on the fast path, each stage's blocks as one compiled call (MLLA compile_stages=...): "
                             'on: in training, all: in inference too, off: never, each without compile_backbone; '
                             'backbone: all, and the whole backbone as one compiled call (compile_backbone=True; '
                             'the default, as in MLLA); "all backbone" measures both')
    parser.add_argument('--adamw', nargs='+', choices=['foreach', 'fused', 'config', 'none'], default=['foreach'],
                        help="the train step's AdamW: torch's default multi-tensor form or its fused form, over all "
                             "parameters in one group, or (model level) the config's optim_wrapper, as training "
                             'builds it, or none: forward and backward alone; "foreach fused" measures both')
    parser.add_argument('--channels-last', action='store_true',
                        help='every model (weights and input images) in channels-last memory format')
    parser.add_argument('--roofline', action='store_true',
                        help='also report achieved TFLOP/s of inference against a measured matmul rate')
    parser.add_argument('--cpu', action='store_true', help='measure on the CPU even if a GPU is there')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    if args.level == 'model' and not args.config:
        parser.error('--level model needs --config')
    if 'config' in args.adamw and args.level != 'model':
        parser.error("--adamw config needs --level model (the config's optim_wrapper)")
    if args.no_train and args.no_infer:
        parser.error('--no-train and --no-infer leave nothing to measure')
    return args


PRECISIONS_CHOICES = ('fp32', 'fp16', 'bf16')


def main(argv=None):
    args = parse_args(argv)
    results = run(args)  # written to --json there
    print('machine:', json.dumps(results['machine']))
    if args.json:
        print(f'wrote {args.json}')
    return results


if __name__ == '__main__':
    main()
