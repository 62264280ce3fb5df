"""tools/analysis/wall_time.py and mlla_mm/analysis/wall_time.py on the CPU: the configs it derives, --dry-run,
cold and warm cache folders, the results CSV, first-iteration lines and failed jobs (with stand-in commands), and
one real job: MLLA-T plain through tools/test.py on one image."""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mlla_mm.analysis import wall_time
from mlla_mm.analysis.results import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ('square', 'circle', 'triangle')


def read_results(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    """--dry-run of every job and model on a few images; checkpoints are recorded, not built (a real one is built
    by the last test)."""
    work = tmp_path_factory.mktemp('wall_time')
    written = []
    patch = pytest.MonkeyPatch()
    patch.setattr(wall_time, 'write_checkpoint', lambda cfg, path: written.append(path))
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            status = wall_time.main(['--work-dir', str(work), '--dry-run', '--train-images', '2', '--test-images',
                                     '3', '--iters', '7'])
    finally:
        patch.undo()
    return work, status, output.getvalue(), written


def load(work, job, model):
    return Config.fromfile(str(work / 'configs' / f'{job}_{model}.py'))


def test_dry_run_writes_configs_and_data_and_runs_nothing(dry_run):
    work, status, output, written = dry_run
    assert status == 0
    assert sorted(p.name for p in (work / 'configs').iterdir()) == sorted(
        f'{job}_{model}.py' for job in wall_time.JOBS for model in wall_time.MODELS)
    assert len(list((work / 'data' / 'coco' / 'val').iterdir())) == 3
    assert len(list((work / 'data' / 'coco' / 'train').iterdir())) == 2
    assert len(list((work / 'data' / 'ade' / 'images' / 'training').iterdir())) == 2
    assert not (work / 'runs').exists() and not (work / 'logs').exists() and not (work / 'cache').exists()
    # one checkpoint per task and weights: the MLLA-T rows share theirs
    assert sorted(set(Path(p).name for p in written)) == ['mask_rcnn_mlla_t.pth', 'mask_rcnn_swin_t.pth']


def test_dry_run_prints_each_command_with_its_cache_folders(dry_run):
    work, status, output, written = dry_run
    lines = [line for line in output.splitlines() if line.startswith('TORCHINDUCTOR_CACHE_DIR=')]
    assert len(lines) == len(wall_time.JOBS) * len(wall_time.MODELS) * 2
    headers = [line[2:] for line in output.splitlines() if line.startswith('# ')]
    assert headers[:2] == ['demo1 mlla_auto cold', 'demo1 mlla_auto warm']  # the cheap jobs first
    priming = output.index('untimed, first')
    assert priming < output.index('# demo1') and 'import torch, mmengine, mmdet, mmseg' in output[priming:]
    caches = {}
    for header, line in zip(headers, lines):
        job, model, cache = header.split()
        env = dict(part.split('=', 1) for part in line.split()[:3])
        assert env == {'TORCHINDUCTOR_CACHE_DIR': str(work / 'cache' / f'{job}_{model}' / 'inductor'),
                       'TRITON_CACHE_DIR': str(work / 'cache' / f'{job}_{model}' / 'triton'),
                       'CUDA_CACHE_PATH': str(work / 'cache' / f'{job}_{model}' / 'cuda')}
        caches.setdefault((job, model), []).append(env)
        assert str(work / 'configs' / f'{job}_{model}.py') in line
    assert all(cold == warm for cold, warm in caches.values())  # the warm run reuses its cold run's folders
    assert len({env['TORCHINDUCTOR_CACHE_DIR'] for env, _ in caches.values()}) == len(caches)
    train = next(line for header, line in zip(headers, lines) if header == 'train300 mlla_fast cold')
    assert 'tools/train.py' in train and '--amp' in train
    test = next(line for header, line in zip(headers, lines) if header == 'test500 swin_t cold')
    assert 'tools/test.py' in test and test.split()[6].endswith('mask_rcnn_swin_t.pth')
    demo = next(line for header, line in zip(headers, lines) if header == 'demo1 mlla_plain warm')
    assert 'tools/demo.py' in demo and str(work / 'data' / 'coco' / 'val' / '000000.jpg') in demo


def test_train_configs_are_iteration_based_on_the_synthetic_data(dry_run):
    work = dry_run[0]
    for job in ('train300', 'seg_train300'):
        for model in wall_time.MODELS:
            cfg = load(work, job, model)
            assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 7
            assert cfg.custom_hooks[-1] == wall_time.CLOCK_HOOK
            assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.test_dataloader is None
            assert cfg.default_hooks.checkpoint.interval == -1 and not cfg.default_hooks.checkpoint.save_last
            assert cfg.param_scheduler and all(s.by_epoch is False for s in cfg.param_scheduler)
            assert cfg.param_scheduler[0].type == 'LinearLR'  # the warm-up kept
            assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
            assert cfg.model.backbone.init_cfg is None
            assert cfg.work_dir == str(work / 'runs' / f'{job}_{model}')
            dataset = cfg.train_dataloader.dataset
            assert tuple(dataset.metainfo['classes']) == CLASSES
            if job == 'seg_train300':
                assert cfg.train_dataloader.batch_size == 8
                assert dataset.type == 'BaseSegDataset' and dataset.data_root == str(work / 'data' / 'ade')
                assert dataset.data_prefix.img_path == 'images/training'
                assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 3
            else:
                assert cfg.train_dataloader.batch_size == 2
                assert dataset.data_root == str(work / 'data' / 'coco') + '/'
                assert dataset.ann_file == 'annotations/instances_train.json'
                assert cfg.model.roi_head.bbox_head.num_classes == cfg.model.roi_head.mask_head.num_classes == 3


def test_models_are_the_auto_graphs_fast_plain_and_swin_configs(dry_run):
    work = dry_run[0]
    for job in ('train300', 'seg_train300'):
        auto, graphs, fast, plain, swin = (load(work, job, model) for model in (
            'mlla_auto', 'mlla_auto_graphs', 'mlla_fast', 'mlla_plain', 'swin_t'))
        assert auto.model.backbone.type == 'MLLA' and 'attn_impl' not in auto.model.backbone  # the default, auto
        assert 'attn_impl' not in graphs.model.backbone
        assert graphs.model.backbone.fast_cfg == dict(uncompiled_graphs=1)
        assert fast.model.backbone.type == 'MLLA' and fast.model.backbone.attn_impl == 'fast'
        assert plain.model.backbone.type == 'MLLA' and plain.model.backbone.attn_impl == 'plain'
        assert swin.model.backbone.type == 'SwinTransformer' and swin.model.backbone.embed_dims == 96
        assert swin.model.backbone.depths == [2, 2, 6, 2]
    # the detection configs train with the same multi-scale + crop augmentation
    assert (load(work, 'train300', 'mlla_fast').train_dataloader.dataset.pipeline[3].type
            == load(work, 'train300', 'swin_t').train_dataloader.dataset.pipeline[3].type == 'RandomChoice')


def test_test_configs_read_every_validation_image_one_at_a_time_at_one_score_threshold(dry_run):
    work = dry_run[0]
    for model in wall_time.MODELS:
        cfg = load(work, 'test500', model)
        ann_file = str(work / 'data' / 'coco' / 'annotations' / 'instances_val.json')
        assert cfg.test_dataloader.dataset.ann_file == cfg.test_evaluator.ann_file == ann_file
        assert cfg.test_dataloader.batch_size == 1 and cfg.train_dataloader is None and cfg.optim_wrapper is None
        assert cfg.custom_hooks[-1] == wall_time.CLOCK_HOOK
        # every model post-processes as many detections; the demo keeps the config's threshold
        assert cfg.model.test_cfg.rcnn.score_thr == wall_time.TEST_SCORE_THR == 0
        assert load(work, 'demo1', model).model.test_cfg.rcnn.score_thr == 0.05
    with open(ann_file) as f:
        assert len(json.load(f)['images']) == 3


def test_every_measure_has_a_line_of_its_own_in_the_table():
    """benchmarks/make_tables.py reads each measure this module writes as a job of its own, of the same task: two
    jobs under one name would share a line of docs/speed.md."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('make_tables', ROOT / 'benchmarks' / 'make_tables.py')
    make_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_tables)
    named = [(wall_time.measure_name(job, 'cold', 300, 500), spec.task) for job, spec in wall_time.JOBS.items()]
    named += [(name(job, spec.kind, 'warm'), spec.task) for name in (wall_time.first_measure_name,
                                                                     wall_time.start_measure_name)
              for job, spec in wall_time.JOBS.items() if spec.kind in wall_time.FIRST_ITERATIONS]
    parsed = [make_tables.wall_measure(name) for name, _ in named]
    assert None not in parsed, list(zip(named, parsed))
    assert len(set(parsed)) == len(named), list(zip(named, parsed))
    for (name, task), (job, _, _) in zip(named, parsed):
        assert make_tables.WALL_JOBS[job].startswith('UperNet') == (task == 'upernet'), name


def test_measure_and_input_names():
    assert wall_time.measure_name('demo1', 'cold', 300, 500) == 'wall_demo1_cold_s'
    assert wall_time.first_measure_name('train300', 'train', 'cold') == 'wall_first_step_cold_s'
    assert wall_time.first_measure_name('seg_train300', 'train', 'warm') == 'wall_seg_first_step_warm_s'
    assert wall_time.first_measure_name('test500', 'test', 'cold') == 'wall_first_infer_cold_s'
    assert wall_time.start_measure_name('train300', 'train', 'cold') == 'wall_train_start_cold_s'
    assert wall_time.start_measure_name('seg_train300', 'train', 'warm') == 'wall_seg_train_start_warm_s'
    assert wall_time.start_measure_name('test500', 'test', 'cold') == 'wall_test_start_cold_s'
    assert wall_time.measure_name('train300', 'warm', 300, 500) == 'wall_train300_warm_s'
    assert wall_time.measure_name('seg_train300', 'cold', 100, 500) == 'wall_seg_train100_cold_s'
    assert wall_time.measure_name('test500', 'cold', 300, 20) == 'wall_test20_cold_s'
    cfg = Config(dict(train_dataloader=dict(batch_size=8), test_dataloader=None))
    assert wall_time.input_name(cfg, 'seg_train300') == '8x3x512x512'
    assert wall_time.input_name(cfg, 'demo1') == '1x3x800x1333'


# ----------------------------------------------------------------------------------------------------------------
# runs with stand-in commands
# ----------------------------------------------------------------------------------------------------------------
INFO = dict(date='2026-01-02', commit='abc1234', card='Test Card', torch='2.0', python='3')


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """main() without data, configs or checkpoints, each job's command replaced by ``commands[model]`` (Python
    code, run with the job's environment, given the seen-file path as sys.argv[1])."""
    commands = {}
    monkeypatch.setattr(wall_time, 'machine_info', lambda: INFO)

    def prepare(args, paths):
        cfg = Config(dict(train_dataloader=dict(batch_size=2), test_dataloader=dict(batch_size=1)))
        return {(job, model): cfg for job in args.jobs for model in args.models}

    def job_command(job, model, cache, paths, amp=True):
        return [sys.executable, '-c', commands[model], str(tmp_path / f'{job}_{model}_{cache}.seen')]

    def priming_command():
        return [sys.executable, '-c', commands.get('priming', 'pass')]

    monkeypatch.setattr(wall_time, 'prepare', prepare)
    monkeypatch.setattr(wall_time, 'job_command', job_command)
    monkeypatch.setattr(wall_time, 'priming_command', priming_command)
    return commands, tmp_path


CACHE_VARIABLES = ('CUDA_CACHE_PATH', 'TORCHINDUCTOR_CACHE_DIR', 'TRITON_CACHE_DIR')
# writes what it finds in its cache folders, then fills each with a file named after its variable
LIST_AND_FILL_CACHE = f'''
import os, sys, time
folders = {{key: os.environ[key] for key in {CACHE_VARIABLES!r}}}
open(sys.argv[1], 'w').write(','.join(sorted(name for folder in folders.values() for name in os.listdir(folder))))
for key, folder in folders.items():
    open(os.path.join(folder, key), 'w').write('x')
time.sleep(0.2)
print(f'loop-start train {{time.time():.6f}}', flush=True)
time.sleep(0.2)
print(f'first-iteration-end train {{time.time():.6f}}', flush=True)
time.sleep(0.2)
'''


def test_cold_runs_start_empty_warm_runs_reuse_and_lines_are_written(stand_in, capsys):
    commands, tmp = stand_in
    commands.update(mlla_fast=LIST_AND_FILL_CACHE, swin_t=LIST_AND_FILL_CACHE)
    work, results = tmp / 'work', tmp / 'results.csv'
    stale = work / 'cache' / 'train300_mlla_fast' / 'inductor'
    stale.mkdir(parents=True)
    (stale / 'from_an_earlier_run').write_text('x')
    status = wall_time.main(['--work-dir', str(work), '--results', str(results), '--jobs', 'demo1', 'train300',
                             '--models', 'mlla_fast', 'swin_t'])
    assert status == 0
    for job in ('demo1', 'train300'):
        for model in ('mlla_fast', 'swin_t'):
            assert (tmp / f'{job}_{model}_cold.seen').read_text() == ''
            assert (tmp / f'{job}_{model}_warm.seen').read_text() == ','.join(CACHE_VARIABLES)
    lines = read_results(results)
    assert tuple(lines[0]) == CSV_COLUMNS
    assert [line[:4] for line in lines[1:]] == [['2026-01-02', 'abc1234', 'Test Card', '2.0']] * 16
    # a demo has no training loop: the stamps count only for the training job, after the job's own line
    assert [(line[4], line[5], line[6], line[7], line[8], line[10]) for line in lines[1:]] == [
        ('mask_rcnn', model, '1x3x800x1333', 'fp32', f'wall_demo1_{cache}_s', 's')
        for model in ('MLLA-T fast', 'Swin-T') for cache in ('cold', 'warm')] + [
        ('mask_rcnn', model, '2x3x800x1333', 'fp16', measure, 's')
        for model in ('MLLA-T fast', 'Swin-T') for cache in ('cold', 'warm')
        for measure in (f'wall_train300_{cache}_s', f'wall_train_start_{cache}_s', f'wall_first_step_{cache}_s')]
    seconds = [float(line[9]) for line in lines[1:]]
    assert all(0 < value < 60 for value in seconds)
    for whole, start, first in zip(seconds[4::3], seconds[5::3], seconds[6::3]):
        assert 0.2 <= start <= first - 0.2 <= whole - 0.4  # launch to each stamp, within the job's own time
    table = capsys.readouterr().out.split('\ntask')[-1]
    assert 'train300' in table and 'Swin-T' in table and ' s' in table


def test_the_priming_process_runs_and_leaves_no_files(tmp_path):
    """The real priming process (on this machine's device): it exits 0, and its throwaway Triton cache goes."""
    result = subprocess.run(wall_time.priming_command(), env={**os.environ, 'TMPDIR': str(tmp_path)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('prime', [True, False])
def test_one_untimed_priming_process_runs_before_the_first_job(stand_in, capsys, prime):
    commands, tmp = stand_in
    order = tmp / 'order.txt'
    append = "import sys; open({!r}, 'a').write({!r} + ',')"
    commands.update(priming=append.format(str(order), 'priming'), mlla_plain=append.format(str(order), 'job'))
    status = wall_time.main(['--work-dir', str(tmp / 'work'), '--jobs', 'demo1', '--models', 'mlla_plain']
                            + ([] if prime else ['--no-prime']))
    assert status == 0
    assert order.read_text() == ('priming,' if prime else '') + 'job,job,'
    assert ('untimed: reading the libraries' in capsys.readouterr().out) == prime


def test_a_failed_priming_process_warns_and_the_jobs_run(stand_in, capsys):
    commands, tmp = stand_in
    commands.update(priming='import sys; sys.exit("no CUDA driver")', mlla_plain='pass')
    assert wall_time.main(['--work-dir', str(tmp / 'work'), '--jobs', 'demo1', '--models', 'mlla_plain']) == 0
    assert "warning: exit 1: ['no CUDA driver']" in capsys.readouterr().out


def test_a_failed_job_writes_no_line_and_the_exit_status_says_so(stand_in, capsys):
    commands, tmp = stand_in
    commands.update(mlla_plain='import sys; print("loss is nan"); sys.exit(3)', swin_t='pass')
    results = tmp / 'results.csv'
    status = wall_time.main(['--work-dir', str(tmp / 'work'), '--results', str(results), '--jobs', 'test500',
                             '--models', 'mlla_plain', 'swin_t', '--test-images', '20'])
    assert status == 1
    lines = read_results(results)
    assert [(line[5], line[7], line[8]) for line in lines[1:]] == [('Swin-T', 'fp32', 'wall_test20_cold_s'),
                                                                   ('Swin-T', 'fp32', 'wall_test20_warm_s')]
    out = capsys.readouterr().out
    assert 'failed (exit 3)' in out and 'loss is nan' in out
    assert '2 of 4 runs failed: test500 mlla_plain cold, test500 mlla_plain warm' in out


def test_a_job_past_its_timeout_is_ended(stand_in, capsys):
    commands, tmp = stand_in
    commands.update(mlla_fast='import time; time.sleep(60)')
    status = wall_time.main(['--work-dir', str(tmp / 'work'), '--jobs', 'demo1', '--models', 'mlla_fast',
                             '--cache', 'cold', '--timeout', '1'])
    assert status == 1 and 'failed (timeout)' in capsys.readouterr().out


def test_a_job_past_its_timeout_keeps_the_first_step_that_ended_in_time(stand_in, capsys):
    commands, tmp = stand_in
    commands.update(mlla_fast='import time; print(f"first-iteration-end train {time.time():.6f}", flush=True); '
                              'time.sleep(60)')
    results = tmp / 'results.csv'
    status = wall_time.main(['--work-dir', str(tmp / 'work'), '--results', str(results), '--jobs', 'train300',
                             '--models', 'mlla_fast', '--cache', 'cold', '--timeout', '2'])
    assert status == 1 and 'failed (timeout, first train iteration after' in capsys.readouterr().out
    lines = read_results(results)
    assert [line[8] for line in lines[1:]] == ['wall_first_step_cold_s'], 'no line for the unfinished job'
    assert 0 < float(lines[1][9]) < 2


def test_a_warm_run_needs_the_cache_of_a_cold_one(stand_in, capsys):
    commands, tmp = stand_in
    commands.update(mlla_fast='pass')
    status = wall_time.main(['--work-dir', str(tmp / 'work'), '--jobs', 'test500', '--models', 'mlla_fast',
                             '--cache', 'warm'])
    assert status == 1 and 'run --cache cold first' in capsys.readouterr().out
    assert not (tmp / 'test500_mlla_fast_warm.seen').exists()


def test_another_csv_is_refused_before_anything_runs(tmp_path, capsys):
    path = tmp_path / 'mine.csv'
    path.write_text('name,score\nx,1\n')
    with pytest.raises(SystemExit) as exit_info:
        wall_time.main(['--work-dir', str(tmp_path / 'work'), '--results', str(path)])
    assert exit_info.value.code == 2 and 'mine.csv' in capsys.readouterr().err
    assert not (tmp_path / 'work').exists()


# ----------------------------------------------------------------------------------------------------------------
# one real job
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_inference_of_mlla_plain_on_the_cpu(tmp_path):
    """The command line end to end: data, config, a randomly initialised checkpoint that tools/test.py accepts,
    one timed process, its line and the line of its first result (from the clock hook's line in its log)."""
    results = tmp_path / 'results.csv'
    env = dict(os.environ, OMP_NUM_THREADS='2')
    result = subprocess.run(
        [sys.executable, 'tools/analysis/wall_time.py', '--work-dir', str(tmp_path / 'work'), '--results',
         str(results), '--jobs', 'test500', '--models', 'mlla_plain', '--cache', 'cold', '--train-images', '1',
         '--test-images', '1', '--timeout', '300'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = read_results(results)
    assert [line[4:9] for line in lines[1:]] == [
        ['mask_rcnn', 'MLLA-T plain', '1x3x800x1333', 'fp32', measure]
        for measure in ('wall_test1_cold_s', 'wall_test_start_cold_s', 'wall_first_infer_cold_s')]
    assert all(line[2].startswith('cpu') for line in lines[1:])
    whole, start, first = (float(line[9]) for line in lines[1:])
    assert 0 < start < first < whole
    log = (tmp_path / 'work' / 'logs' / 'test500_mlla_plain_cold.log').read_text()
    assert 'Epoch(test) [1/1]' in log and 'coco/segm_mAP' in log and 'first-iteration-end test' in log
    assert 'loop-start test' in log
