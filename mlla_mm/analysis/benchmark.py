"""Speed and memory of MLLA against the backbones a user would pick instead, measured row by row in one process.

Two levels: ``backbone``, the backbone alone on a ``(B, 3, H, W)`` batch (MLLA and its peers Swin-T, ResNet-50,
ConvNeXt-T), and ``model``, a config's whole model (Mask R-CNN, UperNet) with its backbone swapped for each peer.
For each row: inference latency and images per second, one training step (forward, backward and the chosen
optimizer) with its first-step time and peak GPU memory. The rows go to the screen, to JSON (``--json``) and as
lines of a results CSV (``--results``, :mod:`.results`). ``tools/analysis/benchmark.py`` is its command line;
other measurements of a row (``tools/analysis/step_phases.py``, ``profile_step.py``) step the same rows through
:func:`each_row`.
"""
import argparse
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .results import COMPILE_CACHE_STATES, append_csv, check_results_argument, csv_rows, machine, write_json
from .rows import (ATTN_IMPLS, FAST_CFG_KEYS, PEERS, Row, backbone_batch, build_backbone, mlla_kwargs,
                   model_and_batch, parse_fast_cfg, row_name, row_variants, task_name, to_channels_last,
                   use_configs_cudnn_setting)
from .timing import OPTIMIZER_FORMS, PRECISIONS, matmul_rate, measure, optimizer_maker

BACKBONE_PEERS = list(PEERS)
MODEL_PEERS = ['mlla', 'swin_t', 'resnet50']


def build_parser(description: Optional[str] = None, results: bool = True) -> argparse.ArgumentParser:
    """The options of a benchmark run: which rows (level, config, peers, MLLA's path and fast-path options), on
    what batch and precision, how many iterations, which optimizer, and where results go (``results``: with
    --results, for a tool that writes a results CSV)."""
    parser = argparse.ArgumentParser(description=description or __doc__.split('\n')[0])
    parser.add_argument('--level', choices=['backbone', 'model'], default='backbone')
    parser.add_argument('--arch', default='tiny', help='MLLA arch (backbone level; a model takes its config\'s)')
    parser.add_argument('--config', help='detection or segmentation config (model level)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1344], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--precision', nargs='+', choices=sorted(PRECISIONS), default=['fp32'])
    parser.add_argument('--peers', nargs='+', choices=PEERS,
                        help=f'backbones to measure (default: {BACKBONE_PEERS} at the backbone level, '
                             f'{MODEL_PEERS} at the model level)')
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--iters', type=int, default=50)
    parser.add_argument('--no-train', action='store_true', help='inference only')
    parser.add_argument('--no-infer', action='store_true',
                        help='training step only (a compiled model then compiles no inference graphs)')
    parser.add_argument('--with-cp', action='store_true', help='MLLA with gradient checkpointing (backbone level)')
    parser.add_argument('--attn-impl', nargs='+', choices=ATTN_IMPLS, default=['auto'],
                        help="MLLA's attn_impl, each its own row (e.g. plain fast)")
    parser.add_argument('--fast-cfg', nargs='*', action='append', metavar='KEY=VALUE',
                        help=f"MLLA's fast_cfg for the fast / auto rows (keys: {', '.join(FAST_CFG_KEYS)}; "
                             'true/false for switches); given again, one more set of rows: '
                             '--fast-cfg cuda_graphs=true --fast-cfg cuda_graphs=false measures both')
    parser.add_argument('--adamw', nargs='+', choices=OPTIMIZER_FORMS,
                        help="the train step's optimizer: none: forward and backward alone (the backbone level's "
                             "default); config: the config's optim_wrapper as training builds it (model level, its "
                             "default); torch's AdamW, multi-tensor (foreach) or fused, over all parameters in one "
                             'group. Several: each row once per form (inference is measured with the first)')
    parser.add_argument('--channels-last', action='store_true',
                        help='every model (weights and input images) in channels-last memory format')
    parser.add_argument('--roofline', action='store_true',
                        help='also report achieved TFLOP/s of inference against a measured matmul rate (backbone)')
    parser.add_argument('--cpu', action='store_true', help='measure on the CPU even if a GPU is there')
    parser.add_argument('--json', help='write the results (machine, arguments, rows) here')
    if results:
        parser.add_argument('--results', metavar='FILE.csv',
                            help='append the measured values to this results CSV (created if absent)')
        parser.add_argument('--compile-cache', choices=COMPILE_CACHE_STATES,
                            help='the state of the compile caches (Inductor, Triton) at the start: with it, the '
                                 'first training step and first inference are written to --results too, as '
                                 'first_step_<state>_s and first_infer_<state>_s')
    parser.set_defaults(results=None, compile_cache=None)
    return parser


def parse_args(argv=None, parser: Optional[argparse.ArgumentParser] = None) -> argparse.Namespace:
    """Parsed and checked options; ``fast_cfgs``: one fast_cfg dict per --fast-cfg (``[{}]`` when none)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    args.adamw = args.adamw or (['config'] if args.level == 'model' else ['none'])
    if args.level == 'model' and not args.config:
        parser.error('--level model needs --config')
    if 'config' in args.adamw and args.level != 'model':
        parser.error("--adamw config needs --level model (the config's optim_wrapper)")
    if {'config', 'none'} <= set(args.adamw) and args.results:
        parser.error('--adamw config and none both write train_step_ms to --results: measure them in two runs')
    if args.no_train and args.no_infer:
        parser.error('--no-train and --no-infer leave nothing to measure')
    try:
        args.fast_cfgs = [parse_fast_cfg(items) for items in (args.fast_cfg or [[]])]
    except ValueError as err:
        parser.error(f'--fast-cfg: {err}')
    if args.fast_cfg and not {'fast', 'auto'} & set(args.attn_impl):
        parser.error('--fast-cfg applies to --attn-impl fast or auto rows only')
    check_results_argument(parser, args.results)
    return args


def device_of(args) -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')


def planned_rows(args) -> List[Tuple[str, str, Row]]:
    """The rows of a run, in the order :func:`each_row` measures them: ``(precision, optimizer form, row)``."""
    peers = args.peers or (BACKBONE_PEERS if args.level == 'backbone' else MODEL_PEERS)
    return [(precision, adamw_form, row) for precision in args.precision for adamw_form in args.adamw
            for row in row_variants(peers, args.attn_impl, args.fast_cfgs)]


def each_row(args, device: torch.device, measure_row: Callable, only: Optional[int] = None) -> Dict:
    """``measure_row(cfg, precision, adamw_form, model, make, name)`` (a row's dict) over the rows of a run
    (:func:`planned_rows`; ``only``: just the one at that index); returned with the machine and arguments, and
    written to --json.

    The config (``cfg``; None at the backbone level) is loaded and its cuDNN setting applied once, the seed reset
    per row, and each model freed, with the GPU's cache, before the next is built."""
    # Fixed shapes at the backbone level: let cuDNN pick its fastest kernels. A whole model follows its config's
    # env_cfg (mmdet: off), as training would: the RoI heads see a new number of boxes at every step, and cuDNN
    # would benchmark each new shape again.
    torch.backends.cudnn.benchmark = True
    cfg, arch = None, args.arch
    if args.level == 'model':
        from ..apis.config import load_config
        cfg = load_config(args.config)
        use_configs_cudnn_setting(cfg)
        arch = cfg.model.backbone.get('arch', 'tiny')
    rows = []
    for index, (precision, adamw_form, row) in enumerate(planned_rows(args)):
        if only is not None and index != only:
            continue
        torch.manual_seed(0)
        if cfg is None:
            model = build_backbone(row.peer, mlla_kwargs(row, arch, args.with_cp))
            make = backbone_batch(args.batch, args.shape, device)
        else:
            model, make = model_and_batch(cfg, row, args.batch, args.shape, device)
        if args.channels_last:
            model, make = to_channels_last(model, make)
        rows.append(measure_row(cfg, precision, adamw_form, model, make, row_name(row, arch, args.channels_last)))
        del model, make
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    results = dict(machine=machine(device), args=vars(args), rows=rows)
    if args.json:
        write_json(results, args.json)
    return results


def run(args) -> Dict:
    """Measures each row, prints it and appends its values to --results as soon as it is measured (so a run stopped
    later keeps them); returns (and writes to --json) the results."""
    device = device_of(args)
    info = machine(device)
    print_row = RowPrinter()

    def measure_row(cfg, precision, adamw_form, model, make, name):
        row = dict(task=task_name(cfg), model=name, input='x'.join(map(str, [args.batch, 3, *args.shape])),
                   adamw=adamw_form, precision=precision, batch=args.batch, shape=list(args.shape),
                   params_m=sum(p.numel() for p in model.parameters()) / 1e6)
        try:
            row.update(measure(model, make, device, precision, args.warmup, args.iters, args.batch,
                               train=not args.no_train, make_optimizer=optimizer_maker(adamw_form, cfg),
                               infer=not args.no_infer and adamw_form == args.adamw[0]))
        except RuntimeError as err:  # e.g. a kernel without this dtype: record it, go on with the rest
            row['error'] = f'{type(err).__name__}: {str(err).splitlines()[0]}'
        if args.level == 'backbone' and args.roofline and 'infer_ms' in row:
            row.update(roofline(model, row, args, device))
        print_row(row)
        if args.results:
            append_csv(csv_rows(row, info, args.compile_cache), args.results)
        return row

    return each_row(args, device, measure_row)


def roofline(model, row: Dict, args, device: torch.device) -> Dict:
    """Achieved TFLOP/s of the row's inference against this device's measured matmul rate in its precision."""
    from .complexity import backbone_flops
    macs = backbone_flops(model, args.shape) * args.batch
    rate = matmul_rate(device, PRECISIONS[row['precision']] or torch.float32)
    achieved = 2 * macs / (row['infer_ms'] / 1e3) / 1e12
    return dict(gmacs=macs / 1e9, achieved_tflops=achieved, matmul_tflops=rate / 1e12,
                fraction_of_matmul_rate=achieved / (rate / 1e12))


class RowPrinter:
    """Prints measured rows as a table, its header before the first."""

    HEADER = (f'{"model":<36} {"optimizer":<9} {"prec":<5} {"input":>14} {"params":>8} {"infer ms":>9} '
              f'{"img/s":>9} {"train ms":>9} {"peak MiB":>9}')

    def __init__(self):
        self.header_done = False

    def __call__(self, row: Dict) -> None:
        if not self.header_done:
            print(self.HEADER)
            self.header_done = True
        start = f'{row["model"]:<36} {row["adamw"]:<9} {row["precision"]:<5} {row["input"]:>14}'
        if 'error' in row:
            print(f'{start} error: {row["error"]}', flush=True)
            return
        value = {key: row.get(key, float('nan'))  # nan: not measured
                 for key in ('infer_ms', 'images_per_s', 'train_step_ms', 'train_peak_mem_mib')}
        print(f'{start} {row["params_m"]:>7.1f}M {value["infer_ms"]:>9.2f} {value["images_per_s"]:>9.1f} '
              f'{value["train_step_ms"]:>9.2f} {value["train_peak_mem_mib"]:>9.0f}'
              + (f'  {row["achieved_tflops"]:.2f} of {row["matmul_tflops"]:.1f} TFLOP/s'
                 if 'achieved_tflops' in row else '')
              + (f'  host {row["train_step_host_ms"]:.2f} ms' if 'train_step_host_ms' in row else '')
              + (f'  first train step {row["first_train_step_s"]:.1f} s' if 'first_train_step_s' in row else ''),
              flush=True)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    results = run(args)
    print('machine:', results['machine'])
    for path in (args.json, args.results):
        if path:
            print(f'wrote {path}')
    return results
