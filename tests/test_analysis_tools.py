"""On the CPU: tools/analysis/ (get_flops.py, benchmark.py and the library under it, step_phases.py,
profile_step.py, new_sizes.py) and tools/demo.py. The GPU's measurements are mocked where a test checks what is done
with them."""
import csv
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from mlla_mm.models.layers import LinearAttention

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / 'tools'))  # tools/demo_data.py, which the demo scripts import by name


def run_tool(*args, timeout=900):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            cwd=ROOT)
    return result


def load_tool(path: str):
    """A tool's or benchmark script's module (path relative to the repository), to test its functions."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The paper's figures (Mask R-CNN at 1280x800, UperNet at 2048x512): FLOPs in G, parameters in M.
PAPER = {
    'configs/detection/mask_rcnn_mlla_t.py': (255, 44),
    'configs/detection/mask_rcnn_mlla_s.py': (319, 63),
    'configs/detection/mask_rcnn_mlla_b.py': (502, 115),
    'configs/segmentation/upernet_mlla_b.py': (1183, 128),
}


@pytest.mark.slow
def test_get_flops_reproduces_the_paper():
    """The command line on one config (its default input size and printed figures)."""
    config = 'configs/detection/mask_rcnn_mlla_t.py'
    result = run_tool('tools/analysis/get_flops.py', config)
    assert result.returncode == 0, result.stderr[-2000:]
    flops = float(re.search(r'^Flops: ([\d.]+)G$', result.stdout, re.M).group(1))
    params = float(re.search(r'^Params: ([\d.]+)M$', result.stdout, re.M).group(1))
    assert re.search(r'^Input shape: \(3, 800, 1280\)$', result.stdout, re.M)
    paper_flops, paper_params = PAPER[config]
    assert abs(flops - paper_flops) / paper_flops < 0.02, (flops, paper_flops)
    assert abs(params - paper_params) / paper_params < 0.02, (params, paper_params)


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(set(PAPER) - {'configs/detection/mask_rcnn_mlla_t.py'}))
def test_flop_counts_reproduce_the_paper(config):
    """The other configs through the library in this process (what the command line prints, without starting a
    Python for each), at the paper's input sizes (the defaults)."""
    from mlla_mm.analysis import count_complexity
    from mlla_mm.apis import load_config
    result = count_complexity(load_config(str(ROOT / config)))
    assert result['shape'] in ((800, 1280), (512, 2048))
    paper_flops, paper_params = PAPER[config]
    assert abs(result['flops'] / 1e9 - paper_flops) / paper_flops < 0.02, (result['flops'], paper_flops)
    assert abs(result['params'] / 1e6 - paper_params) / paper_params < 0.02, (result['params'], paper_params)


def test_attention_matmuls_are_counted():
    """The counter sees the linear-attention products, not just the projections and convolutions."""
    dims, heads, (h, w) = 64, 2, (12, 20)
    n, head_dims = h * w, dims // heads
    attention = LinearAttention(dims, heads).eval()
    analyzer = FlopAnalyzer(attention, inputs=(torch.randn(1, n, dims), (h, w)))
    analyzer.unsupported_ops_warnings(False).tracer_warnings('none')
    projection = n * dims * 2 * dims  # qk linear
    lepe = n * dims * 9  # 3x3 depthwise conv
    matmuls = (n * dims  # q . mean(k), per head n x d x 1
               + n * dims * head_dims  # K^T V, per head d x n x d
               + n * dims * head_dims)  # Q (K^T V), per head n x d x d
    assert analyzer.total() == projection + lepe + matmuls


class FakeMeasure:
    """Stands in for the GPU's measurement: records what it was asked, returns fixed values (batch-dependent
    throughput), and builds the optimizer it is given as the real one would."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, make_batch, device, precision, warmup, iters, batch_size, train=True,
                 make_optimizer=None, infer=True):
        optimizer = make_optimizer(model) if train else None
        self.calls.append(dict(precision=precision, train=train, infer=infer, optimizer=optimizer,
                               batch=make_batch()))
        result = {}
        if infer:
            result.update(infer_ms=12.5, images_per_s=batch_size * 1e3 / 12.5, first_infer_s=1.5)
        if train:
            result.update(train_step_ms=30.25, first_train_step_s=4.0, train_peak_mem_mib=2048.0)
        return result


@pytest.fixture
def mocked_benchmark(monkeypatch):
    """mlla_mm.analysis.benchmark with a recorded backbone builder (a small convolution) and a fake measurement."""
    from mlla_mm.analysis import benchmark
    built = []

    def build_backbone(name, kwargs=None):
        built.append((name, kwargs))
        return torch.nn.Conv2d(3, 4, 1)

    fake = FakeMeasure()
    monkeypatch.setattr(benchmark, 'build_backbone', build_backbone)
    monkeypatch.setattr(benchmark, 'measure', fake)
    return benchmark, built, fake


def read_results(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_benchmark_appends_results_rows(mocked_benchmark, tmp_path):
    """--results: one line per measured value in the results-file format; the training step's measure names its
    optimizer, inference is measured with the first optimizer form only, memory and first step go with
    train_step_ms."""
    benchmark, built, fake = mocked_benchmark
    path = tmp_path / 'results' / 'card_torch.csv'
    benchmark.main(['--peers', 'mlla', 'convnext_t', '--attn-impl', 'fast', '--precision', 'bf16',
                    '--adamw', 'none', 'fused', '--shape', '80', '96', '--batch', '2', '--cpu', '--results', str(path),
                    '--compile-cache', 'warm'])
    lines = read_results(path)
    assert lines[0] == ['date', 'commit', 'card', 'torch', 'task', 'model', 'input', 'precision', 'measure', 'value',
                        'unit']
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT)
    commit = commit.stdout.strip() if commit.returncode == 0 else 'unknown'
    for line in lines[1:]:
        assert line[:5] == [datetime.date.today().isoformat(), commit, line[2], torch.__version__, 'backbone']
        assert line[2].startswith('cpu') and line[6:8] == ['2x3x80x96', 'bf16']
    assert [(line[5], line[8], line[9], line[10]) for line in lines[1:]] == [
        ('MLLA-T fast', 'train_step_ms', '30.25', 'ms'), ('MLLA-T fast', 'infer_ms', '12.5', 'ms'),
        ('MLLA-T fast', 'throughput_img_s', '160', 'img/s'), ('MLLA-T fast', 'peak_mem_mib', '2048', 'MiB'),
        ('MLLA-T fast', 'first_step_warm_s', '4', 's'), ('MLLA-T fast', 'first_infer_warm_s', '1.5', 's'),
        ('ConvNeXt-T', 'train_step_ms', '30.25', 'ms'), ('ConvNeXt-T', 'infer_ms', '12.5', 'ms'),
        ('ConvNeXt-T', 'throughput_img_s', '160', 'img/s'), ('ConvNeXt-T', 'peak_mem_mib', '2048', 'MiB'),
        ('ConvNeXt-T', 'first_step_warm_s', '4', 's'), ('ConvNeXt-T', 'first_infer_warm_s', '1.5', 's'),
        ('MLLA-T fast', 'train_step_fused_adamw_ms', '30.25', 'ms'),
        ('ConvNeXt-T', 'train_step_fused_adamw_ms', '30.25', 'ms')]
    assert [call['infer'] for call in fake.calls] == [True, True, False, False]
    assert fake.calls[0]['optimizer'] is None and fake.calls[2]['optimizer'].defaults['fused'] is True
    assert fake.calls[0]['batch']['train']['x'].shape == (2, 3, 80, 96)
    assert [name for name, _ in built] == ['mlla', 'convnext_t', 'mlla', 'convnext_t']

    benchmark.main(['--peers', 'convnext_t', '--no-train', '--cpu', '--results', str(path)])  # appended, one header
    lines_after = read_results(path)
    assert lines_after[:len(lines)] == lines and len(lines_after) == len(lines) + 2
    assert [line[8] for line in lines_after[len(lines):]] == ['infer_ms', 'throughput_img_s']
    assert b'\r' not in path.read_bytes()  # one line ending, as in the committed results files


def test_benchmark_leaves_another_csv_alone(mocked_benchmark, tmp_path, capsys):
    benchmark, built, fake = mocked_benchmark
    path = tmp_path / 'mine.csv'
    path.write_text('name,score\nx,1\n')
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(['--peers', 'convnext_t', '--cpu', '--results', str(path)])
    assert exit_info.value.code == 2 and 'mine.csv' in capsys.readouterr().err
    assert path.read_text() == 'name,score\nx,1\n' and not fake.calls  # refused before measuring anything


def test_csv_rows_of_a_failed_row_and_of_the_configs_optimizer():
    from mlla_mm.analysis.results import csv_rows
    info = dict(date='2026-01-02', commit='abc1234', card='NVIDIA H100', torch='2.0')
    row = dict(task='mask_rcnn', model='Swin-T', input='2x3x800x1344', precision='fp16', adamw='config',
               train_step_ms=100.0, first_train_step_s=2.5)
    assert [(line['measure'], line['value']) for line in csv_rows(row, info, 'cold')] == [
        ('train_step_ms', '100'), ('first_step_cold_s', '2.5')]
    assert [line['measure'] for line in csv_rows(row, info)] == ['train_step_ms'], 'no cache state, no first step'
    with pytest.raises(ValueError, match="compile_cache must be one of .*got 'hot'"):
        csv_rows(row, info, 'hot')
    assert csv_rows(dict(row, error='RuntimeError: no kernel'), info) == []


def test_fast_cfg_reaches_the_backbone_and_names_the_row(mocked_benchmark):
    """--attn-impl and --fast-cfg become MLLA's attn_impl and fast_cfg (once per --fast-cfg); plain takes none."""
    benchmark, built, fake = mocked_benchmark
    results = benchmark.main(['--peers', 'mlla', '--attn-impl', 'plain', 'fast', '--arch', 'small',
                              '--fast-cfg', 'cuda_graphs=false', 'compile_stages=all', '--fast-cfg', '--no-train',
                              '--cpu', '--iters', '1'])
    assert [row['model'] for row in results['rows']] == [
        'MLLA-S plain', 'MLLA-S fast cuda_graphs=False compile_stages=all', 'MLLA-S fast']
    assert all(row['adamw'] == 'none' for row in results['rows'])  # the backbone level's default
    assert [kwargs for _, kwargs in built] == [
        dict(arch='small', drop_path_rate=0.0, with_cp=False, attn_impl='plain'),
        dict(arch='small', drop_path_rate=0.0, with_cp=False, attn_impl='fast',
             fast_cfg=dict(cuda_graphs=False, compile_stages='all')),
        dict(arch='small', drop_path_rate=0.0, with_cp=False, attn_impl='fast')]


@pytest.mark.parametrize('argv, message', [
    (['--fast-cfg', 'cuda_graph=false'], "'cuda_graph' is not one of"),
    (['--fast-cfg', 'cuda_graphs'], "'cuda_graphs' is not KEY=VALUE"),
    (['--attn-impl', 'plain', '--fast-cfg', 'strict=true'], '--fast-cfg applies to --attn-impl fast or auto'),
    (['--no-train', '--no-infer'], '--no-train and --no-infer leave nothing to measure'),
    (['--adamw', 'config'], '--adamw config needs --level model'),
    (['--level', 'model'], '--level model needs --config'),
])
def test_benchmark_refuses_bad_options(argv, message, capsys):
    from mlla_mm.analysis.benchmark import parse_args
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_parse_fast_cfg_types():
    from mlla_mm.analysis.rows import parse_fast_cfg
    assert parse_fast_cfg(['cuda_graphs=False', 'compile_stages=train', 'strict=true', 'compile_convs=1']) == dict(
        cuda_graphs=False, compile_stages='train', strict=True, compile_convs=1)


def test_auto_rows_measure_the_compiled_path_from_the_first_step():
    """A benchmark measures the steady state: ``'auto'`` rows compile training and inference at once unless the row
    says otherwise; other rows keep their own ``fast_cfg``."""
    from mlla_mm.analysis.rows import Row, measured_fast_cfg, mlla_kwargs
    assert measured_fast_cfg(Row('mlla', 'auto')) == dict(compile_training_after=0, compile_inference_after=0)
    assert measured_fast_cfg(Row('mlla', 'auto', dict(compile_training_after=None, cuda_graphs=False))) == dict(
        compile_training_after=None, compile_inference_after=0, cuda_graphs=False)
    assert measured_fast_cfg(Row('mlla', 'fast')) is None
    assert measured_fast_cfg(Row('mlla', 'plain', dict(cuda_graphs=False))) == dict(cuda_graphs=False)
    assert mlla_kwargs(Row('mlla', 'auto'))['fast_cfg'] == dict(compile_training_after=0, compile_inference_after=0)
    assert 'fast_cfg' not in mlla_kwargs(Row('mlla', 'plain'))


def test_config_variant_sets_the_fast_path_or_swaps_the_backbone(tmp_path):
    from mlla_mm.analysis.rows import Row, config_variant, task_name
    from mlla_mm.apis import load_config
    cfg = load_config(str(ROOT / 'configs/detection/mask_rcnn_mlla_t.py'))
    backbone = config_variant(cfg, Row('mlla', 'fast', dict(cuda_graphs=False))).model.backbone
    assert (backbone.type, backbone.attn_impl, backbone.fast_cfg) == ('MLLA', 'fast', dict(cuda_graphs=False))
    assert 'init_cfg' not in backbone and 'init_cfg' in cfg.model.backbone  # the config itself is untouched
    assert 'fast_cfg' not in config_variant(cfg, Row('mlla', 'plain')).model.backbone
    assert config_variant(cfg, Row('mlla', 'auto')).model.backbone.fast_cfg == dict(compile_training_after=0,
                                                                                    compile_inference_after=0)
    swin = config_variant(cfg, Row('swin_t')).model
    assert swin.backbone.type == 'SwinTransformer' and swin.neck.in_channels == [96, 192, 384, 768]
    assert task_name(cfg) == 'mask_rcnn' and task_name(None) == 'backbone'
    assert task_name(load_config(str(ROOT / 'configs/segmentation/upernet_mlla_t.py'))) == 'upernet'
    config = tmp_path / 'resnet_mask_rcnn.py'
    config.write_text("_base_ = ['%s']\nmodel = dict(backbone=dict(_delete_=True, type='ResNet', depth=50))\n"
                      % (ROOT / 'configs/detection/mask_rcnn_mlla_t.py'))
    with pytest.raises(ValueError, match=r"resnet_mask_rcnn\.py: model\.backbone is 'ResNet', not MLLA"):
        config_variant(load_config(str(config)), Row('mlla', 'plain'))


@pytest.mark.slow
def test_benchmark_measures_on_the_cpu(tmp_path):
    """The command line end to end, nothing mocked: real timings of the plain MLLA-T and ConvNeXt-T, in a table,
    JSON and results lines."""
    out, results = tmp_path / 'bench.json', tmp_path / 'bench.csv'
    result = run_tool('tools/analysis/benchmark.py', '--level', 'backbone', '--peers', 'mlla', 'convnext_t',
                      '--attn-impl', 'plain', '--shape', '64', '96', '--batch', '1', '--warmup', '1', '--iters', '2',
                      '--cpu', '--json', out, '--results', results, '--compile-cache', 'cold', timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['machine']['torch'] == torch.__version__
    assert [row['model'] for row in data['rows']] == ['MLLA-T plain', 'ConvNeXt-T']
    for row in data['rows']:
        assert row['infer_ms'] > 0 and row['train_step_ms'] > 0 and row['images_per_s'] > 0
    assert 'MLLA-T plain' in result.stdout and 'infer ms' in result.stdout
    lines = read_results(results)[1:]
    assert [(line[5], line[8]) for line in lines] == [  # forward and backward alone by default
        (model, measure) for model in ('MLLA-T plain', 'ConvNeXt-T')
        for measure in ('train_step_ms', 'infer_ms', 'throughput_img_s', 'first_step_cold_s', 'first_infer_cold_s')]
    assert all(float(line[9]) > 0 for line in lines)


def test_measure_steps_the_optimizer_it_is_given():
    from mlla_mm.analysis import timing
    model = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    built, stepped = [], []

    def make_optimizer(m):
        optimizer = timing.adamw(m, fused=True)
        optimizer.register_step_post_hook(lambda *args: stepped.append(1))
        built.append(optimizer)
        return optimizer

    before = model.weight.detach().clone()
    result = timing.measure(model, lambda: dict(predict=dict(input=x), train=dict(input=x)), torch.device('cpu'),
                               'fp32', warmup=0, iters=2, batch_size=1, make_optimizer=make_optimizer)
    assert result['train_step_ms'] > 0 and result['train_step_host_ms'] > 0
    # the first step (timed alone: a compiled model compiles in it) and the 2 timed ones
    assert len(built) == 1 and built[0].defaults['fused'] is True and len(stepped) == 3
    assert not torch.equal(before, model.weight)


def test_time_call_gives_the_hosts_time_of_calls_started_on_an_idle_device(monkeypatch):
    """After the warm-up the device is synchronised, and each timed call's host time (to its return) is recorded
    beside its time; on the CPU the two are the same."""
    from mlla_mm.analysis import timing
    events = []
    monkeypatch.setattr(timing, 'synchronize', lambda device: events.append('sync'))

    def step():
        events.append('call')
        time.sleep(0.02)

    host_ms = []
    times = timing.time_call(step, torch.device('cpu'), 1, 3, host_ms)
    assert events == ['call', 'sync'] + ['call'] * 3
    assert len(host_ms) == 3 and all(20 <= t < 1000 for t in host_ms) and times == host_ms


def test_measure_train_step_alone():
    """infer=False: no inference call at all (a compiled model compiles no inference graphs), and the first
    training step's time on its own."""
    from mlla_mm.analysis import timing
    calls = []

    class Recorder(torch.nn.Conv2d):
        def forward(self, input):
            calls.append((self.training, torch.is_grad_enabled()))
            return super().forward(input)

    model = Recorder(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    result = timing.measure(model, lambda: dict(predict=dict(input=x), train=dict(input=x)), torch.device('cpu'),
                               'fp32', warmup=3, iters=2, batch_size=1, infer=False)
    assert 'infer_ms' not in result and result['train_step_ms'] > 0 and result['first_train_step_s'] > 0
    assert calls == [(True, True)] * 5  # the first step, 2 more of warm-up, 2 timed


def test_measure_without_an_optimizer_runs_forward_and_backward_alone():
    from mlla_mm.analysis import timing
    model = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    before = model.weight.detach().clone()
    result = timing.measure(model, lambda: dict(predict=dict(input=x), train=dict(input=x)), torch.device('cpu'),
                               'fp32', warmup=0, iters=2, batch_size=1, make_optimizer=lambda m: None)
    assert result['train_step_ms'] > 0
    assert torch.equal(before, model.weight) and model.weight.grad is not None


@pytest.mark.slow
def test_benchmark_model_level_with_the_configs_optimizer(tmp_path):
    """--level model: the whole Mask R-CNN stepped with the config's optim_wrapper by default (--adamw config),
    written as the mask_rcnn task's train_step_ms."""
    out, results = tmp_path / 'bench.json', tmp_path / 'bench.csv'
    result = run_tool('tools/analysis/benchmark.py', '--level', 'model', '--config',
                      'configs/detection/mask_rcnn_mlla_t.py', '--peers', 'mlla', '--attn-impl', 'plain',
                      '--shape', '128', '128', '--batch', '1', '--warmup', '0', '--iters', '1',
                      '--cpu', '--json', out, '--results', results, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert [(row['model'], row['adamw']) for row in rows] == [('MLLA-T plain', 'config')]
    assert rows[0]['train_step_ms'] > 0
    lines = read_results(results)[1:]
    assert [(line[4], line[5], line[6], line[8]) for line in lines] == [
        ('mask_rcnn', 'MLLA-T plain', '1x3x128x128', measure)
        for measure in ('train_step_ms', 'infer_ms', 'throughput_img_s')]


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A demo Mask R-CNN (untrained) saved as mmengine saves it, and a few demo images."""
    from mlla_mm.apis import build_model, load_config
    from demo_data import DEMO_CLASSES, make_coco_instances
    root = tmp_path_factory.mktemp('demo')
    make_coco_instances(root / 'coco', num_train=1, num_val=2, image_size=96)
    cfg = load_config(str(ROOT / 'configs/demo/mask_rcnn_mlla_t_demo.py'))
    model = build_model(cfg)
    checkpoint = root / 'demo.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': DEMO_CLASSES}}},
               checkpoint)
    return root, checkpoint


def test_demo_draws_predictions(demo_checkpoint, tmp_path):
    root, checkpoint = demo_checkpoint
    result = run_tool('tools/demo.py', root / 'coco' / 'val', 'configs/demo/mask_rcnn_mlla_t_demo.py', checkpoint,
                      '--out', tmp_path / 'pictures', '--device', 'cpu', '--score-thr', '0.0')
    assert result.returncode == 0, result.stderr[-2000:]
    pictures = sorted((tmp_path / 'pictures').glob('*.png'))
    assert len(pictures) == 2
    import mmcv
    assert mmcv.imread(str(pictures[0])).shape[:2] == (96, 96)


def test_demo_errors_name_the_file(demo_checkpoint, tmp_path):
    root, checkpoint = demo_checkpoint
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    result = run_tool('tools/demo.py', broken, 'configs/demo/mask_rcnn_mlla_t_demo.py', checkpoint,
                      '--out', tmp_path / 'o')
    assert result.returncode != 0 and 'broken.jpg' in result.stderr
    image = next((root / 'coco' / 'val').iterdir())
    result = run_tool('tools/demo.py', image, 'configs/demo/mask_rcnn_mlla_t_demo.py', tmp_path / 'none.pth',
                      '--out', tmp_path / 'o')
    assert result.returncode != 0 and 'none.pth' in result.stderr
    result = run_tool('tools/demo.py', image, 'configs/demo/upernet_mlla_t_demo.py', checkpoint,
                      '--out', tmp_path / 'o')
    assert result.returncode != 0 and 'does not fit the config' in result.stderr and 'demo.pth' in result.stderr


def test_demo_draws_segmentation_maps(tmp_path):
    from mlla_mm.apis import build_model, convert_syncbn, load_config
    from demo_data import make_ade_semantic
    make_ade_semantic(tmp_path / 'ade', num_train=1, num_val=2, image_size=96)
    cfg = load_config(str(ROOT / 'configs/demo/upernet_mlla_t_demo.py'))
    convert_syncbn(cfg.model)
    checkpoint = tmp_path / 'seg.pth'
    torch.save({'state_dict': build_model(cfg).state_dict()}, checkpoint)
    result = run_tool('tools/demo.py', tmp_path / 'ade' / 'images' / 'validation',
                      'configs/demo/upernet_mlla_t_demo.py', checkpoint, '--out', tmp_path / 'maps', '--device', 'cpu')
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / 'maps').glob('*.png'))) == 2


def test_checkpoint_of_another_shape_names_key_and_shapes(tmp_path):
    from mlla_mm.apis.inference import load_fitting_checkpoint
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    torch.save({'state_dict': {'0.weight': torch.zeros(5, 4), '0.bias': torch.zeros(3)}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match=r"other\.pth does not fit the config.*'0\.weight'.*\(5, 4\).*\(3, 4\)"):
        load_fitting_checkpoint(model, str(tmp_path / 'other.pth'))


class _Sleep(torch.autograd.Function):
    """The identity, sleeping ``forward_s`` in its forward and ``backward_s`` in its backward."""

    @staticmethod
    def forward(ctx, x, forward_s, backward_s):
        time.sleep(forward_s)
        ctx.backward_s = backward_s
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(ctx.backward_s)
        return grad, None, None


class _SlowBackbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        features = _Sleep.apply(self.conv(x), 0.1, 0.15)
        return features, features * 2


class _SlowModel(torch.nn.Module):
    """A backbone taking 0.1 s forward and 0.15 s backward, then a head taking 0.05 s and 0.2 s."""

    def __init__(self):
        super().__init__()
        self.backbone = _SlowBackbone()
        self.head = torch.nn.Linear(4, 1)

    def forward(self, inputs, mode):
        small, large = self.backbone(inputs)
        scores = self.head(small.mean((2, 3))) + self.head(large.mean((2, 3)))
        return dict(loss=_Sleep.apply(scores, 0.05, 0.2).sum())


def test_step_phases_put_each_part_of_a_step_in_its_phase():
    """tools/analysis/step_phases.py: the hooks' marks split a step where the backbone's forward and backward
    and the head's begin and end (host times on the CPU; lower bounds from the sleeps, upper ones well below the
    sleep that a wrong mark would move in)."""
    tool = load_tool('tools/analysis/step_phases.py')
    batch = dict(train=dict(inputs=torch.randn(1, 3, 8, 8), mode='loss'))
    phases = tool.phases_of(_SlowModel(), lambda: batch, torch.device('cpu'), 'fp32', 'foreach', None,
                            warmup=0, iters=1)
    host = {phase: times['host_ms'] for phase, times in phases.items()}
    assert all(times['gpu_ms'] is None for times in phases.values())
    assert 100 <= host['backbone forward'] < 150, host
    assert 50 <= host['rest of the forward'] < 100, host
    assert host['backward to the backbone'] >= 200 and host['until its last output'] < 150, host
    assert 150 <= host['after its last output'] < 200, host
    assert host['before the backbone'] < 50 and host['optimizer'] < 50, host
    assert host['step'] == pytest.approx(sum(host[phase] for phase in tool.PHASES))


@pytest.mark.slow
def test_step_phases_of_a_config(tmp_path):
    out = tmp_path / 'phases.json'
    result = run_tool('tools/analysis/step_phases.py', '--level', 'model', '--config',
                      'configs/demo/mask_rcnn_mlla_t_demo.py', '--peers', 'mlla', '--attn-impl', 'plain',
                      '--adamw', 'config',
                      '--shape', '64', '96', '--batch', '2', '--warmup', '0', '--iters', '1', '--cpu', '--json', out,
                      timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert [(row['model'], row['adamw']) for row in rows] == [('MLLA-T plain', 'config')]
    assert rows[0]['phases']['backbone forward']['host_ms'] > 0
    assert 'after its last output' in result.stdout
    with pytest.raises(SystemExit, match='step_phases.py measures whole models'):
        load_tool('tools/analysis/step_phases.py').main(['--cpu'])


def test_channels_last_converts_weights_and_images_only():
    from mlla_mm.analysis.rows import to_channels_last
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    images, labels = torch.randn(2, 3, 9, 7), torch.tensor([0, 1])
    expected = model(images)
    model, make = to_channels_last(model, lambda: dict(train=dict(inputs=images, labels=labels)))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[0].weight.is_contiguous()  # 8 x 3 x 3 x 3: the two formats differ
    batch = make()['train']
    assert batch['inputs'].is_contiguous(memory_format=torch.channels_last) and not batch['inputs'].is_contiguous()
    assert batch['labels'] is labels  # not an image: untouched
    torch.testing.assert_close(model(batch['inputs']), expected)


def test_profile_step_sorts_operators_into_kinds_and_needs_a_gpu():
    tool = load_tool('tools/analysis/profile_step.py')
    kinds = {name: tool.kind_of(name) for name in ('aten::convolution_backward', 'aten::cudnn_batch_norm',
                                                  'aten::upsample_bilinear2d_backward', 'aten::cat', 'aten::topk',
                                                  'aten::_log_softmax', 'aten::addmm', 'aten::_fused_adamw_',
                                                  'aten::copy_')}
    assert kinds == {'aten::convolution_backward': 'convolution', 'aten::cudnn_batch_norm': 'normalisation',
                     'aten::upsample_bilinear2d_backward': 'resize', 'aten::cat': 'concatenation',
                     'aten::topk': 'loss and accuracy', 'aten::_log_softmax': 'loss and accuracy',
                     'aten::addmm': 'matmul', 'aten::_fused_adamw_': 'optimizer', 'aten::copy_': 'other'}
    with pytest.raises(SystemExit, match='profile_step.py profiles whole models on a GPU'):
        tool.main(['--level', 'model', '--config', 'configs/segmentation/upernet_mlla_t.py', '--cpu'])


def test_flops_count_the_matmul_resize_heads_as_mmseg_heads():
    """The configs' MatmulResize heads are counted as the mmseg heads they compute: their resizes' matrix products
    are an interpolation, which the paper's counting leaves out."""
    from mmengine.config import Config

    from mlla_mm.analysis import complexity
    model = dict(decode_head=dict(type='MatmulResizeUPerHead', channels=8),
                 auxiliary_head=[dict(type='MatmulResizeFCNHead'), dict(type='ASPPHead')])
    complexity._with_mmseg_heads(model)
    assert model == dict(decode_head=dict(type='UPerHead', channels=8),
                         auxiliary_head=[dict(type='FCNHead'), dict(type='ASPPHead')])
    config = ROOT / 'configs' / 'segmentation' / 'upernet_mlla_t.py'
    ours = Config.fromfile(str(config))
    assert ours.model.decode_head.type == 'MatmulResizeUPerHead'
    theirs = Config.fromfile(str(config))
    theirs.model.decode_head.type, theirs.model.auxiliary_head.type = 'UPerHead', 'FCNHead'
    counts = [complexity.count_complexity(cfg, shape=(128, 256)) for cfg in (ours, theirs)]
    assert counts[0]['flops'] == counts[1]['flops'] and counts[0]['params'] == counts[1]['params']


@pytest.mark.slow
def test_new_sizes_times_each_row_over_its_sizes(tmp_path):
    """tools/analysis/new_sizes.py end to end on the CPU: each row, in a process of its own, steps through the sizes;
    its three measures go to the results CSV with the sizes in the input column; 'auto' rows count their images as
    configured."""
    tool = load_tool('tools/analysis/new_sizes.py')
    results = tmp_path / 'sizes.csv'
    out = tool.main(['--cpu', '--peers', 'mlla', '--attn-impl', 'plain', 'auto', '--sizes', '64x96', '96x64',
                     '64x96', '--repeats', '2', '--batch', '1', '--results', str(results)])
    rows = out['rows']
    assert [row['model'] for row in rows] == ['MLLA-T plain', 'MLLA-T auto']
    assert len({row['process'] for row in rows} | {os.getpid()}) == 3, 'each row in a process of its own'
    for row in rows:
        assert row['new_sizes'] == 2 and row['seen_steps'] == 4, 'two new sizes; one repeat each, then 2 seen steps'
        assert row['first_size_step_s'] > 0 and row['new_size_step_s'] > 0 and row['seen_size_step_ms'] > 0
    lines = read_results(results)[1:]
    assert [(line[5], line[6], line[8]) for line in lines] == [
        (model, '1x3 at 2 sizes 64x96-96x64', measure) for model in ('MLLA-T plain', 'MLLA-T auto')
        for measure in ('first_size_step_s', 'new_size_step_s', 'seen_size_step_ms')]


def test_new_sizes_runs_each_row_in_a_process_of_its_own(tmp_path, capsys):
    """run_rows_apart: the tool once per row with ``--row K`` after the run's arguments, the rows' JSON merged in
    order; a row whose process fails is named and the others still run."""
    from mlla_mm.analysis.new_sizes import run_rows_apart
    fake = tmp_path / 'fake_tool.py'
    fake.write_text(
        'import json, os, sys\n'
        'args = sys.argv[1:]\n'
        'row, path = int(args[args.index("--row") + 1]), args[args.index("--json") + 1]\n'
        'if row == 1:\n'
        '    sys.exit(3)\n'
        'json.dump(dict(machine={"card": "x"}, args={"row": row, "json": path}, rows=[dict(index=row, given=args[:2],'
        ' process=os.getpid())]), open(path, "w"))\n')
    merged_json = tmp_path / 'merged.json'
    merged = run_rows_apart([sys.executable, str(fake)], ['--peers', 'mlla'], 3, str(merged_json))
    assert [(row['index'], row['given']) for row in merged['rows']] == [(0, ['--peers', 'mlla']),
                                                                       (2, ['--peers', 'mlla'])]
    assert len({row['process'] for row in merged['rows']}) == 2
    assert merged['failed'] == [1] and 'row 1: its process failed (exit status 3)' in capsys.readouterr().out
    assert merged['machine'] == {'card': 'x'} and merged['args'] == {'row': None, 'json': str(merged_json)}
    assert json.loads(merged_json.read_text()) == merged


def test_new_sizes_checks_and_summaries():
    from mlla_mm import MLLA
    from mlla_mm.analysis import new_sizes
    from mlla_mm.analysis.rows import Row, mlla_kwargs
    from mlla_mm.models.fast import FAST_CFG_DEFAULTS
    defaults = (FAST_CFG_DEFAULTS['compile_training_after'], FAST_CFG_DEFAULTS['compile_inference_after'])
    assert new_sizes.parse_sizes(['800x1344', '512X864']) == [(800, 1344), (512, 864)]
    for bad, message in ((['800x'], "'800x' is not HEIGHTxWIDTH"), (['0x5', '5x5'], "'0x5'"),
                         (['64x64', '64x64'], 'at least two different sizes')):
        with pytest.raises(ValueError, match=message):
            new_sizes.parse_sizes(bad)
    a, b = (8, 8), (16, 16)
    steps = [(a, True, 5.0), (a, False, 0.1), (b, True, 2.0), (b, False, 0.3), (a, False, 0.2)]
    assert new_sizes.summarise(steps) == dict(first_size_step_s=5.0, new_size_step_s=2.0, seen_size_step_ms=200.0,
                                              new_sizes=2, seen_steps=3)
    with pytest.raises(ValueError, match='a size seen twice'):
        new_sizes.summarise([(a, True, 5.0), (b, True, 2.0)])
    # benchmark rows of 'auto' compile at once; here they run as users get them, unless --fast-cfg says otherwise
    auto = MLLA(**mlla_kwargs(Row('mlla', 'auto')))
    assert auto.fast_cfg['compile_training_after'] == 0
    new_sizes.as_users_get_it(auto, [{}])
    assert (auto.fast_cfg['compile_training_after'], auto.fast_cfg['compile_inference_after']) == defaults
    given = MLLA(**mlla_kwargs(Row('mlla', 'auto', dict(compile_training_after=0))))
    new_sizes.as_users_get_it(given, [dict(compile_training_after=0)])
    assert (given.fast_cfg['compile_training_after'], given.fast_cfg['compile_inference_after']) == (0, defaults[1])
