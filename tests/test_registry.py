"""`type='MLLA'` builds from mmdet's and mmseg's registries, after import or through custom_imports; the
segmentation heads build from mmseg's, which imports them with its own models."""
import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> str:
    """Run in a fresh interpreter, so that nothing registered by this test session helps."""
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize('package', ['mmdet', 'mmseg'])
def test_custom_imports_registers_mlla_for_a_config(package, tmp_path):
    config = tmp_path / 'config.py'
    config.write_text(textwrap.dedent('''
        custom_imports = dict(imports=['mlla_mm'], allow_failed_imports=False)
        backbone = dict(type='MLLA', arch='tiny', out_indices=(1, 2))
        '''))
    out = run_python(f'''
        import sys
        from mmengine import Config
        from {package}.registry import MODELS
        assert 'mlla_mm' not in sys.modules
        cfg = Config.fromfile({str(config)!r})  # imports mlla_mm through custom_imports
        backbone = MODELS.build(cfg.backbone)
        print(type(backbone).__name__, backbone.out_indices, 'MLLA' in MODELS.module_dict)
        ''')
    assert out.split() == ['MLLA', '(1,', '2)', 'True']


def test_registers_without_mmdet_or_mmseg():
    out = run_python('''
        import builtins
        real_import = builtins.__import__
        def no_downstream(name, *args, **kwargs):
            if name.split('.')[0] in ('mmdet', 'mmseg'):
                raise ImportError(f'{name} is not installed (simulated)')
            return real_import(name, *args, **kwargs)
        builtins.__import__ = no_downstream
        import mlla_mm
        from mmengine.registry import MODELS
        print(type(MODELS.build(dict(type='MLLA', arch='tiny'))).__name__)
        ''')
    assert out.strip() == 'MLLA'


def test_mmpretrain_style_child_registry_finds_mlla():
    """Any OpenMMLab codebase whose MODELS is a child of mmengine's root finds MLLA."""
    from mmengine.registry import MODELS as ROOT
    from mmengine.registry import Registry

    import mlla_mm  # noqa: F401
    child = Registry('model', parent=ROOT, scope='some_codebase')
    assert type(child.build(dict(type='MLLA', arch='tiny'))).__name__ == 'MLLA'


def test_segmentation_heads_are_imported_with_mmseg_models_only():
    """``import mlla_mm`` leaves mmseg's models unimported (a detection job does not pay for them); mmseg's registry
    imports the heads with its models at its first lookup, as a config's build in the mmseg scope makes it."""
    pytest.importorskip('mmseg')
    out = run_python('''
        import sys
        import mlla_mm
        print('mmseg.models' in sys.modules)
        from mmengine.registry import MODELS, init_default_scope
        init_default_scope('mmseg')
        head = MODELS.build(dict(type='MatmulResizeFCNHead', in_channels=8, channels=4, num_classes=3, num_convs=1))
        print(type(head).__name__, 'mmseg.models' in sys.modules)
        ''')
    assert out.split() == ['False', 'MatmulResizeFCNHead', 'True']


@pytest.mark.parametrize('first', ["MODELS.get('UPerHead')", 'import mmseg.models'])
def test_segmentation_heads_register_at_once_where_mmseg_has_imported_its_models(first):
    """Where mmseg's registry has looked a type up, or mmseg's models are imported, before ``import mlla_mm``, the
    heads are in its module dict at once (where registries that descend from it look them up)."""
    pytest.importorskip('mmseg')
    out = run_python(f'''
        from mmseg.registry import MODELS
        {first}
        import mlla_mm
        print('MatmulResizeUPerHead' in MODELS.module_dict, 'MatmulResizeFCNHead' in MODELS.module_dict)
        ''')
    assert out.split() == ['True', 'True']
