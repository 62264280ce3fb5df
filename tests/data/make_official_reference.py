"""Write ``official_reference.pt``: the official MLLA backbone's outputs and input gradients for the reference cases.

Run by hand, against a checkout of the official code (github.com/LeapLabTHU/MLLA)::

    python tests/data/make_official_reference.py --official-repo PATH/TO/MLLA --out tests/data/official_reference.pt

It builds the official downstream backbone (``downstream/detection/mmdet/models/backbones/mlla.py``; the
segmentation copy is the same file) for each case of ``tests/reference_weights.py``, in eval mode with drop path 0,
gives it the weights of ``fill_reference_weights`` and the inputs of ``reference_input``, and stores, per case, the
four stage outputs and the gradient of ``reference_loss`` with respect to the input. The run is in float64 and the
results are rounded to float32 (``reference_weights.py`` says why), a batch of one inside a batch of two.

The official module imports mmdet 2.x's registry and logger and mmcv 1.x's ``_load_checkpoint``; none of them
runs when the model is built with weights set afterwards, so small stand-ins take their place here, and the file is
loaded from the checkout as it is. timm's ``DropPath``/``to_2tuple``/``trunc_normal_`` come from timm when it is
installed, else from stand-ins (with drop path 0 and the weights overwritten they do not affect the numbers).
"""
import argparse
import importlib.util
import sys
import types
from pathlib import Path

import torch

TESTS_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS_DIR))  # reference_weights.py lives next to the tests

from reference_weights import REFERENCE_CASES, fill_reference_weights, reference_input, reference_loss  # noqa: E402

OFFICIAL_BACKBONE = Path('downstream', 'detection', 'mmdet', 'models', 'backbones', 'mlla.py')


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that the official file's relative imports resolve
    module.__dict__.update(attrs)
    return module


class _Registry:
    """Stands in for mmdet 2.x's ``BACKBONES``: registering returns the class unchanged."""

    def register_module(self, *args, **kwargs):
        return lambda cls: cls


def _not_needed(*args, **kwargs):
    raise RuntimeError('the reference is built without a checkpoint; this official helper should not run')


def _timm_layers() -> dict:
    """Stand-ins for the three timm helpers, used only where timm is not installed."""
    if importlib.util.find_spec('timm') is not None:
        return {}

    class DropPath(torch.nn.Module):  # built only for a drop path rate above 0, which the reference never uses
        def __init__(self, drop_prob=0.):
            super().__init__()
            raise ValueError(f'the reference runs with drop path 0, got {drop_prob}')

    def to_2tuple(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
        return torch.nn.init.trunc_normal_(tensor, mean, std, a, b)

    return {'timm': _module('timm'), 'timm.models': _module('timm.models'),
            'timm.models.layers': _module('timm.models.layers', DropPath=DropPath, to_2tuple=to_2tuple,
                                          trunc_normal_=trunc_normal_)}


def load_official_mlla(official_repo: Path) -> type:
    """The official ``MLLA`` class, loaded from the checkout with stand-ins for its mmdet 2/mmcv 1 imports."""
    source = official_repo / OFFICIAL_BACKBONE
    if not source.is_file():
        raise FileNotFoundError(f'{source} not found: --official-repo must be a checkout of LeapLabTHU/MLLA')
    package = 'official_mmdet'
    stand_ins = {
        package: _module(package),
        f'{package}.models': _module(f'{package}.models'),
        f'{package}.models.backbones': _module(f'{package}.models.backbones'),
        f'{package}.models.builder': _module(f'{package}.models.builder', BACKBONES=_Registry()),
        f'{package}.utils': _module(f'{package}.utils', get_root_logger=_not_needed),
        'mmcv.runner': _module('mmcv.runner', _load_checkpoint=_not_needed),
        **_timm_layers(),
    }
    if importlib.util.find_spec('mmcv') is None:
        stand_ins['mmcv'] = _module('mmcv')
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        spec = importlib.util.spec_from_file_location(f'{package}.models.backbones.mlla', source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:  # the stand-ins are needed only while the file is imported
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = previous
    return module.MLLA


def official_arch(arch):
    """The official constructor's arguments for an mlla-mm ``arch`` (a name or a dict)."""
    named = {  # the official configs' settings (downstream/detection/configs/mlla/mlla_{t,s,b}_mrcnn_1x.py)
        'tiny': dict(embed_dims=64, depths=[2, 4, 8, 4], num_heads=[2, 4, 8, 16]),
        'small': dict(embed_dims=64, depths=[3, 6, 21, 6], num_heads=[2, 4, 8, 16]),
        'base': dict(embed_dims=96, depths=[3, 6, 21, 6], num_heads=[3, 6, 12, 24]),
    }
    settings = named[arch] if isinstance(arch, str) else arch
    return dict(embed_dim=settings['embed_dims'], depths=list(settings['depths']),
                num_heads=list(settings['num_heads']))


def run_case(official_mlla: type, case: str) -> dict:
    spec = REFERENCE_CASES[case]
    model = official_mlla(**official_arch(spec['arch']), drop_path_rate=0.).eval()
    fill_reference_weights(model)
    model.double()
    x = reference_input(case).double().requires_grad_(True)
    batch = x.shape[0]
    # a batch of one runs with a copy beside it; the loss sees the first sample only
    inputs = torch.cat([x, x.detach()]) if batch == 1 else x
    outputs = [out[:batch] for out in model(inputs)]
    reference_loss(outputs).backward()
    return dict(outputs=[out.detach().float() for out in outputs], input_grad=x.grad.float())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--official-repo', type=Path, required=True, help='checkout of github.com/LeapLabTHU/MLLA')
    parser.add_argument('--out', type=Path, required=True, help='where to write the reference (.pt)')
    parser.add_argument('--force', action='store_true', help='overwrite --out if it exists')
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it')
    official_mlla = load_official_mlla(args.official_repo)
    reference = {'torch_version': str(torch.__version__)}
    for case in REFERENCE_CASES:
        reference[case] = run_case(official_mlla, case)
        shapes = ', '.join('x'.join(map(str, out.shape)) for out in reference[case]['outputs'])
        print(f'{case}: outputs {shapes}')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
