"""What ``import mlla_mm`` and an MLLA backbone bring into a process: not mmseg's models, timm or torchvision, whose
imports take seconds that a detection job (mmdet imports none of them) would pay at every start."""
import subprocess
import sys
import textwrap


def test_the_backbone_imports_neither_mmseg_models_nor_timm_nor_torchvision():
    code = textwrap.dedent('''
        import sys
        import mlla_mm
        from mlla_mm import MLLA
        model = MLLA(arch='tiny', drop_path_rate=0.2).train()
        model.init_weights()
        import torch
        sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
        print(*(name in sys.modules for name in ('mmseg.models', 'timm', 'torchvision')))
        ''')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ['False', 'False', 'False']
