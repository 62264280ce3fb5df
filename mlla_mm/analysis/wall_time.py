"""The whole wall time of real jobs, compiling included, of MLLA-T (auto, fast and plain) and Swin-T.

Each job is a process of the project's own tools, run with a cold and then a warm compile cache.

Why: a step's median (``benchmark.py``) leaves out what a user waits for before it, above all the fast path's
compile, which takes minutes on an empty Inductor cache. This module runs the jobs a user runs and times each
process from its launch to its exit (``time.perf_counter`` in the driver), so that the compile is weighed against
what it saves over a whole job.

Jobs (``JOBS``; the default order runs the cheap ones first):

- ``demo1``: ``tools/demo.py`` on one image;
- ``seg_train300``: ``tools/train.py --amp`` on the UperNet config, 300 iterations of 8 crops of 512x512 (the
  config's per-GPU batch is 2; 8 is the one GPU batch of the speed tables' UperNet rows);
- ``train300``: ``tools/train.py --amp`` on the Mask R-CNN config, 300 iterations of the config's batch of 2;
- ``test500``: ``tools/test.py`` over 500 images, batch 1, with COCO box and mask evaluation; every model keeps
  every detection (``TEST_SCORE_THR``).

Each training and test job's config gets :class:`~mlla_mm.engine.FirstIterationClockHook`, which writes into the
log when the loop started and when the first iteration ended; so the same runs also give the time from launch to
the start of training or testing (``train_start``, ``seg_train_start``, ``test_start``: the start-up), to the end of
the first training step (``first_step``, UperNet's ``seg_first_step``) and to the first test image's result
(``first_infer``).

Models (``MODELS``): ``mlla_auto``, the MLLA-T configs as they are (``attn_impl='auto'``: on a GPU, uncompiled for
the backbone's first ``compile_training_after`` / ``compile_inference_after`` images, then the compiled fast path);
``mlla_fast``, the same with ``attn_impl='fast'`` (compiled from the first step); ``mlla_plain``, with
``attn_impl='plain'``; ``mlla_auto_graphs``, the configs with ``fast_cfg['uncompiled_graphs'] = 1`` (uncompiled
train steps of one input shape replayed as CUDA graphs); ``swin_t``, mmdet's and mmseg's own Swin-T configs
(``SWIN_CONFIGS``; for Mask R-CNN the one with the multi-scale + crop training augmentation that the MLLA-T config
uses), run through the same tools. Every config keeps its model, optimizer, pipelines and loaders; the script
changes only what the jobs need: the backbone's pretrained checkpoint is off (random initialisation), the data are
synthetic shapes (``tools/demo_data.py``; Mask R-CNN at 1333x800, UperNet at 683x512) with their three classes, and
training is iteration-based (``IterBasedTrainLoop``) with no validation and no checkpoint saved. Of the
learning-rate schedules the iteration-based parts are kept (the linear warm-up; mmseg's poly decay) and the
epoch-based step decay of the detection configs is dropped: 300 iterations are the first 300 of the real schedule.
Test jobs load a randomly initialised checkpoint of the model, written by this module.

Before the first job an untimed process imports the stack, runs a convolution and a matrix product on the
device and compiles a small Triton kernel into a cache of its own (``--no-prime``: none), so that on a machine just
started the first job does not alone pay for reading the libraries from disk.

Cache states: ``cold`` gives the job fresh, empty ``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR`` and
``CUDA_CACHE_PATH`` folders (one set per job and model, under the work dir); ``warm`` runs the same job again with
what its cold run left there. The last is the CUDA driver's cache of kernels compiled at run time from PTX (by
default ``~/.nv/ComputeCache``, kept by a machine across processes): eager models fill it too, so with the default
one a job's first step would depend on what the machine ran before. The plain path and Swin-T compile nothing of
their own (MLLA-T auto, in jobs shorter than its counts, only its Triton kernels, in seconds); they run in both
states too, so that the difference between their two runs shows what else a second run gains (the driver's cache,
files in the operating system's cache). Each successful run appends one line to the results CSV
(:mod:`.results`): measure ``wall_<job>_<cold|warm>_s``, e.g. ``wall_demo1_cold_s``, ``wall_train300_warm_s``
(the counts follow ``--iters`` and ``--test-images``), and one more per loop start and first iteration
(``wall_train_start_cold_s``, ``wall_first_step_cold_s``, ``wall_seg_first_step_cold_s``,
``wall_first_infer_cold_s``, ...). A job that fails or runs past ``--timeout`` writes no line of its own (one past
its time still writes the lines of the loop starts and first iterations that came); the tail of its log is
printed, the rest go on, and the exit status is 1. ``tools/analysis/wall_time.py`` is its command line.
"""
import argparse
import copy
import importlib.util
import json
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..engine.first_iteration_clock_hook import first_iteration_times, loop_start_times
from .results import append_csv, check_results_argument

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_WORK_DIR = osp.join('work_dirs', 'wall_time')

MLLA_CONFIGS = {'mask_rcnn': 'configs/detection/mask_rcnn_mlla_t.py',
                'upernet': 'configs/segmentation/upernet_mlla_t.py'}
SWIN_CONFIGS = {'mask_rcnn': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
                'upernet': 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'}


class Model(NamedTuple):
    name: str  # the results CSV's model column
    configs: Dict[str, str]  # task -> config
    attn_impl: Optional[str]  # MLLA's attn_impl set in the config; None: the config's own
    weights: str  # the name of its test checkpoint: the MLLA-T rows share their weights
    fast_cfg: Optional[Dict] = None  # MLLA's fast_cfg keys set over the config's; None: the config's own


MODELS = {
    'mlla_auto': Model('MLLA-T auto', MLLA_CONFIGS, None, 'mlla_t'),
    'mlla_fast': Model('MLLA-T fast', MLLA_CONFIGS, 'fast', 'mlla_t'),
    'mlla_plain': Model('MLLA-T plain', MLLA_CONFIGS, 'plain', 'mlla_t'),
    'mlla_auto_graphs': Model('MLLA-T auto graphs', MLLA_CONFIGS, None, 'mlla_t', dict(uncompiled_graphs=1)),
    'swin_t': Model('Swin-T', SWIN_CONFIGS, None, 'swin_t'),
}


class Job(NamedTuple):
    task: str  # 'mask_rcnn' or 'upernet'
    kind: str  # 'train' (--iters iterations), 'test' (--test-images images) or 'demo' (one image)


JOBS = {
    'demo1': Job('mask_rcnn', 'demo'),
    'seg_train300': Job('upernet', 'train'),
    'train300': Job('mask_rcnn', 'train'),
    'test500': Job('mask_rcnn', 'test'),
}
CACHES = ('cold', 'warm')
FIRST_ITERATIONS = {'train': 'first_step', 'test': 'first_infer'}  # the clock hook's mode -> the measure's job
LOOP_STARTS = {'train': 'train_start', 'test': 'test_start'}  # likewise for the start of the mode's loop
CLOCK_HOOK = dict(type='FirstIterationClockHook')

DET_IMAGE_SIZE = (800, 1333)  # (height, width): the detection configs' test scale and largest training scale
SEG_IMAGE_SIZE = (512, 683)  # ADE20K's usual shape, larger than the 512x512 training crop
SEG_TRAIN_BATCH = 8
# The test job's box-score threshold, for every model: with random weights, how many detections pass the configs'
# threshold (0.05) depends on the initialisation, and Mask R-CNN's post-processing and the COCO evaluation grow with
# it. At 0, every model keeps its max_per_img detections of every image and the jobs do the same work after the
# backbone.
TEST_SCORE_THR = 0.0
LOG_INTERVAL = 50  # iterations between the training log's lines
LOG_TAIL_LINES = 40  # of a failed job's log, printed


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
def demo_data_module():
    """``tools/demo_data.py``, the synthetic data generator (imported from its file: ``tools/`` is no package)."""
    if 'demo_data' in sys.modules:
        return sys.modules['demo_data']
    spec = importlib.util.spec_from_file_location('demo_data', osp.join(REPO, 'tools', 'demo_data.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules['demo_data'] = module
    spec.loader.exec_module(module)
    return module


class Paths:
    """Where everything of a run lives under its work dir."""

    def __init__(self, work_dir: str):
        self.root = osp.abspath(work_dir)
        self.coco = osp.join(self.root, 'data', 'coco')
        self.ade = osp.join(self.root, 'data', 'ade')

    def config(self, job: str, model: str) -> str:
        return osp.join(self.root, 'configs', f'{job}_{model}.py')

    def checkpoint(self, task: str, model: str) -> str:
        return osp.join(self.root, 'checkpoints', f'{task}_{MODELS[model].weights}.pth')

    def run_dir(self, job: str, model: str, cache: str) -> str:
        return osp.join(self.root, 'runs', f'{job}_{model}_{cache}')

    def log(self, job: str, model: str, cache: str) -> str:
        return osp.join(self.root, 'logs', f'{job}_{model}_{cache}.log')

    def caches(self, job: str, model: str) -> Dict[str, str]:
        """The compile caches of a job and model: the environment variables and their folders (Inductor's, Triton's,
        and the CUDA driver's cache of kernels compiled at run time from PTX)."""
        folder = osp.join(self.root, 'cache', f'{job}_{model}')
        return {'TORCHINDUCTOR_CACHE_DIR': osp.join(folder, 'inductor'), 'TRITON_CACHE_DIR': osp.join(folder, 'triton'),
                'CUDA_CACHE_PATH': osp.join(folder, 'cuda')}


def make_data(paths: Paths, tasks: Sequence[str], train_images: int, test_images: int) -> None:
    """Generate the synthetic data sets the tasks need (kept when a complete one of these sizes is there)."""
    demo_data = demo_data_module()
    wanted = []
    if 'mask_rcnn' in tasks:
        wanted.append(('coco', paths.coco, demo_data.make_coco_instances, test_images, DET_IMAGE_SIZE))
    if 'upernet' in tasks:
        wanted.append(('ade', paths.ade, demo_data.make_ade_semantic, 1, SEG_IMAGE_SIZE))
    for kind, root, make, num_val, size in wanted:
        if demo_data.is_complete(root, kind, train_images, num_val, size):
            print(f'data: {root} is there ({train_images} train, {num_val} val images of {size[1]}x{size[0]})')
            continue
        start = time.perf_counter()
        make(root, num_train=train_images, num_val=num_val, image_size=size)
        print(f'data: {root}: {train_images} train, {num_val} val images of {size[1]}x{size[0]} generated in '
              f'{time.perf_counter() - start:.0f} s', flush=True)


# ----------------------------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------------------------
def config_path(name: str) -> str:
    """A config file: a path in this repository, or ``mmdet::REL`` / ``mmseg::REL`` in that package's configs."""
    if '::' in name:
        package, relative = name.split('::', 1)
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f'{name}: package {package} is not installed')
        path = osp.join(list(spec.submodule_search_locations)[0], '.mim', 'configs', relative)
    else:
        path = osp.join(REPO, name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {name} not found at {path}')
    return path


def metainfo() -> Dict:
    demo_data = demo_data_module()
    palette = [(220, 20, 60), (30, 144, 255), (50, 205, 50)]
    return dict(classes=tuple(demo_data.DEMO_CLASSES), palette=palette[:len(demo_data.DEMO_CLASSES)])


def model_config(task: str, model: str, paths: Paths):
    """The model's config of a task on the synthetic data: its own model, optimizer and pipelines; the backbone
    randomly initialised, the synthetic classes, MLLA's attn_impl for the fast and plain rows."""
    from mmengine.config import Config
    row = MODELS[model]
    cfg = Config.fromfile(config_path(row.configs[task]))
    cfg.model.backbone.init_cfg = None  # no pretrained download
    if row.attn_impl:
        cfg.model.backbone.attn_impl = row.attn_impl
    if row.fast_cfg:
        cfg.model.backbone.fast_cfg = {**(cfg.model.backbone.get('fast_cfg') or {}), **row.fast_cfg}
    meta = metainfo()
    num_classes = len(meta['classes'])
    if task == 'mask_rcnn':
        cfg.model.roi_head.bbox_head.num_classes = num_classes
        cfg.model.roi_head.mask_head.num_classes = num_classes
        for split, loader in (('train', cfg.train_dataloader), ('val', cfg.test_dataloader)):
            loader.dataset.update(data_root=paths.coco + '/', ann_file=f'annotations/instances_{split}.json',
                                  data_prefix=dict(img=f'{split}/'), metainfo=meta)
        cfg.test_evaluator.ann_file = osp.join(paths.coco, 'annotations', 'instances_val.json')
    else:
        cfg.model.decode_head.num_classes = num_classes
        cfg.model.auxiliary_head.num_classes = num_classes
        for split, loader in (('training', cfg.train_dataloader), ('validation', cfg.test_dataloader)):
            # BaseSegDataset: ADE20KDataset takes only subsets of its 150 classes
            loader.dataset.update(type='BaseSegDataset', data_root=paths.ade, metainfo=meta, img_suffix='.jpg',
                                  seg_map_suffix='.png', reduce_zero_label=True,
                                  data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'))
    cfg.val_dataloader = cfg.test_dataloader
    cfg.randomness = dict(seed=0)
    return cfg


def training_config(cfg, iters: int, work_dir: str, batch: Optional[int] = None):
    """``cfg`` as an iteration-based training of ``iters`` iterations: no validation, no checkpoint saved, the
    epoch-based learning-rate schedulers dropped, the train loader's sampler infinite."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    schedulers = cfg.get('param_scheduler', None) or []
    schedulers = [schedulers] if isinstance(schedulers, dict) else schedulers
    cfg.param_scheduler = [s for s in schedulers if not s.get('by_epoch', True)] or None
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    if batch:
        cfg.train_dataloader.batch_size = batch
    hooks = cfg.default_hooks
    hooks.checkpoint = dict(type=hooks.checkpoint.get('type', 'CheckpointHook'), by_epoch=False, interval=-1,
                            save_last=False)
    hooks.logger = dict(hooks.logger, interval=min(LOG_INTERVAL, iters), log_metric_by_epoch=False)
    cfg.log_processor = dict(cfg.get('log_processor', None) or {}, by_epoch=False)
    return with_clock_hook(cfg)


def inference_config(cfg, ann_file: str, work_dir: str):
    """``cfg`` as a test over the images of ``ann_file`` (a COCO annotation file): nothing of training kept."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.train_cfg = cfg.train_dataloader = cfg.optim_wrapper = cfg.param_scheduler = None
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_dataloader.dataset.ann_file = ann_file
    cfg.test_evaluator.ann_file = ann_file
    return with_clock_hook(cfg)


def with_clock_hook(cfg):
    """``cfg`` with :class:`~mlla_mm.engine.FirstIterationClockHook` among its custom hooks."""
    cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [dict(CLOCK_HOOK)]
    return cfg


def job_config(job: str, model: str, paths: Paths, iters: int):
    """The config of a job for a model, as the job's tool reads it."""
    spec = JOBS[job]
    cfg = model_config(spec.task, model, paths)
    work_dir = osp.join(paths.root, 'runs', f'{job}_{model}')
    if spec.kind == 'train':
        return training_config(cfg, iters, work_dir, SEG_TRAIN_BATCH if spec.task == 'upernet' else None)
    cfg = inference_config(cfg, osp.join(paths.coco, 'annotations', 'instances_val.json'), work_dir)
    if spec.kind == 'test':
        cfg.model.test_cfg.rcnn.score_thr = TEST_SCORE_THR
    return cfg


def write_configs(jobs: Sequence[str], models: Sequence[str], paths: Paths, iters: int) -> Dict:
    """Write each job's config for each model into the work dir; returns ``{(job, model): config}``."""
    configs = {}
    os.makedirs(osp.join(paths.root, 'configs'), exist_ok=True)
    for job in jobs:
        for model in models:
            cfg = job_config(job, model, paths, iters)
            cfg.dump(paths.config(job, model))
            configs[job, model] = cfg
    return configs


def write_checkpoint(cfg, path: str) -> None:
    """A randomly initialised checkpoint of the config's model (the model's own ``init_weights``), in the layout
    that training writes, with the data set's classes; kept if it is there."""
    if osp.isfile(path):
        return
    import torch
    from mmengine.logging import MMLogger

    from ..apis.config import build_model
    from ..apis.distributed import convert_syncbn
    cfg = copy.deepcopy(cfg)
    convert_syncbn(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs a line per tensor
    try:
        torch.manual_seed(0)
        model = build_model(cfg)
        model.init_weights()
    finally:
        logger.setLevel(level)
    os.makedirs(osp.dirname(path), exist_ok=True)
    partial = path + '.partial'
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': metainfo()}}, partial)
    os.replace(partial, path)
    print(f'checkpoint: {path} (randomly initialised)', flush=True)


# ----------------------------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------------------------
class Run(NamedTuple):
    job: str
    model: str
    cache: str
    command: List[str]
    env: Dict[str, str]  # added to the driver's environment
    log: str


def job_command(job: str, model: str, cache: str, paths: Paths, amp: bool = True) -> List[str]:
    spec = JOBS[job]
    config, run_dir = paths.config(job, model), paths.run_dir(job, model, cache)
    if spec.kind == 'train':
        return [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, *(['--amp'] if amp else []),
                '--work-dir', run_dir]
    checkpoint = paths.checkpoint(spec.task, model)
    if spec.kind == 'test':
        return [sys.executable, osp.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir', run_dir]
    image = osp.join(paths.coco, 'val', '000000.jpg')
    return [sys.executable, osp.join(REPO, 'tools', 'demo.py'), image, config, checkpoint, '--out', run_dir]


# What the jobs load from disk besides their own data: Python's modules of the stack, the GPU libraries that a
# convolution and a matrix product bring in (cuDNN, cuBLAS), and Triton's compilers (TRITON_PRIMER)
PRIMING_CODE = """
import importlib.util, os, shutil, sys, tempfile
work = tempfile.mkdtemp()
for key, name in (('TRITON_CACHE_DIR', 'triton'), ('CUDA_CACHE_PATH', 'cuda')):
    os.environ[key] = os.path.join(work, name)  # throwaway caches: the jobs' own stay cold
import torch, mmengine, mmdet, mmseg, mlla_mm
device = 'cuda' if torch.cuda.is_available() else 'cpu'
x = torch.randn(2, 3, 64, 64, device=device)
y = torch.nn.functional.conv2d(x, torch.randn(8, 3, 3, 3, device=device)).flatten(1)
(y @ y.T).sum().item()
if device == 'cuda' and importlib.util.find_spec('triton') is not None:
    path = os.path.join(work, 'primer.py')
    with open(path, 'w') as f:
        f.write(sys.argv[1])  # TRITON_PRIMER
    spec = importlib.util.spec_from_file_location('primer', path)
    primer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(primer)
    primer.run()
shutil.rmtree(work)
"""

# A Triton kernel unrelated to any model (Triton reads a kernel's source from its file), compiled by the priming
# process: Triton's compilers and headers are then read from disk before the first timed job, not by it.
TRITON_PRIMER = """
import torch
import triton
import triton.language as tl


@triton.jit
def add_one(x_ptr, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + i, tl.load(x_ptr + i, mask=i < n) + 1, mask=i < n)


def run():
    x = torch.zeros(100, device='cuda')
    add_one[(1,)](x, 100, BLOCK=128)
    assert x.sum().item() == 100
"""


def priming_command() -> List[str]:
    """The untimed process run before the timed ones (``--no-prime``: none). On a machine that has just started,
    the first job would otherwise also pay for reading the libraries from disk, which the later ones find in the
    operating system's cache: a model's place in the order would change its time. It compiles a small Triton kernel
    too, into a cache of its own, since only the MLLA-T jobs use Triton: the first of them would otherwise read its
    compilers alone."""
    return [sys.executable, '-c', PRIMING_CODE, TRITON_PRIMER]


def plan(jobs: Sequence[str], models: Sequence[str], caches: Sequence[str], paths: Paths,
         amp: bool = True) -> List[Run]:
    """The runs in order: each job, each model, its cold run before its warm one."""
    return [Run(job, model, cache, job_command(job, model, cache, paths, amp), paths.caches(job, model),
                paths.log(job, model, cache))
            for job in jobs for model in models for cache in CACHES if cache in caches]


def shell_line(run: Run) -> str:
    """The run as one shell line: its environment variables, then the command."""
    return ' '.join([f'{key}={shlex.quote(value)}' for key, value in run.env.items()] + [shlex.join(run.command)])


class Outcome(NamedTuple):
    seconds: Optional[float]  # None: it failed
    status: str  # 'ok', 'exit N', 'timeout', or why it did not start
    first: Dict[str, float] = {}  # seconds from launch to the end of the first 'train' / 'test' iteration
    starts: Dict[str, float] = {}  # seconds from launch to the start of the 'train' / 'test' loop


def end_process_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:  # nothing of it is left
        pass


def execute(run: Run, timeout: float) -> Outcome:
    """Run one job as its own process (in its own process group, all of which a timeout ends), its output into its
    log; the seconds from its launch to its exit. A cold run starts from empty cache folders, a warm one needs
    those of its cold run."""
    for folder in run.env.values():
        if run.cache == 'cold':
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
        elif not osp.isdir(folder):
            return Outcome(None, f'no cache of a cold run at {folder}: run --cache cold first')
    os.makedirs(osp.dirname(run.log), exist_ok=True)
    with open(run.log, 'w') as log:
        log.write(f'$ {shell_line(run)}\n')
        log.flush()
        start, launch = time.perf_counter(), time.time()
        process = subprocess.Popen(run.command, cwd=REPO, env=dict(os.environ, **run.env), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except BaseException as err:  # past the timeout, or the driver stopped (Ctrl-C reaches only its own group)
            end_process_group(process.pid)
            process.wait()
            if isinstance(err, subprocess.TimeoutExpired):  # its first iteration may still have ended in time
                return Outcome(None, 'timeout', *clock_times(run.log, launch))
            raise
        seconds = time.perf_counter() - start
    end_process_group(process.pid)  # what the job left running (e.g. compile workers) must not hold the next's GPU
    if returncode != 0:
        return Outcome(None, f'exit {returncode}')
    return Outcome(seconds, 'ok', *clock_times(run.log, launch))


def clock_times(log_path: str, launch: float) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Seconds from ``launch`` (``time.time()``) to the end of each first iteration, and to the start of each loop,
    that the job's log tells of."""
    with open(log_path, errors='replace') as log:
        text = log.read()
    return tuple({mode: stamp - launch for mode, stamp in times(text).items()}
                 for times in (first_iteration_times, loop_start_times))


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def measure_name(job: str, cache: str, iters: int, test_images: int) -> str:
    """``wall_demo1_cold_s``, ``wall_train300_warm_s``, ``wall_seg_train300_cold_s``, ``wall_test500_cold_s``, ..."""
    counted = {'train300': f'train{iters}', 'seg_train300': f'seg_train{iters}', 'test500': f'test{test_images}'}
    return f'wall_{counted.get(job, job)}_{cache}_s'


def first_measure_name(job: str, mode: str, cache: str) -> str:
    """The first iteration of a job: ``wall_first_step_cold_s`` (Mask R-CNN), ``wall_seg_first_step_warm_s``
    (UperNet), ``wall_first_infer_cold_s``."""
    return _clock_measure_name(job, FIRST_ITERATIONS[mode], cache)


def start_measure_name(job: str, mode: str, cache: str) -> str:
    """The start of a job's loop: ``wall_train_start_cold_s`` (Mask R-CNN), ``wall_seg_train_start_warm_s``
    (UperNet), ``wall_test_start_cold_s``."""
    return _clock_measure_name(job, LOOP_STARTS[mode], cache)


def _clock_measure_name(job: str, name: str, cache: str) -> str:
    prefix = 'seg_' if JOBS[job].task == 'upernet' else ''
    return f'wall_{prefix}{name}_{cache}_s'


def input_name(cfg, job: str) -> str:
    """The job's input as ``BxCxHxW``: the configs' largest scale (Mask R-CNN) or crop (UperNet)."""
    spec = JOBS[job]
    height, width = (512, 512) if spec.task == 'upernet' else DET_IMAGE_SIZE
    loader = {'train': cfg.train_dataloader, 'test': cfg.test_dataloader}.get(spec.kind)
    batch = loader.batch_size if loader else 1
    return f'{batch}x3x{height}x{width}'


def csv_lines(info: Dict, run: Run, cfg, outcome: Outcome, args) -> List[Dict]:
    """The run's line (if it finished), then one per loop start and per first iteration its log told of."""
    spec = JOBS[run.job]
    common = dict(date=info['date'], commit=info['commit'], card=info['card'], torch=info['torch'], task=spec.task,
                  model=MODELS[run.model].name, input=input_name(cfg, run.job),
                  precision='fp16' if spec.kind == 'train' and args.amp else 'fp32', unit='s')
    values = [] if outcome.seconds is None else [
        (measure_name(run.job, run.cache, args.iters, args.test_images), outcome.seconds)]
    # a training job's own test loop, if any, is not its first result
    values += [(name(run.job, mode, run.cache), seconds)
               for name, times in ((start_measure_name, outcome.starts), (first_measure_name, outcome.first))
               for mode, seconds in times.items() if mode == spec.kind]
    return [dict(common, measure=measure, value=f'{seconds:.6g}') for measure, seconds in values]


MACHINE_SCRIPT = ('import json, torch; from mlla_mm.analysis.results import machine; '
                  "print(json.dumps(machine(torch.device('cuda' if torch.cuda.is_available() else 'cpu'))))")


def machine_info() -> Dict:
    """:func:`.results.machine` of the GPU the jobs use, taken in a process of its own, so that this one holds no
    GPU memory while they run."""
    result = subprocess.run([sys.executable, '-c', MACHINE_SCRIPT], cwd=REPO, capture_output=True, text=True,
                            check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                [REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p])))
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(runs: Sequence[Run], outcomes: Dict) -> None:
    """Seconds per job and model, cold and warm; a failed run shows why, one not run a dash."""
    print(f'\n{"task":<10} {"job":<13} {"model":<13} {"cold":>12} {"warm":>12}')
    for job, model in dict.fromkeys((run.job, run.model) for run in runs):
        cells = []
        for cache in CACHES:
            outcome = outcomes.get((job, model, cache))
            cells.append('-' if outcome is None else f'{outcome.seconds:.1f} s' if outcome.seconds is not None
                         else outcome.status[:12])
        print(f'{JOBS[job].task:<10} {job:<13} {MODELS[model].name:<13} {cells[0]:>12} {cells[1]:>12}')


# ----------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR,
                        help='folder for the data, configs, checkpoints, caches, runs and logs')
    parser.add_argument('--results', metavar='FILE.csv', help='append one line per finished run to this results CSV')
    parser.add_argument('--jobs', nargs='+', choices=list(JOBS), default=list(JOBS), help='in this order')
    parser.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS))
    parser.add_argument('--cache', nargs='+', choices=CACHES, default=list(CACHES),
                        help='warm alone needs the caches of an earlier cold run in the same work dir')
    parser.add_argument('--iters', type=int, default=300, help='iterations of train300 and seg_train300')
    parser.add_argument('--test-images', type=int, default=500, help='images of test500 (validation images made)')
    parser.add_argument('--train-images', type=int, default=64, help='distinct training images made per task')
    parser.add_argument('--timeout', type=float, default=3600, help='seconds a job may run before it is ended')
    parser.add_argument('--no-amp', dest='amp', action='store_false',
                        help='train in float32, without --amp (which needs a GPU)')
    parser.add_argument('--no-prime', dest='prime', action='store_false',
                        help='no untimed process before the jobs to read the libraries into the file cache')
    parser.add_argument('--dry-run', action='store_true',
                        help='write the data, configs and checkpoints and print the commands; run nothing')
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ('iters', 'test_images', 'train_images'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    check_results_argument(parser, args.results)
    return args


def prepare(args, paths: Paths) -> Dict:
    """Data, configs and the test jobs' checkpoints of a run; returns the configs (see :func:`write_configs`)."""
    make_data(paths, {JOBS[job].task for job in args.jobs}, args.train_images, args.test_images)
    configs = write_configs(args.jobs, args.models, paths, args.iters)
    for (job, model), cfg in configs.items():
        if JOBS[job].kind != 'train':
            write_checkpoint(cfg, paths.checkpoint(JOBS[job].task, model))
    return configs


def prime_file_cache(timeout: float) -> None:
    """Run :func:`priming_command` from the repository, its output discarded; a failure only warns: the timed
    jobs then show what is wrong."""
    print('untimed: reading the libraries into the file cache', flush=True)
    try:
        result = subprocess.run(priming_command(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f'  warning: still running after {timeout:.0f} s; ended', flush=True)
        return
    if result.returncode != 0:
        print(f'  warning: exit {result.returncode}: {result.stderr.strip().splitlines()[-1:]}', flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    """Prepare, then run every job (or print it, with --dry-run); 1 if a job failed, else 0."""
    args = parse_args(argv)
    paths = Paths(args.work_dir)
    configs = prepare(args, paths)
    runs = plan(args.jobs, args.models, args.cache, paths, args.amp)
    if args.dry_run:
        print(f'{len(runs)} runs, each from {REPO}; a cold run empties its cache folders first:')
        if args.prime:
            print(f'untimed, first (reads the libraries into the file cache):\n{shlex.join(priming_command())}')
        for run in runs:
            print(f'# {run.job} {run.model} {run.cache}\n{shell_line(run)}')
        return 0
    info = machine_info()
    print(f'machine: {info}', flush=True)
    if args.prime:
        prime_file_cache(args.timeout)
    outcomes, failed = {}, []
    for run in runs:
        print(f'{run.job} {run.model} {run.cache}: {shell_line(run)}', flush=True)
        outcome = execute(run, args.timeout)
        outcomes[run.job, run.model, run.cache] = outcome
        firsts = ''.join([f', {mode} loop started after {s:.1f} s' for mode, s in outcome.starts.items()]
                         + [f', first {mode} iteration after {s:.1f} s' for mode, s in outcome.first.items()])
        if outcome.seconds is None:
            failed.append(run)
            print(f'  failed ({outcome.status}{firsts}); the end of {run.log}:\n{log_tail(run.log)}', flush=True)
        else:
            print(f'  {outcome.seconds:.1f} s{firsts}', flush=True)
        if args.results and (outcome.seconds is not None or outcome.first or outcome.starts):
            append_csv(csv_lines(info, run, configs[run.job, run.model], outcome, args), args.results)
    print_table(runs, outcomes)
    if args.results:
        print(f'wrote {args.results}')
    if failed:
        print(f'{len(failed)} of {len(runs)} runs failed: '
              + ', '.join(f'{run.job} {run.model} {run.cache}' for run in failed))
        return 1
    return 0
