"""ONNX export on the CPU (tools/deployment/export_onnx.py, mlla_mm.deployment): UperNet-MLLA and the MLLA backbone
exported, run by ONNX Runtime and compared with PyTorch, at small sizes. Needs the deploy extra (``.[deploy]``)."""
import copy
from pathlib import Path

import pytest
import torch

onnx = pytest.importorskip('onnx', reason='the deploy extra is not installed: pip install -e .[deploy]')
pytest.importorskip('onnxruntime', reason='the deploy extra is not installed: pip install -e .[deploy]')
pytest.importorskip('onnxscript', reason='the deploy extra is not installed: pip install -e .[deploy]')

from mlla_mm.apis import load_config  # noqa: E402
from mlla_mm.deployment import (build_export_module, compare_with_onnxruntime, export_onnx,  # noqa: E402
                                prepare_export_config)
from mlla_mm.deployment.onnx_export import check_standard_operators  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UPERNET_T = ROOT / 'configs/segmentation/upernet_mlla_t.py'
MASK_RCNN_T = ROOT / 'configs/detection/mask_rcnn_mlla_t.py'
TOLERANCE = 1e-4

# A one-block-per-stage MLLA at half MLLA-T's width, with narrow heads: the same operators as MLLA-T, exported in
# a fraction of its time.
SMALL_ARCH = "dict(_delete_=True, embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])"


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('export_onnx', ROOT / 'tools/deployment/export_onnx.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_config(tmp_path: Path, base: Path, body: str) -> str:
    path = tmp_path / f'small_{base.stem}.py'
    path.write_text(f'_base_ = [{str(base)!r}]\nmodel = dict(\n    backbone=dict(arch={SMALL_ARCH}),\n{body})\n')
    return str(path)


SMALL_UPERNET = ("    decode_head=dict(in_channels=[32, 64, 128, 256], channels=32, num_classes=7),\n"
                 "    auxiliary_head=dict(in_channels=128, channels=16, num_classes=7)")
SMALL_MASK_RCNN = "    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32)"


def differences(output: str):
    return [float(line.split('PyTorch ')[1].split()[0]) for line in output.splitlines()
            if 'max relative difference' in line]


def test_upernet_exports_whole_with_a_dynamic_batch(tmp_path, capsys):
    """The segmentor, with its matrix-product-resize heads, as one standard-operator graph with a dynamic batch:
    logits at the input's size, equal to PyTorch's for batches of 1 and 2."""
    config = small_config(tmp_path, UPERNET_T, SMALL_UPERNET)
    out = tmp_path / 'upernet.onnx'
    assert load_tool().main([config, '--out', str(out), '--shape', '64', '64', '--dynamic']) == 0
    printed = capsys.readouterr().out
    assert 'MatmulResizeUPerHead -> UPerHead' in printed
    assert 'pretrained/MLLA_T.pth not found, cleared' in printed
    diffs = differences(printed)
    assert len(diffs) == 2 and max(diffs) <= TOLERANCE, printed
    assert '(1, 3, 64, 64)' in printed and '(2, 3, 64, 64)' in printed

    model = onnx.load(str(out))
    check_standard_operators(model)
    assert [(o.domain, o.version) for o in model.opset_import] == [('', 18)]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 64, 64]
    out_dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == ['batch', 7, 64, 64]


def test_backbone_and_neck_of_a_detector_export(tmp_path, capsys):
    """A detection config exports its MLLA backbone (four maps; dynamic batch, height and width: 64x64 and
    2x96x128 checked) and, with --part neck, the FPN's five."""
    config = small_config(tmp_path, MASK_RCNN_T, SMALL_MASK_RCNN)
    tool = load_tool()
    backbone = tmp_path / 'backbone.onnx'
    assert tool.main([config, '--out', str(backbone), '--part', 'backbone', '--shape', '64', '64', '--dynamic']) == 0
    printed = capsys.readouterr().out
    diffs = differences(printed)
    assert len(diffs) == 2 and max(diffs) <= TOLERANCE, printed
    assert '(1, 3, 64, 64)' in printed and '(2, 3, 96, 128)' in printed
    model = onnx.load(str(backbone))
    assert [o.name for o in model.graph.output] == [f'output{i}' for i in range(4)]
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [
        'batch', 3, '32*h', '32*w']
    assert [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [
        'batch', 32, '8*h', '8*w']

    neck = tmp_path / 'neck.onnx'
    assert tool.main([config, '--out', str(neck), '--part', 'neck', '--shape', '64', '96']) == 0
    printed = capsys.readouterr().out
    diffs = differences(printed)
    assert len(diffs) == 1 and diffs[0] <= TOLERANCE, printed
    assert len(onnx.load(str(neck)).graph.output) == 5


@pytest.mark.slow
def test_upernet_mlla_t_exports_at_full_size(tmp_path, capsys):
    """UperNet-MLLA-T as configured (150 classes), a static 64x64 export."""
    out = tmp_path / 'upernet_mlla_t.onnx'
    assert load_tool().main([str(UPERNET_T), '--out', str(out), '--shape', '64', '64']) == 0
    diffs = differences(capsys.readouterr().out)
    assert len(diffs) == 1 and diffs[0] <= TOLERANCE


def test_comparison_catches_a_graph_that_differs_from_pytorch(tmp_path):
    """The check is real: the same file against a reference with one weight changed by 1% fails the tolerance."""
    cfg = load_config(small_config(tmp_path, MASK_RCNN_T, SMALL_MASK_RCNN))
    module, reference, _ = build_export_module(cfg, part='backbone')
    path = str(tmp_path / 'backbone.onnx')
    export_onnx(module, torch.randn(1, 3, 32, 32), path)
    x = torch.randn(1, 3, 32, 32)
    assert compare_with_onnxruntime(path, reference, [x])[0]['max_rel_diff'] <= TOLERANCE
    changed = copy.deepcopy(reference)
    with torch.no_grad():
        changed.backbone.layers[0].blocks[0].mlp.fc2.weight.mul_(1.01)
    assert compare_with_onnxruntime(path, changed, [x])[0]['max_rel_diff'] > TOLERANCE


def test_tool_fails_above_the_tolerance(tmp_path, monkeypatch, capsys):
    tool = load_tool()
    monkeypatch.setattr(tool, 'export_onnx', lambda *args, **kwargs: ['output'])
    monkeypatch.setattr(tool, 'compare_with_onnxruntime',
                        lambda path, reference, inputs: [dict(shape=tuple(x.shape), max_rel_diff=2e-4)
                                                         for x in inputs])
    config = small_config(tmp_path, UPERNET_T, SMALL_UPERNET)
    assert tool.main([config, '--out', str(tmp_path / 'x.onnx'), '--shape', '32', '32']) == 1
    captured = capsys.readouterr()
    assert 'FAILED' in captured.out and 'differs from PyTorch by more than 0.0001' in captured.err


def test_standard_operator_check_rejects_a_custom_domain():
    node = onnx.helper.make_node('DWConv', ['x'], ['y'], domain='mmdeploy')
    graph = onnx.helper.make_graph([node], 'g', [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(RuntimeError, match='mmdeploy::DWConv'):
        check_standard_operators(onnx.helper.make_model(graph))


def test_export_config_uses_the_plain_path_and_clears_missing_pretrained_weights(tmp_path):
    cfg = load_config(str(UPERNET_T))
    export_cfg, notes = prepare_export_config(cfg, checkpoint=None)
    assert export_cfg.model.backbone.attn_impl == 'plain'
    assert export_cfg.model.backbone.init_cfg is None
    assert export_cfg.model.decode_head.type == 'UPerHead' and export_cfg.model.auxiliary_head.type == 'FCNHead'
    assert export_cfg.model.decode_head.norm_cfg.type == 'BN'
    assert any('pretrained/MLLA_T.pth not found' in note for note in notes)
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'  # the user's config is left as it was

    weights = tmp_path / 'MLLA_T.pth'
    weights.write_bytes(b'')
    cfg.model.backbone.init_cfg.checkpoint = str(weights)
    export_cfg, _ = prepare_export_config(cfg, checkpoint=None)
    assert export_cfg.model.backbone.init_cfg.checkpoint == str(weights)  # an existing file is still loaded
    export_cfg, notes = prepare_export_config(cfg, checkpoint='trained.pth')
    assert export_cfg.model.backbone.init_cfg is None and any('trained.pth holds the weights' in n for n in notes)


def test_tool_refuses_bad_requests(tmp_path):
    tool = load_tool()
    out = tmp_path / 'model.onnx'
    with pytest.raises(SystemExit, match='detection config: pass --part backbone or --part neck'):
        tool.main([str(MASK_RCNN_T), '--out', str(out)])
    with pytest.raises(SystemExit, match='--shape 500 512: with --dynamic the sides must be multiples of 32'):
        tool.main([str(MASK_RCNN_T), '--out', str(out), '--part', 'neck', '--shape', '500', '512', '--dynamic'])
    with pytest.raises(SystemExit, match='checkpoint not found: missing.pth'):
        tool.main([str(UPERNET_T), 'missing.pth', '--out', str(out)])
    out.write_bytes(b'keep')
    with pytest.raises(SystemExit, match='exists; pass --force'):
        tool.main([str(UPERNET_T), '--out', str(out)])
    assert out.read_bytes() == b'keep'
