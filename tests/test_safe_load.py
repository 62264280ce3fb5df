"""No checkpoint runs code or changes the running process, whichever way it is opened.

Each hostile file is tried through every entry point that opens checkpoints: a backbone's ``init_cfg`` Pretrained,
mmengine's ``load_checkpoint`` / ``load_from``, mmengine's resume, ``tools/test.py``, ``tools/demo.py`` and
``tools/convert_checkpoint.py``. After each try no marker file exists and no admitted class or function differs.
"""
import importlib
import io
import json
import os
import os.path as osp
import pickle
import runpy
import struct
import sys
import tarfile
import types
from collections import Counter
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn as nn

import mlla_mm  # noqa: F401  (installs the safe loader into mmengine)
from mlla_mm import MLLA
from mlla_mm.checkpoint import safe_load
from mlla_mm.checkpoint.safe_load import (ADMITTED_GLOBALS, OpaqueObject, UnsafeCheckpointError, allowed_globals,
                                          safe_torch_load)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_DEMO = osp.join(REPO, 'configs', 'demo', 'mask_rcnn_mlla_t_demo.py')
TINY_ARCH = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])


# ----------------------------------------------------------------------------------------------------------------
# hostile files
# ----------------------------------------------------------------------------------------------------------------
class RawOpcodes:
    """Pickled as the given opcodes, verbatim: what a hand-made hostile file holds at this place."""

    def __init__(self, opcodes: bytes):
        self.opcodes = opcodes


class _RawPickler(pickle._Pickler):

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, RawOpcodes):
            self.write(obj.opcodes)
            return
        super().save(obj, save_persistent_id)


RAW_PICKLE = types.SimpleNamespace(Pickler=_RawPickler, __name__='raw_pickle')


def _text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack('<I', len(data)) + data


def build_on_global(module: str, name: str, dict_state: dict, slot_state: dict) -> RawOpcodes:
    """GLOBAL module.name, then BUILD with (dict_state, slot_state): ``setattr`` on the class or function itself."""

    def as_dict(values):
        opcodes = pickle.EMPTY_DICT
        for key, value in values.items():
            item = (pickle.MARK + _text(value[0]) + pickle.TUPLE if isinstance(value, tuple) else _text(value))
            opcodes += _text(key) + item + pickle.SETITEM
        return opcodes

    return RawOpcodes(pickle.GLOBAL + f'{module}\n{name}\n'.encode() + as_dict(dict_state) + as_dict(slot_state)
                      + pickle.TUPLE2 + pickle.BUILD)


class CallOnLoad:
    """Pickles as ``function(*args)``: what an unrestricted unpickler would call."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


_ATTACK_OP = []


def register_file_writing_op():
    """A torch op that writes a file: what a TorchScript archive's code can call when torch.jit.load runs it."""
    if not _ATTACK_OP:
        library = torch.library.Library('mlla_safe_load_test', 'DEF')
        library.define('touch(Tensor x, str path) -> Tensor')

        def touch(x, path):
            with open(path, 'w') as file:
                file.write('code from the archive ran')
            return x

        library.impl('touch', touch, 'CompositeExplicitAutograd')
        _ATTACK_OP.append(library)


class ScriptedWriter(nn.Module):
    """Its TorchScript ``__setstate__`` (run by torch.jit.load) writes the file named in the archive."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.register_buffer('weight', torch.zeros(1))

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.path, self.weight)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor]):
        self.path = state[0]
        self.training = False
        self.weight = torch.ops.mlla_safe_load_test.touch(state[1], state[0])


def write_torchscript_archive(path, marker):
    register_file_writing_op()
    torch.jit.save(torch.jit.script(ScriptedWriter(str(marker))), str(path))
    if marker.exists():  # scripting may run __setstate__ once; only what loading does counts
        marker.unlink()


def write_legacy_tar(path, marker):
    """The container of torch < 0.4 checkpoints: a tar of 'storages', 'tensors' and 'pickle' members."""
    members = {'storages': pickle.dumps(0, protocol=2), 'tensors': pickle.dumps(0, protocol=2),
               'pickle': pickle.dumps(CallOnLoad(os.system, f'touch {marker}'), protocol=2)}
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


ATTACKS = ['torchscript', 'legacy_tar', 'build_class', 'build_function', 'os_system', 'getattr_tofile']
REFUSED = {'torchscript': 'is a TorchScript archive', 'legacy_tar': 'is a legacy tar checkpoint',
           'build_class': 'BUILD on', 'build_function': 'BUILD on'}


def write_attack(kind, path, marker):
    if kind == 'torchscript':
        write_torchscript_archive(path, marker)
    elif kind == 'legacy_tar':
        write_legacy_tar(path, marker)
    elif kind == 'build_class':  # Counter.most_common replaced for the whole process
        payload = build_on_global('collections', 'Counter', {}, {'most_common': str(marker)})
        torch.save({'state_dict': {}, 'payload': payload}, path, pickle_module=RAW_PICKLE, pickle_protocol=2)
    elif kind == 'build_function':  # a rebuild function's defaults and __dict__ changed
        payload = build_on_global('torch._utils', '_rebuild_tensor_v2', {'loaded_marker': str(marker)},
                                  {'__defaults__': (str(marker),)})
        torch.save({'state_dict': {}, 'payload': payload}, path, pickle_module=RAW_PICKLE, pickle_protocol=2)
    elif kind == 'os_system':
        torch.save({'state_dict': [CallOnLoad(os.system, f'touch {marker}')]}, path)
    elif kind == 'getattr_tofile':
        torch.save({'state_dict': [CallOnLoad(getattr(np.arange(3), 'tofile'), str(marker))]}, path)
    else:
        raise ValueError(kind)


def _snapshot(obj):
    if isinstance(obj, type):
        return dict(vars(obj))
    if isinstance(obj, types.FunctionType):
        return (obj.__code__, obj.__defaults__, obj.__kwdefaults__, dict(obj.__dict__))
    return None


def _restore(obj, snapshot):
    if isinstance(obj, type):
        for key in set(vars(obj)) - set(snapshot):
            delattr(obj, key)
        for key, value in snapshot.items():
            if vars(obj).get(key, snapshot) is not value and key not in ('__dict__', '__weakref__', '__doc__'):
                setattr(obj, key, value)
    else:
        obj.__code__, obj.__defaults__, obj.__kwdefaults__ = snapshot[:3]
        obj.__dict__.clear()
        obj.__dict__.update(snapshot[3])


@pytest.fixture
def process_unchanged():
    """Fails the test if any admitted class or function (or the classes the attacks name) changed."""
    for module in ('mmdet.apis', 'mmseg.apis'):  # what the tools import, imported before the snapshot
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    watched = {name: obj for name, (obj, _) in ADMITTED_GLOBALS.items() if isinstance(obj, (type, types.FunctionType))}
    watched['collections.Counter'] = Counter
    before = {name: _snapshot(obj) for name, obj in watched.items()}
    yield
    changed = [name for name, obj in watched.items() if _snapshot(obj) != before[name]]
    for name in changed:  # put the process back, then fail
        _restore(watched[name], before[name])
    assert not changed, f'loading changed {changed}'


# ----------------------------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------------------------
class ToyModel(nn.Module):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)


def _toy_runner(work_dir, checkpoint, resume):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyRegressor(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, targets=None, mode='tensor'):
            return self.linear(inputs)

    data = [(torch.zeros(2), torch.zeros(1))] * 2
    return Runner(model=ToyRegressor(), work_dir=str(work_dir),
                  train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                                        batch_size=1, collate_fn=dict(type='default_collate')),
                  train_cfg=dict(by_epoch=True, max_epochs=1), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                  load_from=str(checkpoint), resume=resume, experiment_name=f'{work_dir.name}-{resume}',
                  default_hooks=dict(logger=None, checkpoint=None))


def write_tiny_coco(root):
    """One 32 x 32 image with one square, as the demo configs' data/demo/coco/ val split."""
    import cv2
    os.makedirs(root / 'val', exist_ok=True)
    os.makedirs(root / 'annotations', exist_ok=True)
    image = np.zeros((32, 32, 3), np.uint8)
    image[8:24, 8:24] = 255
    cv2.imwrite(str(root / 'val' / 'a.png'), image)
    annotations = dict(
        images=[dict(id=1, file_name='a.png', width=32, height=32)],
        annotations=[dict(id=1, image_id=1, category_id=1, bbox=[8, 8, 16, 16], area=256, iscrowd=0,
                          segmentation=[[8, 8, 24, 8, 24, 24, 8, 24]])],
        categories=[dict(id=i + 1, name=n) for i, n in enumerate(('square', 'circle', 'triangle'))])
    (root / 'annotations' / 'instances_val.json').write_text(json.dumps(annotations))
    return root / 'val' / 'a.png'


def _tool_main(name, monkeypatch):
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the tool adds the checkout to sys.path
    return runpy.run_path(osp.join(REPO, 'tools', name), run_name='mlla_mm_tool')['main']


def open_with(entry, checkpoint, tmp_path, monkeypatch):
    """Open ``checkpoint`` the way ``entry`` does."""
    if entry == 'init_cfg_pretrained':
        MLLA(TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))).init_weights()
    elif entry == 'load_checkpoint':
        from mmengine.runner import load_checkpoint
        load_checkpoint(ToyModel(), str(checkpoint))
    elif entry in ('load_from', 'resume'):
        _toy_runner(tmp_path / f'work_{entry}', checkpoint, resume=entry == 'resume').load_or_resume()
    elif entry == 'tools_test':
        pytest.importorskip('mmdet.apis')
        monkeypatch.chdir(tmp_path)
        write_tiny_coco(tmp_path / 'data' / 'demo' / 'coco')
        main = _tool_main('test.py', monkeypatch)
        main([DET_DEMO, str(checkpoint), '--work-dir', str(tmp_path / 'work_test'), '--cfg-options',
              'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
              'test_dataloader.batch_size=1',
              # mmengine hands a later runner the visualizer of the same name, with an earlier test's folder
              f'visualizer.name={tmp_path.name}'])
    elif entry == 'tools_demo':
        pytest.importorskip('mmdet.apis')
        image = write_tiny_coco(tmp_path / 'images')
        main = _tool_main('demo.py', monkeypatch)
        main([str(image), DET_DEMO, str(checkpoint), '--out', str(tmp_path / 'pictures'), '--device', 'cpu'])
    elif entry == 'tools_convert_checkpoint':
        main = _tool_main('convert_checkpoint.py', monkeypatch)
        main([str(checkpoint), str(tmp_path / 'converted.pth'), '--arch', 'tiny'])
    else:
        raise ValueError(entry)


ENTRY_POINTS = ['init_cfg_pretrained', 'load_checkpoint', 'load_from', 'resume', 'tools_test', 'tools_demo',
                'tools_convert_checkpoint']


@pytest.mark.parametrize('entry', ENTRY_POINTS)
@pytest.mark.parametrize('attack', ATTACKS)
def test_hostile_checkpoint_runs_nothing_and_changes_nothing(attack, entry, tmp_path, monkeypatch,
                                                            process_unchanged):
    marker = tmp_path / 'marker'
    checkpoint = tmp_path / 'hostile.pth'
    write_attack(attack, checkpoint, marker)
    try:
        open_with(entry, checkpoint, tmp_path, monkeypatch)
    except (Exception, SystemExit) as err:  # a refusal (a tool exits with the message), or a later clear error
        error = err
    else:
        error = None
    assert not marker.exists(), f'{attack} through {entry} ran code'
    if attack in REFUSED:
        assert error is not None, f'{attack} through {entry} was not refused'
        assert str(checkpoint) in str(error) and REFUSED[attack] in str(error), str(error)


# ----------------------------------------------------------------------------------------------------------------
# the loader itself
# ----------------------------------------------------------------------------------------------------------------
def test_torchscript_archive_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    write_torchscript_archive(tmp_path / 'scripted.pt', marker)

    def no_jit_load(*args, **kwargs):
        raise AssertionError('torch.jit.load was called')

    monkeypatch.setattr(torch.jit, 'load', no_jit_load)
    with pytest.raises(UnsafeCheckpointError, match=r'scripted\.pt is a TorchScript archive'):
        safe_torch_load(tmp_path / 'scripted.pt')
    assert not marker.exists()


def test_torchscript_dispatch_is_never_reached_even_without_the_check(tmp_path, monkeypatch):
    """The loader calls torch's zip reader itself: with the archive check switched off, the scripted module's
    pickle is read as data (stand-ins), and torch.jit.load is not called."""
    marker = tmp_path / 'marker'
    write_torchscript_archive(tmp_path / 'scripted.pt', marker)
    monkeypatch.setattr(safe_load, '_refuse_unsafe_container', lambda opened, name: True)
    monkeypatch.setattr(torch.jit, 'load', lambda *a, **k: pytest.fail('torch.jit.load was called'))
    try:
        safe_torch_load(tmp_path / 'scripted.pt')
    except RuntimeError as err:
        assert 'scripted.pt' in str(err)
    assert not marker.exists()


def test_plain_checkpoints_still_load(tmp_path):
    """Zip and legacy (non-tar) torch.save files with tensors, an OrderedDict's metadata and numpy values."""
    state = MLLA(TINY_ARCH).state_dict()
    for name, kwargs in (('zip.pth', {}), ('legacy.pth', dict(_use_new_zipfile_serialization=False))):
        torch.save({'state_dict': state, 'meta': {'best': np.float64(0.5), 'dtype': np.dtype('<U3')}},
                   tmp_path / name, **kwargs)
        loaded = safe_torch_load(tmp_path / name)
        assert list(loaded['state_dict']) == list(state)
        assert loaded['state_dict']._metadata == state._metadata
        assert all(torch.equal(loaded['state_dict'][k], v) for k, v in state.items())
        assert loaded['meta']['best'] == 0.5 and loaded['meta']['dtype'] == np.dtype('<U3')


def test_numpy_dtypes_are_always_new(tmp_path):
    """``numpy.dtype('f8', False, False)`` returns numpy's shared float64 dtype: the loader makes a new one, so
    that the BUILD which follows changes only the loaded copy."""
    float64 = np.dtype('f8')
    state = (3, '>', None, None, None, -1, -1, 0)
    opcodes = (pickle.GLOBAL + b'numpy\ndtype\n' + _text('f8') + pickle.NEWFALSE + pickle.NEWFALSE
               + pickle.TUPLE3 + pickle.REDUCE + pickle.MARK + pickle.BININT1 + b'\x03' + _text('>')
               + pickle.NONE * 3 + pickle.BININT + struct.pack('<i', -1) + pickle.BININT + struct.pack('<i', -1)
               + pickle.BININT1 + b'\x00' + pickle.TUPLE + pickle.BUILD)
    assert len(state) == 8
    torch.save({'dtype': RawOpcodes(opcodes)}, tmp_path / 'dtype.pth', pickle_module=RAW_PICKLE, pickle_protocol=2)
    loaded = safe_torch_load(tmp_path / 'dtype.pth')
    assert loaded['dtype'].byteorder == '>' and loaded['dtype'] is not float64
    assert np.dtype('f8').byteorder == '=' and np.dtype('f8') is float64


@pytest.mark.parametrize('opcode', ['SETITEMS', 'APPENDS'])
def test_shared_objects_cannot_be_filled(tmp_path, opcode):
    """SETITEMS / APPENDS on a global (here a rebuild function and the Counter class) are refused too."""
    target = pickle.GLOBAL + (b'collections\nCounter\n' if opcode == 'APPENDS' else b'torch._utils\n_rebuild_tensor\n')
    body = _text('k') + _text('v') if opcode == 'SETITEMS' else _text('v')
    raw = RawOpcodes(target + pickle.MARK + body + (pickle.SETITEMS if opcode == 'SETITEMS' else pickle.APPENDS))
    torch.save({'payload': raw}, tmp_path / 'fill.pth', pickle_module=RAW_PICKLE, pickle_protocol=2)
    with pytest.raises(RuntimeError, match=rf'fill\.pth.*{opcode} on'):
        safe_torch_load(tmp_path / 'fill.pth')


# ----------------------------------------------------------------------------------------------------------------
# the allow-list as a whole
# ----------------------------------------------------------------------------------------------------------------
# Objects that run code, import modules, spawn processes or reach other objects' attributes.
CODE_RUNNING = [eval, exec, compile, getattr, setattr, delattr, __import__, open, input, breakpoint, globals, vars,
                type, object, os.system, os.popen, os.execv, os.remove, os.fork if hasattr(os, 'fork') else os.system,
                runpy.run_path, pickle.loads, types.FunctionType, types.CodeType, np.ndarray.tofile, np.load,
                torch.load, torch.jit.load]
REFUSED_PREFIXES = ('builtins.', '__builtin__.', 'os.', 'posix.', 'nt.', 'subprocess.', 'sys.', 'importlib.',
                    'runpy.', 'pickle.', 'marshal.', 'types.', 'shutil.', 'socket.', 'ctypes.', 'functools.',
                    'operator.', 'torch.jit.', 'torch.ops.', 'torch.hub.', 'torch.package.')
# The only builtins a checkpoint may name, and why (getattr is answered by a restricted getattr).
ADMITTED_BUILTINS = {'builtins.set': 'sets', 'builtins.bytearray': 'bytes', 'builtins.complex': 'numbers',
                     'builtins.getattr': 'restricted', '__builtin__.getattr': 'restricted'}


def check_allow_list(allowed, table):
    """Every name the unpickler admits is in the documented table with a reason (or the user's own
    ``add_safe_globals``), names no refused module, and is not a code-running callable, a module or a metaclass;
    builtins are limited to ADMITTED_BUILTINS."""
    import subprocess
    user_names = set(safe_load._user_safe_globals())
    code_running = CODE_RUNNING + [subprocess.Popen, subprocess.run, subprocess.call, subprocess.check_output]
    for name, obj in allowed.items():
        if name in ADMITTED_BUILTINS:
            continue
        assert name in table and table[name][1].strip() or name in user_names, f'{name} is not documented'
        assert not name.startswith(REFUSED_PREFIXES), f'{name}: its module may never be named by a checkpoint'
        assert not any(obj is bad for bad in code_running), f'{name} is {obj!r}, which runs code'
        assert not isinstance(obj, types.ModuleType), f'{name} is a module'
        assert not (isinstance(obj, type) and issubclass(obj, type)), f'{name} is a metaclass'
    assert {n for n in allowed if n.startswith(('builtins.', '__builtin__.'))} <= set(ADMITTED_BUILTINS)
    assert allowed['builtins.getattr'] is not getattr


def test_every_admitted_name_is_documented_and_runs_no_code():
    check_allow_list(allowed_globals(), ADMITTED_GLOBALS)


@pytest.mark.parametrize('extra', [{'builtins.eval': eval}, {'subprocess.Popen': 'subprocess.Popen'},
                                   {'os.system': os.system}, {'builtins.getattr': getattr},
                                   {'mymodule.undocumented': dict}])
def test_allow_list_check_fails_for_an_opened_unpickler(extra):
    """The check above fails for an unpickler that also trusts builtins or subprocess, even when documented."""
    import subprocess
    extra = {k: subprocess.Popen if v == 'subprocess.Popen' else v for k, v in extra.items()}
    table = dict(ADMITTED_GLOBALS)
    table.update({k: (v, 'documented') for k, v in extra.items() if k != 'mymodule.undocumented'})
    with pytest.raises(AssertionError):
        check_allow_list(dict(allowed_globals(), **extra), table)


@pytest.mark.parametrize('module,name,args', [
    ('builtins', 'eval', ("__import__('os').system('touch {marker}')",)),
    ('builtins', 'exec', ("open('{marker}', 'w').close()",)),
    ('__builtin__', 'eval', ("open('{marker}', 'w').close()",)),
    ('builtins', '__import__', ('os',)),
    ('builtins', 'open', ('{marker}', 'w')),
    ('os', 'system', ('touch {marker}',)),
    ('posix', 'system', ('touch {marker}',)),
    ('subprocess', 'Popen', (['touch', '{marker}'],)),
    ('subprocess', 'check_call', (['touch', '{marker}'],)),
    ('importlib', 'import_module', ('shutil',)),
    ('runpy', 'run_path', ('{marker}',)),
    ('numpy', 'save', ('{marker}', 0)),
    ('torch', 'save', (0, '{marker}')),
    ('torch.jit', 'load', ('{marker}',)),
])
def test_code_running_globals_are_stand_ins(tmp_path, module, name, args):
    marker = tmp_path / 'marker'
    args = tuple(a.format(marker=marker) if isinstance(a, str) else [x.format(marker=marker) for x in a]
                 if isinstance(a, list) else a for a in args)
    body = b''.join(_text(a) if isinstance(a, str) else
                    pickle.MARK + b''.join(_text(x) for x in a) + pickle.LIST if isinstance(a, list) else
                    pickle.BININT1 + bytes([a]) for a in args)
    raw = RawOpcodes(pickle.GLOBAL + f'{module}\n{name}\n'.encode() + pickle.MARK + body + pickle.TUPLE
                     + pickle.REDUCE)
    torch.save({'payload': raw}, tmp_path / 'evil.pth', pickle_module=RAW_PICKLE, pickle_protocol=2)
    loaded = safe_torch_load(tmp_path / 'evil.pth')
    assert not marker.exists()
    assert isinstance(loaded['payload'], OpaqueObject) and loaded['payload'].pickled_name == f'{module}.{name}'


def test_getattr_chains_reach_only_admitted_names(tmp_path):
    """getattr(getattr(torch.Tensor, '__init__'), '__globals__') and getattr on a module reach nothing."""
    marker = tmp_path / 'marker'
    getattr_ = pickle.GLOBAL + b'builtins\ngetattr\n'
    chain = (getattr_ + getattr_ + pickle.GLOBAL + b'torch\nTensor\n' + _text('__init__') + pickle.TUPLE2
             + pickle.REDUCE + _text('__globals__') + pickle.TUPLE2 + pickle.REDUCE)
    on_module = (getattr_ + pickle.GLOBAL + b'torch.serialization\n_get_layout\n' + _text('__globals__')
                 + pickle.TUPLE2 + pickle.REDUCE)
    system = (getattr_ + pickle.GLOBAL + b'numpy\nndarray\n' + _text('tofile') + pickle.TUPLE2 + pickle.REDUCE
              + pickle.MARK + _text(str(marker)) + pickle.TUPLE + pickle.REDUCE)
    torch.save({'chain': RawOpcodes(chain), 'module': RawOpcodes(on_module), 'tofile': RawOpcodes(system)},
               tmp_path / 'chain.pth', pickle_module=RAW_PICKLE, pickle_protocol=2)
    loaded = safe_torch_load(tmp_path / 'chain.pth')
    assert not marker.exists()
    # a stand-in class (what a getattr answers) or a stand-in object (what calling it gives)
    assert all(isinstance(loaded[key], OpaqueObject) or issubclass(loaded[key], OpaqueObject)
               for key in ('chain', 'module', 'tofile'))
    assert 'tofile' in loaded['tofile'].pickled_name


def test_codecs_other_than_latin1_are_refused(tmp_path):
    raw = RawOpcodes(pickle.GLOBAL + b'_codecs\nencode\n' + _text('x') + _text('rot13') + pickle.TUPLE2
                     + pickle.REDUCE)
    torch.save({'payload': raw}, tmp_path / 'codec.pth', pickle_module=RAW_PICKLE, pickle_protocol=2)
    with pytest.raises(RuntimeError, match=r'codec\.pth.*rot13'):
        safe_torch_load(tmp_path / 'codec.pth')


def test_safetensors_files_load_as_before(tmp_path):
    pytest.importorskip('safetensors')
    from safetensors.torch import save_file
    state = {'weight': torch.arange(4.0)}
    save_file(state, str(tmp_path / 'weights.safetensors'))
    assert torch.equal(safe_torch_load(tmp_path / 'weights.safetensors')['weight'], state['weight'])
