"""On the CPU: tools/analysis/get_flops.py, tools/analysis/benchmark.py, tools/demo.py, and
benchmarks/scripts/compile_cache.py, warm_backbone.py and step_phases.py."""
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


@pytest.mark.parametrize('config', sorted(PAPER))
def test_get_flops_reproduces_the_paper(config):
    result = run_tool('tools/analysis/get_flops.py', config)
    assert result.returncode == 0, result.stderr[-2000:]
    flops = float(re.search(r'^Flops: ([\d.]+)G$', result.stdout, re.M).group(1))
    params = float(re.search(r'^Params: ([\d.]+)M$', result.stdout, re.M).group(1))
    assert re.search(r'^Input shape: \(3, (800, 1280|512, 2048)\)$', result.stdout, re.M)
    paper_flops, paper_params = PAPER[config]
    assert abs(flops - paper_flops) / paper_flops < 0.02, (flops, paper_flops)
    assert abs(params - paper_params) / paper_params < 0.02, (params, paper_params)


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


def test_benchmark_writes_json_and_table(tmp_path):
    out = tmp_path / 'bench.json'
    result = run_tool('tools/analysis/benchmark.py', '--level', 'backbone', '--peers', 'mlla', 'resnet50',
                      '--attn-impl', 'plain', 'fast', '--compile-stages', 'off', 'on', 'all', 'backbone',
                      '--shape', '64', '96', '--batch', '1', '--warmup', '1', '--iters', '2', '--cpu',
                      '--json', out, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['machine']['torch'] == torch.__version__
    models = [row['model'] for row in data['rows']]
    assert models == ['mlla_tiny[plain]', 'mlla_tiny[fast]', 'mlla_tiny[fast,stages]', 'mlla_tiny[fast,stages-all]',
                      'mlla_tiny[fast,whole]', 'resnet50']
    for row in data['rows']:
        assert row['infer_ms'] > 0 and row['train_step_ms'] > 0 and row['images_per_s'] > 0
    assert 'mlla_tiny[fast]' in result.stdout and 'infer ms' in result.stdout


def test_benchmark_compile_settings_reach_the_backbone():
    """--compile-stages backbone: compile_stages='all' and compile_backbone=True, in a backbone as in a config."""
    tool = load_tool('tools/analysis/benchmark.py')
    from mlla_mm.apis.runner import load_config
    cfg = load_config(str(ROOT / 'configs/detection/mask_rcnn_mlla_t.py'))
    for setting, stages, whole in (('backbone', 'all', True), ('all', 'all', False), ('on', True, False),
                                   ('off', False, False)):
        backbone = tool.config_variant(cfg, 'mlla', stages=tool.STAGE_SETTINGS[setting]).model.backbone
        assert (backbone.compile_stages, backbone.compile_backbone) == (stages, whole), setting
        built = tool.build_backbone('mlla', dict(arch='tiny', **tool.compile_options(tool.STAGE_SETTINGS[setting])))
        assert built.compile_backbone is whole and built.layers[0].compile_stages == (
            'train' if stages is True else stages), setting


def test_benchmark_refuses_to_measure_nothing():
    result = run_tool('tools/analysis/benchmark.py', '--no-train', '--no-infer', '--cpu', timeout=120)
    assert result.returncode == 2 and '--no-train and --no-infer leave nothing to measure' in result.stderr


def test_benchmark_adamw_forms(tmp_path):
    """--adamw foreach fused none: each peer once per form of AdamW, and once with no optimizer step."""
    out = tmp_path / 'bench.json'
    result = run_tool('tools/analysis/benchmark.py', '--level', 'backbone', '--peers', 'resnet50',
                      '--adamw', 'foreach', 'fused', 'none', '--shape', '64', '64', '--batch', '1', '--warmup', '1',
                      '--iters', '1', '--cpu', '--json', out, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert [(row['model'], row['adamw']) for row in rows] == [('resnet50', 'foreach'),
                                                                ('resnet50+fused-adamw', 'fused'),
                                                                ('resnet50+no-optimizer', 'none')]
    assert all(row['train_step_ms'] > 0 for row in rows)


def test_measure_steps_the_optimizer_it_is_given():
    from mlla_mm.analysis import benchmark
    model = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    built, stepped = [], []

    def make_optimizer(m):
        optimizer = benchmark.adamw(m, fused=True)
        optimizer.register_step_post_hook(lambda *args: stepped.append(1))
        built.append(optimizer)
        return optimizer

    before = model.weight.detach().clone()
    result = benchmark.measure(model, lambda: dict(predict=dict(input=x), train=dict(input=x)), torch.device('cpu'),
                               'fp32', warmup=0, iters=2, batch_size=1, make_optimizer=make_optimizer)
    assert result['train_step_ms'] > 0
    # the first step (timed alone: a compiled model compiles in it) and the 2 timed ones
    assert len(built) == 1 and built[0].defaults['fused'] is True and len(stepped) == 3
    assert not torch.equal(before, model.weight)


def test_measure_train_step_alone():
    """infer=False: no inference call at all (a compiled model compiles no inference graphs), and the first
    training step's time on its own."""
    from mlla_mm.analysis import benchmark
    calls = []

    class Recorder(torch.nn.Conv2d):
        def forward(self, input):
            calls.append((self.training, torch.is_grad_enabled()))
            return super().forward(input)

    model = Recorder(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    result = benchmark.measure(model, lambda: dict(predict=dict(input=x), train=dict(input=x)), torch.device('cpu'),
                               'fp32', warmup=3, iters=2, batch_size=1, infer=False)
    assert 'infer_ms' not in result and result['train_step_ms'] > 0 and result['first_train_step_s'] > 0
    assert calls == [(True, True)] * 5  # the first step, 2 more of warm-up, 2 timed


def test_measure_without_an_optimizer_runs_forward_and_backward_alone():
    from mlla_mm.analysis import benchmark
    model = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    before = model.weight.detach().clone()
    result = benchmark.measure(model, lambda: dict(predict=dict(input=x), train=dict(input=x)), torch.device('cpu'),
                               'fp32', warmup=0, iters=2, batch_size=1, make_optimizer=lambda m: None)
    assert result['train_step_ms'] > 0
    assert torch.equal(before, model.weight) and model.weight.grad is not None


def test_benchmark_model_level_with_the_configs_optimizer(tmp_path):
    """--adamw config: the train step steps the config's optim_wrapper (GroupedOptimWrapperConstructor, fused)."""
    out = tmp_path / 'bench.json'
    result = run_tool('tools/analysis/benchmark.py', '--level', 'model', '--config',
                      'configs/detection/mask_rcnn_mlla_t.py', '--peers', 'mlla', '--adamw', 'config',
                      '--shape', '128', '128', '--batch', '1', '--warmup', '0', '--iters', '1', '--cpu',
                      '--json', out, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert [(row['model'], row['adamw']) for row in rows] == [('mlla_tiny[plain]+config-adamw', 'config')]
    assert rows[0]['train_step_ms'] > 0
    refused = run_tool('tools/analysis/benchmark.py', '--adamw', 'config', '--cpu', timeout=60)
    assert refused.returncode == 2 and '--adamw config needs --level model' in refused.stderr


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A demo Mask R-CNN (untrained) saved as mmengine saves it, and a few demo images."""
    from mlla_mm.apis.runner import build_model, load_config
    from mlla_mm.datasets import DEMO_CLASSES, make_coco_instances
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
    from mlla_mm.apis.runner import build_model, convert_syncbn, load_config
    from mlla_mm.datasets import make_ade_semantic
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
    from mlla_mm.apis.inference import check_checkpoint_fits
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    torch.save({'state_dict': {'0.weight': torch.zeros(5, 4), '0.bias': torch.zeros(3)}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match=r"other\.pth does not fit the config.*'0\.weight'.*\(5, 4\).*\(3, 4\)"):
        check_checkpoint_fits(model, str(tmp_path / 'other.pth'))


COMPILED_SCRIPT = '''
import os, signal, torch
from torch._dynamo.utils import counters
f = torch.compile(lambda x: torch.nn.functional.silu(x) * x.sum(-1, keepdim=True), dynamic=True)
x = torch.randn(8, 64, requires_grad=True)
f(x).sum().backward()
print('graph cache hits', counters['inductor']['fxgraph_cache_hit'], flush=True)
os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` stops a device call's process
'''


def test_compile_cache_carries_compiled_graphs_between_fresh_caches(tmp_path):
    """benchmarks/scripts/compile_cache.py: the artifacts a process saves, also when SIGTERM stops it, make a
    process with an empty Inductor cache hit the graph cache instead of compiling."""
    script = tmp_path / 'compiled.py'
    script.write_text(COMPILED_SCRIPT)

    def run(cache_dir, *args):
        env = {**os.environ, 'TORCHINDUCTOR_CACHE_DIR': str(tmp_path / cache_dir)}
        return subprocess.run([sys.executable, str(ROOT / 'benchmarks/scripts/compile_cache.py'), *args, str(script)],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)

    first = run('first', '--save', str(tmp_path / 'a.bin'))
    assert first.returncode == 143, first.stdout + first.stderr[-2000:]
    assert 'graph cache hits 0' in first.stdout and 'saved' in first.stdout, first.stdout
    second = run('second', '--load', str(tmp_path / '*.bin'), '--save', str(tmp_path / 'b.bin'))
    assert second.returncode == 143 and 'loaded' in second.stdout, second.stdout + second.stderr[-2000:]
    assert re.search(r'graph cache hits [1-9]', second.stdout), second.stdout
    assert 'saved' in second.stdout, second.stdout  # what was loaded and hit is carried on again


WITHOUT_MMCV = '''
import runpy, sys
sys.modules['mmcv'] = None  # importing mmcv fails, as on a device machine while mmcv builds
sys.argv = ['warm_backbone.py', *sys.argv[1:]]
runpy.run_path('benchmarks/scripts/warm_backbone.py', run_name='__main__')
'''


def test_warm_backbone_steps_the_configs_backbone_without_mmcv():
    """benchmarks/scripts/warm_backbone.py: the backbone benchmark.py's model level builds (the config's drop-path
    rate, the fast path with benchmark.py's defaults, or its options given), one train step, no mmcv needed."""
    args = ['-c', WITHOUT_MMCV, 'configs/segmentation/upernet_mlla_t.py', '--shape', '64', '96', '--batch', '2',
            '--precision', 'fp32', '--device', 'cpu']
    result = run_tool(*args, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row['train_step_ms'] > 0 and row['first_train_step_s'] > 0
    assert row['cudnn_benchmark'] is True  # the segmentation runtime's env_cfg
    backbone = row['backbone']
    assert (backbone['arch'], backbone['drop_path_rate'], backbone['attn_impl']) == ('tiny', 0.2, 'fast')
    assert (backbone['cuda_graphs'], backbone['compile_stages'], backbone['compile_backbone']) == (True, 'all', True)
    assert 'init_cfg' not in backbone  # no pretrained file needed

    result = run_tool(*args, '--cuda-graphs', 'off', '--compile-stages', 'on', timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    backbone = json.loads(result.stdout.strip().splitlines()[-1])['backbone']
    assert (backbone['cuda_graphs'], backbone['compile_stages'], backbone['compile_backbone']) == (False, True, False)


def test_warm_backbone_refuses_a_config_without_mlla(tmp_path):
    config = tmp_path / 'resnet_upernet.py'
    config.write_text("_base_ = ['%s']\nmodel = dict(backbone=dict(_delete_=True, type='ResNet', depth=50))\n"
                      % (ROOT / 'configs/segmentation/upernet_mlla_t.py'))
    result = run_tool('benchmarks/scripts/warm_backbone.py', config, '--device', 'cpu', timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f'{config}: model.backbone is not an MLLA backbone' in result.stderr


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
    """benchmarks/scripts/step_phases.py: the hooks' marks split a step where the backbone's forward and backward
    and the head's begin and end (host times on the CPU; lower bounds from the sleeps, upper ones well below the
    sleep that a wrong mark would move in)."""
    tool = load_tool('benchmarks/scripts/step_phases.py')
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


def test_step_phases_of_a_config(tmp_path):
    out = tmp_path / 'phases.json'
    result = run_tool('benchmarks/scripts/step_phases.py', '--level', 'model', '--config',
                      'configs/demo/mask_rcnn_mlla_t_demo.py', '--peers', 'mlla', '--adamw', 'config',
                      '--shape', '64', '96', '--batch', '2', '--warmup', '0', '--iters', '1', '--cpu', '--json', out,
                      timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert [(row['model'], row['adamw']) for row in rows] == [('mlla_tiny[plain]', 'config')]
    assert rows[0]['phases']['backbone forward']['host_ms'] > 0
    assert 'after its last output' in result.stdout
    refused = run_tool('benchmarks/scripts/step_phases.py', '--cpu', timeout=120)
    assert refused.returncode == 1 and 'step_phases.py measures whole models' in refused.stderr


def test_channels_last_converts_weights_and_images_only():
    benchmark = load_tool('tools/analysis/benchmark.py')
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    images, labels = torch.randn(2, 3, 9, 7), torch.tensor([0, 1])
    expected = model(images)
    model, make = benchmark.to_channels_last(model, lambda: dict(train=dict(inputs=images, labels=labels)))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[0].weight.is_contiguous()  # 8 x 3 x 3 x 3: the two formats differ
    batch = make()['train']
    assert batch['inputs'].is_contiguous(memory_format=torch.channels_last) and not batch['inputs'].is_contiguous()
    assert batch['labels'] is labels  # not an image: untouched
    torch.testing.assert_close(model(batch['inputs']), expected)


def test_profile_step_sorts_operators_into_kinds_and_needs_a_gpu():
    tool = load_tool('benchmarks/scripts/profile_step.py')
    kinds = {name: tool.kind_of(name) for name in ('aten::convolution_backward', 'aten::cudnn_batch_norm',
                                                  'aten::upsample_bilinear2d_backward', 'aten::cat', 'aten::topk',
                                                  'aten::_log_softmax', 'aten::addmm', 'aten::_fused_adamw_',
                                                  'aten::copy_')}
    assert kinds == {'aten::convolution_backward': 'convolution', 'aten::cudnn_batch_norm': 'normalisation',
                     'aten::upsample_bilinear2d_backward': 'resize', 'aten::cat': 'concatenation',
                     'aten::topk': 'loss and accuracy', 'aten::_log_softmax': 'loss and accuracy',
                     'aten::addmm': 'matmul', 'aten::_fused_adamw_': 'optimizer', 'aten::copy_': 'other'}
    refused = run_tool('benchmarks/scripts/profile_step.py', '--level', 'model', '--config',
                       'configs/segmentation/upernet_mlla_t.py', '--cpu', timeout=120)
    assert refused.returncode == 1 and 'profile_step.py profiles whole models on a GPU' in refused.stderr


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
