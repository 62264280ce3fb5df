"""tools/train.py, tools/test.py, tools/dist_train.sh and mlla_mm.apis on the CPU, with the demo configs on a tiny
synthetic data set (8 train / 4 val images of 64 x 64 pixels, trained at 64 x 64).

Command-line runs are subprocesses in a work area whose ``data/demo`` holds the data, as the demo configs expect;
they use one thread each (OMP_NUM_THREADS=1), which keeps them fast when the two cores are shared.
"""
import json
import os
import os.path as osp
import pickle
import re
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

from mlla_mm.apis import (DataError, build_runner, load_config, prepare_test_config, prepare_train_config,
                          task_of)
from mlla_mm.checkpoint import safe_torch_load

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.append(osp.join(REPO, 'tools'))  # tools/demo_data.py, which the demo scripts import by name

from demo_data import ensure_demo_data  # noqa: E402

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
DET_DEMO = osp.join(REPO, 'configs', 'demo', 'mask_rcnn_mlla_t_demo.py')
SEG_DEMO = osp.join(REPO, 'configs', 'demo', 'upernet_mlla_t_demo.py')
SEG_FULL = osp.join(REPO, 'configs', 'segmentation', 'upernet_mlla_t.py')
SIZE = 64

# Test-only hooks for the resume test: reseed all RNGs from the iteration number, so that a run resumed from a
# checkpoint draws the same random numbers (flips, RoI sampling, dropout) as an uninterrupted one; and end the
# process abruptly before a given iteration (a crash in the middle of an epoch).
HOOKS_MODULE = '''
import os
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ReseedEveryIterHook(Hook):
    priority = 'HIGHEST'

    def __init__(self, seed=0):
        self.seed = seed

    def _reseed(self, next_iter):
        s = self.seed * 1000 + next_iter
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)

    def before_train_epoch(self, runner):  # before the epoch's first batch is loaded
        self._reseed(runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):  # before the next batch
        self._reseed(runner.iter + 1)


@HOOKS.register_module()
class ExitBeforeIterHook(Hook):
    priority = 'LOWEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == int(os.environ.get('MLLA_TEST_EXIT_BEFORE_ITER', '-1')):
            os._exit(17)
'''


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _resize_index(pipeline):
    return [i for i, t in enumerate(pipeline) if t['type'] == 'Resize'][0]


def fast_options(config, batch_size=2, num_train=4, seed=0):
    """--cfg-options that make a demo config cheap on a CPU: 64 x 64 inputs, few images, no workers, and (for
    Mask R-CNN) fewer proposals / RoIs."""
    cfg = Config.fromfile(config)
    opts = [f'randomness.seed={seed}', 'randomness.deterministic=True', 'default_hooks.logger.interval=1',
            f'train_dataloader.dataset.indices={num_train}']
    for split in ('train', 'val', 'test'):
        i = _resize_index(cfg[f'{split}_dataloader'].dataset.pipeline)
        opts += [f'{split}_dataloader.num_workers=0', f'{split}_dataloader.batch_size={batch_size}',
                 f'{split}_dataloader.dataset.pipeline.{i}.scale=({SIZE},{SIZE})']
    if task_of(cfg) == 'mmdet':
        opts += ['model.train_cfg.rpn_proposal.max_per_img=100', 'model.train_cfg.rcnn.sampler.num=64',
                 'model.test_cfg.rpn.max_per_img=100', 'model.test_cfg.rcnn.max_per_img=20']
    else:
        opts += [f'model.data_preprocessor.size=({SIZE},{SIZE})']
    return opts


def options_dict(opts):
    """The same options as a dict for load_config (values parsed as DictAction does)."""
    from mmengine.config import DictAction
    return {k: DictAction._parse_iterable(v) for k, v in (o.split('=', 1) for o in opts)}


def run(cmd, cwd, env=None, timeout=600):
    """Run ``cmd``; ``env`` adds to the environment, and a value of None removes the variable."""
    full_env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable)
    full_env['PYTHONPATH'] = os.pathsep.join([REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    full_env.update(env or {})
    full_env = {key: value for key, value in full_env.items() if value is not None}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc


def python(*args, cwd, env=None):
    return run([sys.executable, *args], cwd=cwd, env=env)


def assert_ok(proc):
    assert proc.returncode == 0, f'exit status {proc.returncode}\n{proc.output[-6000:]}'


def checkpoints(work_dir):
    return sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def area(tmp_path_factory):
    """Work area: data/demo/{coco,ade} with 8 train and 4 val images of 64 x 64 pixels."""
    root = tmp_path_factory.mktemp('tools')
    ensure_demo_data(str(root / 'data' / 'demo'), num_train=8, num_val=4, image_size=SIZE, seed=0)
    return root


@pytest.fixture(scope='module')
def det_trained(area):
    """One epoch (2 iterations of 2 images, then validation) of the detection demo through tools/train.py."""
    work_dir = area / 'det_train'
    proc = python(TRAIN, DET_DEMO, '--work-dir', str(work_dir),
                  '--cfg-options', 'train_cfg.max_epochs=1', *fast_options(DET_DEMO), cwd=area)
    return work_dir, proc


@pytest.fixture(scope='module')
def seg_syncbn_trained(area):
    """One epoch of the segmentation demo with its heads switched to SyncBN, single process on the CPU."""
    work_dir = area / 'seg_syncbn'
    proc = python(TRAIN, SEG_DEMO, '--work-dir', str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
                  'train_cfg.val_interval=5', 'model.decode_head.norm_cfg.type=SyncBN',
                  'model.auxiliary_head.norm_cfg.type=SyncBN', *fast_options(SEG_DEMO), cwd=area)
    return work_dir, proc


# ----------------------------------------------------------------------------------------------------------------
# (a) training writes a checkpoint
# ----------------------------------------------------------------------------------------------------------------
def test_train_writes_checkpoint(det_trained):
    work_dir, proc = det_trained
    assert_ok(proc)
    assert checkpoints(work_dir) == ['epoch_1.pth']
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip() == str(work_dir / 'epoch_1.pth')
    ckpt = safe_torch_load(str(work_dir / 'epoch_1.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    assert any(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert ckpt['meta']['dataset_meta']['classes'] == ('square', 'circle', 'triangle')
    # trained: AdamW keeps a step count per parameter it updated; the epoch had 2 iterations
    steps = {float(state['step']) for state in ckpt['optimizer']['state'].values()}
    assert max(steps, default=0.) == 2. and steps <= {1., 2.}, f'optimizer step counts {steps}, expected 2'
    assert 'coco/bbox_mAP' in proc.output  # validation ran after the epoch


# ----------------------------------------------------------------------------------------------------------------
# (b) an interrupted run resumes to the same end state as an uninterrupted one
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_after_crash_matches_uninterrupted_run(area):
    hooks_dir = area / 'hooks'
    hooks_dir.mkdir(exist_ok=True)
    (hooks_dir / 'resume_test_hooks.py').write_text(HOOKS_MODULE)
    config = area / 'det_resume.py'
    config.write_text(textwrap.dedent(f'''\
        _base_ = [{DET_DEMO!r}]
        custom_imports = dict(imports=['mlla_mm', 'resume_test_hooks'], allow_failed_imports=False)
        custom_hooks = [dict(type='ReseedEveryIterHook', seed=0), dict(type='ExitBeforeIterHook')]
        '''))
    # 2 epochs x 2 iterations, a checkpoint per epoch, no validation
    opts = ['--cfg-options', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=10', *fast_options(DET_DEMO)]
    env = {'PYTHONPATH': os.pathsep.join([REPO, str(hooks_dir)])}
    full, part = area / 'resume_full', area / 'resume_part'

    proc = python(TRAIN, str(config), '--work-dir', str(full), *opts, cwd=area, env=env)
    assert_ok(proc)
    assert checkpoints(full) == ['epoch_1.pth', 'epoch_2.pth']

    # killed before iteration 4 of 4 (the 2nd of epoch 2): only epoch 1 was saved
    proc = python(TRAIN, str(config), '--work-dir', str(part), *opts, cwd=area,
                  env=dict(env, MLLA_TEST_EXIT_BEFORE_ITER='3'))
    assert proc.returncode == 17, proc.output[-4000:]
    assert checkpoints(part) == ['epoch_1.pth']

    proc = python(TRAIN, str(config), '--work-dir', str(part), '--resume', *opts, cwd=area, env=env)
    assert_ok(proc)
    assert 'resumed epoch: 1, iter: 2' in proc.output
    assert 'Epoch(train) [1]' not in proc.output and 'Epoch(train) [2][2/2]' in proc.output
    assert checkpoints(part) == ['epoch_1.pth', 'epoch_2.pth']

    a = safe_torch_load(str(full / 'epoch_2.pth'), map_location='cpu')
    b = safe_torch_load(str(part / 'epoch_2.pth'), map_location='cpu')
    assert (a['meta']['epoch'], a['meta']['iter']) == (b['meta']['epoch'], b['meta']['iter']) == (2, 4)
    assert a['state_dict'].keys() == b['state_dict'].keys()
    different = [k for k in a['state_dict'] if not torch.equal(a['state_dict'][k], b['state_dict'][k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:5]}'
    # the runs did train (epoch 2 changed the weights), so equal end states are not trivially equal
    e1 = safe_torch_load(str(full / 'epoch_1.pth'), map_location='cpu')['state_dict']
    assert any(not torch.equal(e1[k], a['state_dict'][k]) for k in e1)
    # an explicit checkpoint path resumes from that file
    proc = python(TRAIN, str(config), '--work-dir', str(area / 'resume_explicit'), '--resume',
                  str(full / 'epoch_2.pth'), *opts, cwd=area, env=env)
    assert_ok(proc)
    assert 'resumed epoch: 2, iter: 4' in proc.output and 'Epoch(train)' not in proc.output


# ----------------------------------------------------------------------------------------------------------------
# (c) two processes on the CPU through tools/dist_train.sh
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_dist_train_two_cpu_processes(area):
    work_dir = area / 'dist'
    proc = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), DET_DEMO, '2', '--work-dir', str(work_dir),
                '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=10', *fast_options(DET_DEMO)],
               cwd=area, env={'PORT': str(free_port())})
    assert_ok(proc)
    assert checkpoints(work_dir) == ['epoch_1.pth']
    # 4 images, 2 per process and iteration: one iteration per epoch (a single process would take two)
    assert 'Epoch(train) [1][1/1]' in proc.output and '[1][2/' not in proc.output
    dumped = Config.fromfile(str(work_dir / 'mask_rcnn_mlla_t_demo.py'))
    assert dumped.env_cfg.dist_cfg.backend == 'gloo' and dumped.launcher == 'pytorch'
    ckpt = safe_torch_load(str(work_dir / 'epoch_1.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 1
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])  # DDP wrapper stripped


# ----------------------------------------------------------------------------------------------------------------
# (d) testing a checkpoint: metrics, drawn images, dumped results
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def det_tested(area, det_trained):
    """tools/test.py on the checkpoint of det_trained, drawing into det_show and dumping det_results.pkl."""
    train_dir, train_proc = det_trained
    assert_ok(train_proc)
    proc = python(TEST, DET_DEMO, str(train_dir / 'epoch_1.pth'), '--work-dir', str(area / 'det_test'),
                  '--show-dir', str(area / 'det_show'), '--out', str(area / 'det_results.pkl'), '--cfg-options',
                  *fast_options(DET_DEMO), cwd=area)
    return proc


def test_test_prints_bbox_map_and_writes_images(area, det_tested):
    proc = det_tested
    assert_ok(proc)
    m = re.search(r'coco/bbox_mAP: (-?[0-9.]+)', proc.output)
    assert m, 'no bbox mAP printed'
    assert re.search(r'coco/segm_mAP: (-?[0-9.]+)', proc.output)
    val_images = sorted(os.listdir(area / 'data' / 'demo' / 'coco' / 'val'))
    assert sorted(os.listdir(area / 'det_show')) == val_images
    with open(area / 'det_results.pkl', 'rb') as f:
        results = pickle.load(f)
    assert len(results) == len(val_images) and all('pred_instances' in r for r in results)
    # the printed mAP is that of the dumped predictions against the validation annotations (COCO reports -1 when
    # it finds no ground truth, so a mAP of at least 0 also shows that the annotations were read)
    from mmdet.evaluation import CocoMetric
    metric = CocoMetric(ann_file=str(area / 'data' / 'demo' / 'coco' / 'annotations' / 'instances_val.json'),
                        metric='bbox')
    metric.dataset_meta = dict(classes=('square', 'circle', 'triangle'))
    metric.process({}, results)
    recomputed = metric.evaluate(len(results))['coco/bbox_mAP']
    assert 0. <= recomputed and float(m.group(1)) == pytest.approx(recomputed, abs=1e-3)
    # the metrics also land as JSON in the work dir
    metric_files = [osp.join(dp, f) for dp, _, fs in os.walk(area / 'det_test') for f in fs if f.endswith('.json')
                    and not f.startswith('scalars')]
    assert any('coco/bbox_mAP' in json.load(open(p)) for p in metric_files)


@pytest.mark.slow
def test_dist_test_two_cpu_processes_match_single_process(area, det_trained, det_tested):
    assert_ok(det_tested)
    out = area / 'det_results_dist.pkl'
    proc = run(['bash', osp.join(REPO, 'tools', 'dist_test.sh'), DET_DEMO, str(det_trained[0] / 'epoch_1.pth'),
                '2', '--work-dir', str(area / 'det_test_dist'), '--out', str(out), '--cfg-options',
                *fast_options(DET_DEMO, batch_size=1)], cwd=area, env={'PORT': str(free_port())})
    assert_ok(proc)
    assert 'Epoch(test) [2/2]' in proc.output  # 4 images, 1 per process and iteration
    assert 'coco/bbox_mAP' in proc.output
    with open(out, 'rb') as f:
        dist_results = {r['img_id']: r['pred_instances'] for r in pickle.load(f)}
    with open(area / 'det_results.pkl', 'rb') as f:
        single_results = {r['img_id']: r['pred_instances'] for r in pickle.load(f)}
    assert sorted(dist_results) == sorted(single_results) == [1, 2, 3, 4]
    for img_id, single in single_results.items():
        dist = dist_results[img_id]
        assert dist['bboxes'].shape == single['bboxes'].shape
        torch.testing.assert_close(dist['bboxes'], single['bboxes'], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(dist['scores'], single['scores'], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_test_segmentation_with_tta_and_png_output(area, seg_syncbn_trained):
    train_dir, train_proc = seg_syncbn_trained
    assert_ok(train_proc)
    out_dir, show_dir = area / 'seg_pred', area / 'seg_show'
    proc = python(TEST, SEG_DEMO, str(train_dir / 'epoch_1.pth'), '--work-dir', str(area / 'seg_test'), '--tta',
                  '--out', str(out_dir), '--show-dir', str(show_dir), '--cfg-options', *fast_options(SEG_DEMO),
                  cwd=area)
    assert_ok(proc)
    assert re.search(r'mIoU: [0-9.]+', proc.output)
    dumped = Config.fromfile(str(area / 'seg_test' / 'upernet_mlla_t_demo.py'))
    assert dumped.model.type == 'SegTTAModel' and dumped.model.module.type == 'EncoderDecoder'
    assert dumped.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
    assert len([f for f in os.listdir(out_dir) if f.endswith('.png')]) == 4
    drawn = [f for dp, _, fs in os.walk(show_dir) for f in fs if f.endswith('.png')]
    assert len(drawn) == 4


# ----------------------------------------------------------------------------------------------------------------
# (f) SyncBN in a single CPU process
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_syncbn_config_trains_single_process_on_cpu(seg_syncbn_trained):
    work_dir, proc = seg_syncbn_trained
    assert_ok(proc)
    assert re.search(r'SyncBN -> BN: converted [1-9][0-9]* SyncBN', proc.output)
    assert checkpoints(work_dir) == ['epoch_1.pth']
    dumped = (work_dir / 'upernet_mlla_t_demo.py').read_text()
    assert 'SyncBN' not in dumped and "type='BN'" in dumped


def test_syncbn_conversion_and_cpu_distributed_settings(area):
    """The ADE20K config (SyncBN heads), pointed at the demo data, which has the same layout."""
    data = {f'{split}_dataloader.dataset.data_root': str(area / 'data' / 'demo' / 'ade') for split in ('train', 'val')}
    data['model.backbone.init_cfg'] = None  # no ImageNet weights here
    assert 'SyncBN' in load_config(SEG_FULL, data).pretty_text
    cfg = prepare_train_config(load_config(SEG_FULL, data), work_dir='unused')
    assert 'SyncBN' not in repr(cfg.model) and cfg.head_norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg.type == 'BN' and cfg.model.auxiliary_head.norm_cfg.type == 'BN'
    assert 'model_wrapper_cfg' not in cfg
    cfg = prepare_train_config(load_config(SEG_FULL, data), work_dir='unused', launcher='pytorch')
    if not torch.cuda.is_available():
        assert 'SyncBN' not in repr(cfg.model)
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg.type == 'CPUDistributedDataParallel'
    else:  # distributed on GPUs keeps SyncBN and NCCL
        assert cfg.model.decode_head.norm_cfg.type == 'SyncBN' and cfg.env_cfg.dist_cfg.backend == 'nccl'


# ----------------------------------------------------------------------------------------------------------------
# launch scripts, options
# ----------------------------------------------------------------------------------------------------------------
def _fake_commands(tmp_path, names):
    """Executables that append their own path and arguments (one a line) to tmp_path/args.txt."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> "{tmp_path / "args.txt"}"\n')
        exe.chmod(0o755)
    return bin_dir


def _recorded(tmp_path):
    path = tmp_path / 'args.txt'
    lines = path.read_text().splitlines()
    path.unlink()
    return lines


def test_launch_scripts_command_lines(tmp_path):
    bin_dir = _fake_commands(tmp_path, ['srun', 'python'])
    fake_python = str(bin_dir / 'python')
    tools = osp.join(REPO, 'tools')
    env = {'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', 'PYTHON': fake_python}

    multi_node = dict(env, NNODES='2', NODE_RANK='1', MASTER_ADDR='10.1.2.3', PORT='12345')
    assert_ok(run(['bash', osp.join(tools, 'dist_train.sh'), 'a.py', '4', '--amp', '--cfg-options', 'x=[1,2]'],
                  cwd=tmp_path, env=multi_node))
    torchrun = [fake_python, '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1', '--master_addr=10.1.2.3',
                '--master_port=12345', '--nproc_per_node=4']
    assert _recorded(tmp_path) == torchrun + [osp.join(tools, 'train.py'), 'a.py', '--launcher', 'pytorch', '--amp',
                                              '--cfg-options', 'x=[1,2]']
    assert_ok(run(['bash', osp.join(tools, 'dist_test.sh'), 'a.py', 'c.pth', '4', '--tta'], cwd=tmp_path,
                  env=multi_node))
    assert _recorded(tmp_path) == torchrun + [osp.join(tools, 'test.py'), 'a.py', 'c.pth', '--launcher', 'pytorch',
                                              '--tta']
    # defaults: one node, local master, port 29500
    assert_ok(run(['bash', osp.join(tools, 'dist_train.sh'), 'a.py', '2'], cwd=tmp_path, env=env))
    assert _recorded(tmp_path)[3:8] == ['--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
                                        '--master_port=29500', '--nproc_per_node=2']

    slurm = dict(env, GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='3', SRUN_ARGS='--quotatype=auto --time=10')
    srun = [str(bin_dir / 'srun'), '-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
            '--ntasks-per-node=8', '--cpus-per-task=3', '--kill-on-bad-exit=1', '--quotatype=auto', '--time=10',
            fake_python, '-u']
    assert_ok(run(['bash', osp.join(tools, 'slurm_train.sh'), 'part', 'job', 'a.py', 'wd', '--resume'],
                  cwd=tmp_path, env=slurm))
    assert _recorded(tmp_path) == srun + [osp.join(tools, 'train.py'), 'a.py', '--work-dir=wd', '--launcher=slurm',
                                          '--resume']
    assert_ok(run(['bash', osp.join(tools, 'slurm_test.sh'), 'part', 'job', 'a.py', 'c.pth', '--out', 'r.pkl'],
                  cwd=tmp_path, env=slurm))
    assert _recorded(tmp_path) == srun + [osp.join(tools, 'test.py'), 'a.py', 'c.pth', '--launcher=slurm', '--out',
                                          'r.pkl']
    # missing arguments: usage, non-zero exit, nothing started
    proc = run(['bash', osp.join(tools, 'dist_train.sh'), 'a.py'], cwd=tmp_path, env=env)
    assert proc.returncode != 0 and 'usage' in proc.stderr and not (tmp_path / 'args.txt').exists()


# ----------------------------------------------------------------------------------------------------------------
# the tools find the repository's .venv by themselves
# ----------------------------------------------------------------------------------------------------------------
BARE_PYTHON = [sys.executable, '-S']  # without site-packages: neither torch nor mmengine can be imported


def _checkout_copy(root, venv_script=None):
    """A checkout at ``root``: a copy of tools/, links to mlla_mm/ and configs/, and, when given, a
    .venv/bin/python that is the shell script ``venv_script``."""
    shutil.copytree(osp.join(REPO, 'tools'), root / 'tools', ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('mlla_mm', 'configs'):
        (root / name).symlink_to(osp.join(REPO, name))
    venv_python = root / '.venv' / 'bin' / 'python'
    if venv_script:
        venv_python.parent.mkdir(parents=True)
        venv_python.write_text(venv_script)
        venv_python.chmod(0o755)
    return root, venv_python


def test_tools_run_with_the_repository_venv_from_a_python_without_torch(tmp_path):
    assert run(BARE_PYTHON + ['-c', 'import torch'], cwd=tmp_path).returncode != 0  # the premise
    used = tmp_path / 'venv_used.txt'
    root, venv_python = _checkout_copy(
        tmp_path / 'checkout', f'#!/bin/sh\necho "$0" >> "{used}"\nexec "{sys.executable}" "$@"\n')
    no_pythonpath = {'PYTHONPATH': None}  # the tool finds this checkout's mlla_mm itself
    for tool in ('train.py', 'test.py', 'make_demo_data.py'):
        proc = run(BARE_PYTHON + [str(root / 'tools' / tool), '--help'], cwd=tmp_path, env=no_pythonpath)
        assert_ok(proc)
        assert f'usage: {tool}' in proc.stdout
    assert used.read_text().splitlines() == [str(venv_python)] * 3

    # a .venv without torch either: one try, then a message instead of a loop
    used.unlink()
    root, venv_python = _checkout_copy(
        tmp_path / 'unfinished', f'#!/bin/sh\necho "$0" >> "{used}"\nexec {" ".join(BARE_PYTHON)} "$@"\n')
    proc = run(BARE_PYTHON + [str(root / 'tools' / 'train.py'), '--help'], cwd=tmp_path, env=no_pythonpath)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert f'{venv_python} cannot import torch, mmengine either' in proc.stderr and 'make env' in proc.stderr
    assert used.read_text().splitlines() == [str(venv_python)]

    # no .venv: says how to make one
    root, venv_python = _checkout_copy(tmp_path / 'no_venv')
    proc = run(BARE_PYTHON + [str(root / 'tools' / 'train.py'), '--help'], cwd=tmp_path, env=no_pythonpath)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert f'there is no {venv_python}: run `make env`' in proc.stderr


def test_launch_scripts_use_the_repository_venv_unless_python_is_set(tmp_path):
    bin_dir = _fake_commands(tmp_path, ['srun', 'python'])
    root, venv_python = _checkout_copy(
        tmp_path / 'checkout', f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> "{tmp_path / "args.txt"}"\n')
    tools = root / 'tools'
    env = {'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', 'PYTHON': None}
    assert_ok(run(['bash', str(tools / 'dist_train.sh'), 'a.py', '2'], cwd=tmp_path, env=env))
    assert _recorded(tmp_path)[:3] == [str(venv_python), '-m', 'torch.distributed.run']
    assert_ok(run(['bash', str(tools / 'slurm_test.sh'), 'part', 'job', 'a.py', 'c.pth'], cwd=tmp_path, env=env))
    assert _recorded(tmp_path)[-6:] == [str(venv_python), '-u', str(tools / 'test.py'), 'a.py', 'c.pth',
                                        '--launcher=slurm']
    # PYTHON names another interpreter: that one runs
    assert_ok(run(['bash', str(tools / 'dist_test.sh'), 'a.py', 'c.pth', '2'], cwd=tmp_path,
                  env=dict(env, PYTHON=str(bin_dir / 'python'))))
    assert _recorded(tmp_path)[0] == str(bin_dir / 'python')
    # no .venv: the python of the PATH
    venv_python.unlink()
    assert_ok(run(['bash', str(tools / 'dist_train.sh'), 'a.py', '2'], cwd=tmp_path, env=env))
    assert _recorded(tmp_path)[0] == str(bin_dir / 'python')


def test_slurm_launcher_on_cpu_initialises_gloo(tmp_path):
    code = ('import torch.distributed as d\n'
            'from mlla_mm.apis.distributed import init_cpu_distributed\n'
            'init_cpu_distributed("slurm", {})\n'
            'print("group", d.get_backend(), d.get_world_size(), d.get_rank())\n'
            'd.destroy_process_group()\n')
    env = {'SLURM_PROCID': '0', 'SLURM_NTASKS': '1', 'SLURM_NODELIST': 'node1', 'SLURM_LOCALID': '0',
           'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(free_port())}
    proc = python('-c', code, cwd=tmp_path, env=env)
    assert_ok(proc)
    assert 'group gloo 1 0' in proc.stdout


def test_tta_configs(area, monkeypatch):
    monkeypatch.chdir(area)
    # mmdet's DetTTAModel merges boxes only: refused up front for Mask R-CNN
    with pytest.raises(ValueError, match='--tta.*mask'):
        prepare_test_config(load_config(DET_DEMO), None, tta=True)
    box_only = {'model.roi_head.mask_head': None, 'model.roi_head.mask_roi_extractor': None}
    cfg = prepare_test_config(load_config(DET_DEMO, box_only), None, tta=True)
    assert cfg.model.type == 'DetTTAModel' and cfg.model.module.type == 'MaskRCNN'
    tta = cfg.test_dataloader.dataset.pipeline[-1]
    assert tta.type == 'TestTimeAug' and [t.prob for t in tta.transforms[0]] == [1.0, 0.0]
    assert {'flip', 'flip_direction'} <= set(tta.transforms[1][0].meta_keys)
    seg = prepare_test_config(load_config(SEG_DEMO), None, tta=True)
    assert seg.model.type == 'SegTTAModel' and seg.model.module.type == 'EncoderDecoder'
    assert seg.test_dataloader.dataset.pipeline == seg.tta_pipeline


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only message')
def test_amp_without_gpu_says_it_needs_one(area):
    with pytest.raises(RuntimeError, match='--amp.*needs a CUDA GPU'):
        prepare_train_config(load_config(DET_DEMO), amp=True)
    proc = python(TRAIN, DET_DEMO, '--amp', '--work-dir', str(area / 'amp'), cwd=area)
    assert proc.returncode != 0 and 'needs a CUDA GPU' in proc.stderr


def test_amp_and_auto_scale_lr_config(area, monkeypatch):
    monkeypatch.chdir(area)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = prepare_train_config(load_config(DET_DEMO), work_dir='unused', amp=True, auto_scale_lr=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'float16'
    assert cfg.auto_scale_lr.enable is True
    seg = load_config(SEG_DEMO)
    seg.pop('auto_scale_lr', None)
    with pytest.raises(ValueError, match='auto_scale_lr'):
        prepare_train_config(seg, work_dir='unused', auto_scale_lr=True)


def test_task_of_and_unknown_scope(tmp_path):
    assert task_of(load_config(DET_DEMO)) == 'mmdet' and task_of(load_config(SEG_DEMO)) == 'mmseg'
    bad = tmp_path / 'cls.py'
    bad.write_text("default_scope = 'mmpretrain'\nmodel = dict(type='ImageClassifier')\n")
    with pytest.raises(ValueError, match="default_scope='mmpretrain'.*'mmdet'.*'mmseg'"):
        prepare_train_config(load_config(str(bad)))
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        load_config(str(tmp_path / 'no_such_config.py'))


def test_resume_auto_without_checkpoint_starts_afresh(area, tmp_path, monkeypatch):
    monkeypatch.chdir(area)
    cfg = prepare_train_config(load_config(DET_DEMO, {'load_from': None}), work_dir=str(tmp_path), resume='auto')
    assert cfg.resume is False
    (tmp_path / 'epoch_3.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    cfg = prepare_train_config(load_config(DET_DEMO), work_dir=str(tmp_path), resume='auto')
    assert cfg.resume is True and cfg.load_from == str(tmp_path / 'epoch_3.pth')


# ----------------------------------------------------------------------------------------------------------------
# (e) bad input: the error names the file
# ----------------------------------------------------------------------------------------------------------------
BAD = '/nonexistent/mlla_mm_test'


@pytest.mark.parametrize('option,path', [
    ({'train_dataloader.dataset.data_root': BAD + '/coco/'}, BAD + '/coco/'),
    ({'train_dataloader.dataset.ann_file': BAD + '/train.json'}, BAD + '/train.json'),
    ({'train_dataloader.dataset.ann_file': 'annotations/missing.json'}, 'data/demo/coco/annotations/missing.json'),
    ({'train_dataloader.dataset.data_prefix.img': 'no_such_images/'}, 'data/demo/coco/no_such_images/'),
    ({'val_dataloader.dataset.data_prefix.img': BAD + '/val/'}, BAD + '/val/'),
    ({'val_evaluator.ann_file': BAD + '/val.json'}, BAD + '/val.json'),
    ({'load_from': BAD + '/weights.pth'}, BAD + '/weights.pth'),
    ({'model.backbone.init_cfg': {'_delete_': True, 'type': 'Pretrained', 'checkpoint': BAD + '/MLLA_T.pth'}},
     BAD + '/MLLA_T.pth'),
])
def test_missing_train_input_named(area, monkeypatch, option, path):
    monkeypatch.chdir(area)
    with pytest.raises(FileNotFoundError) as info:
        prepare_train_config(load_config(DET_DEMO, option), work_dir=str(area / 'unused'))
    assert path in str(info.value)


def test_missing_resume_and_test_checkpoints_named(area, monkeypatch):
    monkeypatch.chdir(area)
    # the COCO config expects ImageNet weights at pretrained/MLLA_T.pth
    with pytest.raises(FileNotFoundError, match='pretrained/MLLA_T.pth'):
        prepare_train_config(load_config(osp.join(REPO, 'configs', 'detection', 'mask_rcnn_mlla_t.py')))
    with pytest.raises(FileNotFoundError, match=re.escape(BAD + '/epoch_7.pth')):
        prepare_train_config(load_config(DET_DEMO), work_dir=str(area / 'unused'), resume=BAD + '/epoch_7.pth')
    with pytest.raises(FileNotFoundError, match=re.escape(BAD + '/epoch_8.pth')):
        prepare_test_config(load_config(SEG_DEMO), BAD + '/epoch_8.pth', work_dir=str(area / 'unused'))
    with pytest.raises(FileNotFoundError, match=re.escape(BAD + '/ade/')):
        prepare_test_config(load_config(SEG_DEMO, {'test_dataloader.dataset.data_root': BAD + '/ade/'}), None)
    # a last_checkpoint that points to a deleted file
    work_dir = area / 'stale'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_9.pth'))
    with pytest.raises(FileNotFoundError, match=re.escape(str(work_dir / 'epoch_9.pth'))):
        prepare_train_config(load_config(DET_DEMO), work_dir=str(work_dir), resume='auto')


def test_cli_bad_input_exits_nonzero_naming_file(area):
    proc = python(TRAIN, DET_DEMO, '--work-dir', str(area / 'bad_cli'), '--cfg-options',
                  'train_dataloader.dataset.ann_file=annotations/nope.json', cwd=area)
    assert proc.returncode != 0 and 'data/demo/coco/annotations/nope.json' in proc.stderr
    proc = python(TEST, DET_DEMO, BAD + '/missing.pth', cwd=area)
    assert proc.returncode != 0 and BAD + '/missing.pth' in proc.stderr
    proc = python(TRAIN, DET_DEMO, '--resume', BAD + '/resume.pth', cwd=area)
    assert proc.returncode != 0 and BAD + '/resume.pth' in proc.stderr


def _copy_coco(area, name):
    dst = area / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(area / 'data' / 'demo' / 'coco', dst)
    return dst


def test_empty_annotation_file_named(area, monkeypatch):
    monkeypatch.chdir(area)
    root = _copy_coco(area, 'coco_empty')
    ann = root / 'annotations' / 'instances_train.json'
    ann.write_bytes(b'')
    with pytest.raises(DataError, match=re.escape(str(ann)) + '.*empty'):
        prepare_train_config(load_config(DET_DEMO, {'train_dataloader.dataset.data_root': str(root)}))

    # valid JSON without images: the dataset is built (by the Runner) and refused
    coco = json.load(open(area / 'data' / 'demo' / 'coco' / 'annotations' / 'instances_train.json'))
    ann.write_text(json.dumps(dict(images=[], annotations=[], categories=coco['categories'])))
    opts = options_dict(fast_options(DET_DEMO))
    opts.update({'train_dataloader.dataset.data_root': str(root), 'train_cfg.max_epochs': 1})
    cfg = prepare_train_config(load_config(DET_DEMO, opts), work_dir=str(area / 'empty_run'))
    runner = build_runner(cfg)
    with pytest.raises(DataError, match=re.escape(str(ann)) + '.*no samples'):
        runner.train()


def test_corrupt_image_named(area, monkeypatch):
    monkeypatch.chdir(area)
    root = _copy_coco(area, 'coco_corrupt')
    bad = root / 'train' / '000002.jpg'
    bad.write_bytes(b'this is not a jpeg' * 10)
    opts = options_dict(fast_options(DET_DEMO))
    coco = json.load(open(root / 'annotations' / 'instances_train.json'))
    index = [i for i, im in enumerate(coco['images']) if im['file_name'] == '000002.jpg'][0]
    opts.update({'train_dataloader.dataset.data_root': str(root), 'train_cfg.max_epochs': 1,
                 'train_dataloader.dataset.indices': [index], 'train_dataloader.batch_size': 1})
    runner = build_runner(prepare_train_config(load_config(DET_DEMO, opts), work_dir=str(area / 'corrupt_run')))
    with pytest.raises(Exception) as info:
        runner.train()
    assert str(bad) in str(info.value)


def test_corrupt_label_map_named(area, monkeypatch):
    """mmseg reads label maps with Pillow, whose error does not name the file; the tools' wrapper adds it."""
    monkeypatch.chdir(area)
    root = area / 'ade_corrupt'
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(area / 'data' / 'demo' / 'ade', root)
    labels = root / 'annotations' / 'validation'
    bad = labels / sorted(os.listdir(labels))[0]
    bad.write_bytes(b'not a png' * 10)
    opts = options_dict(fast_options(SEG_DEMO))
    opts.update({'test_dataloader.dataset.data_root': str(root)})
    runner = build_runner(prepare_test_config(load_config(SEG_DEMO, opts), None, work_dir=str(area / 'seg_bad')))
    with pytest.raises(DataError) as info:
        runner.test()
    assert str(bad) in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# tools/run_demo.py --fresh and tools/demo.py --out never delete or overwrite what is not theirs
# ----------------------------------------------------------------------------------------------------------------
def _tree(root):
    """relative path -> file bytes (folders: None) of everything below root."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            tree[osp.relpath(osp.join(dirpath, name), root)] = None
        for name in filenames:
            with open(osp.join(dirpath, name), 'rb') as f:
                tree[osp.relpath(osp.join(dirpath, name), root)] = f.read()
    return tree


def test_run_demo_fresh_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    import run_demo  # tools/run_demo.py
    users = tmp_path / 'results'
    (users / '20240101_120000').mkdir(parents=True)
    (users / '20240101_120000' / 'log.txt').write_text('a log of the user')
    (users / 'epoch_1.pth').write_bytes(b'weights of the user')
    (users / 'notes.txt').write_text('keep me')
    before = _tree(users)
    for argv in (['--fresh', '--work-dir', str(users)], ['--work-dir', str(users)]):
        with pytest.raises(SystemExit) as err:
            run_demo.main(argv)
        assert str(users) in str(err.value) and 'not empty and no demo run made it' in str(err.value)
        assert _tree(users) == before
    (tmp_path / 'a_file').write_text('x')
    with pytest.raises(SystemExit, match='a_file is a file, not a folder'):
        run_demo.main(['--fresh', '--work-dir', str(tmp_path / 'a_file')])


def test_run_demo_fresh_deletes_only_what_demo_runs_wrote(tmp_path):
    import run_demo  # tools/run_demo.py
    work = tmp_path / 'work'
    run_demo.write_record(str(work), 'configs/demo/mask_rcnn_mlla_t_demo.py')
    demo_files = ['epoch_1.pth', 'epoch_2.pth', 'iter_3.pth', 'last_checkpoint', 'mask_rcnn_mlla_t_demo.py',
                  'demo_metrics.json', '20261206_101010/vis_data/scalars.json', '20261206_101010/run.log',
                  'predictions/000000.png', 'predictions/000001.png']
    users_files = ['notes.txt', 'best.pth', 'epoch_1.pth.backup', 'other_config.py', 'predictions/mine.png',
                   'my_data/000000.png', '2026_run/log.txt']
    for name in demo_files + users_files:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(name)
    run_demo.write_record(str(work), 'configs/demo/mask_rcnn_mlla_t_demo.py', ['000000.png', '000001.png'])
    users = {name: data for name, data in _tree(work).items() if data is not None and name in users_files}

    deleted = run_demo.clean_work_dir(str(work))
    left = {name: data for name, data in _tree(work).items() if data is not None}
    assert left == users
    assert sorted(osp.relpath(path, work) for path in deleted) == sorted(
        ['20261206_101010', 'demo_metrics.json', 'demo_run.json', 'epoch_1.pth', 'epoch_2.pth', 'iter_3.pth',
         'last_checkpoint', 'mask_rcnn_mlla_t_demo.py', 'predictions/000000.png', 'predictions/000001.png'])
    # cleaned, it is no demo folder any more: a second --fresh refuses instead of guessing
    with pytest.raises(SystemExit, match='no demo run made it'):
        run_demo.clean_work_dir(str(work))
    # an empty or absent folder is fine
    assert run_demo.clean_work_dir(str(tmp_path / 'absent')) == []
    (tmp_path / 'empty').mkdir()
    assert run_demo.clean_work_dir(str(tmp_path / 'empty')) == []


def test_picture_paths_never_share_a_file_or_replace_an_input(tmp_path):
    from mlla_mm.apis.pictures import picture_paths
    images = [str(tmp_path / name) for name in ('a.jpg', 'b.jpg', 'b.png')]
    assert picture_paths(images, str(tmp_path / 'out')) == [
        str(tmp_path / 'out' / name) for name in ('a.png', 'b_jpg.png', 'b_png.png')]
    # the images' own folder: allowed while no picture lands on an input
    assert picture_paths(images, str(tmp_path)) == [str(tmp_path / n) for n in ('a.png', 'b_jpg.png', 'b_png.png')]
    with pytest.raises(ValueError, match=r'would overwrite the input image .*a\.png'):
        picture_paths([str(tmp_path / 'a.png')], str(tmp_path))
    with pytest.raises(ValueError, match=r'would overwrite the input image .*b_jpg\.png'):
        picture_paths(images + [str(tmp_path / 'b_jpg.png')], str(tmp_path))
    with pytest.raises(ValueError, match=r'2 images would be drawn on the same picture .*x[/\\]a\.jpg.*y[/\\]a\.jpg'):
        picture_paths([str(tmp_path / 'x' / 'a.jpg'), str(tmp_path / 'y' / 'a.jpg')], str(tmp_path / 'out'))


def test_demo_into_the_images_folder_keeps_every_input(area, det_trained, tmp_path):
    import cv2
    train_dir, train_proc = det_trained
    assert_ok(train_proc)
    folder = tmp_path / 'pictures'
    folder.mkdir()
    val = sorted((area / 'data' / 'demo' / 'coco' / 'val').iterdir())
    shutil.copy(val[0], folder / 'a.jpg')
    shutil.copy(val[1], folder / 'b.jpg')
    cv2.imwrite(str(folder / 'b.png'), cv2.imread(str(val[2])))
    inputs = _tree(folder)
    command = [osp.join(REPO, 'tools', 'demo.py'), str(folder), DET_DEMO, str(train_dir / 'epoch_1.pth'),
               '--out', str(folder), '--device', 'cpu']
    proc = python(*command, cwd=tmp_path)
    assert_ok(proc)
    after = _tree(folder)
    assert {name: after[name] for name in inputs} == inputs  # no input replaced
    assert sorted(set(after) - set(inputs)) == ['a.png', 'b_jpg.png', 'b_png.png']
    assert f'3 picture(s) written to {folder}' in proc.stdout
    # again: the folder now holds a.png and b_jpg.png as images too, and their pictures would replace them
    proc = python(*command, cwd=tmp_path)
    assert proc.returncode != 0 and 'would overwrite the input image' in proc.stderr
    assert _tree(folder) == after
