"""Loading checkpoints without running code from them or changing the running process.

A checkpoint is a pickle, and unpickling can import and call anything the file names. ``torch.load`` with
``weights_only=True`` refuses every object that is not plain data, and released checkpoints carry such objects
beside their weights: a training config of a class the user has not installed (yacs' ``CfgNode``),
``argparse.Namespace``, numpy scalars, mmengine's log buffers. So mlla-mm reads checkpoints itself:

- the container is checked before anything is unpickled: a TorchScript archive (``torch.load`` would hand it to
  ``torch.jit.load``, which runs the archive's code) and a legacy tar checkpoint are refused; the zip reader and
  the unpickler are then called directly, so ``torch.load``'s dispatch to TorchScript is never reached;
- the globals listed in :data:`ADMITTED_GLOBALS` (each with the reason it is safe) and those the user allowed with
  ``torch.serialization.add_safe_globals`` are rebuilt for real, so that mmengine's resume restores its full state;
- every other name becomes an inert :class:`OpaqueObject` that only records what the pickle gives it. The named
  module is never imported and nothing from it runs. Unrestricted unpickling is never used, not even as a fallback;
- the opcodes that change an existing object (BUILD, SETITEM(S), APPEND(S), ADDITEMS) may only change objects
  this load created; see :class:`RestrictedUnpickler`.
"""
import codecs
import io
import os
import pickle
import tarfile
import types
import warnings
from collections import Counter, OrderedDict
from typing import Any, Callable, Dict, Set, Tuple, Union

import numpy as np
import torch
import torch.serialization
from torch import _weights_only_unpickler
from torch.serialization import get_safe_globals

FileLike = Union[str, os.PathLike, io.IOBase]

# Entries of a zip that only TorchScript (and its mobile format) writes: torch.load dispatches such archives to
# torch.jit.load, which compiles and runs the archive's code.
TORCHSCRIPT_RECORDS = ('constants.pkl', 'bytecode.pkl')
TORCHSCRIPT_FOLDERS = ('code/',)

# Modules whose globals a checkpoint is never allowed to name, even through add_safe_globals: they run code, spawn
# processes, import modules or touch files.
REFUSED_MODULES = ('builtins', '__builtin__', 'os', 'posix', 'nt', 'subprocess', 'sys', 'importlib', 'runpy',
                   'pickle', '_pickle', 'marshal', 'types', 'code', 'codeop', 'ctypes', 'shutil', 'socket', 'io',
                   'functools', 'operator', 'inspect', 'torch.jit', 'torch.ops', 'torch._ops', 'torch.hub',
                   'torch.package')


class UnsafeCheckpointError(ValueError):
    """The file is of a kind that cannot be read without running code from it (TorchScript, legacy tar)."""


class OpaqueObject(dict):
    """Stand-in for an object whose class mlla-mm will not import: holds what the pickle gave it, runs nothing.

    It takes whatever a pickle may hand an object: constructor arguments, dict items (it is a ``dict``, for dict
    subclasses such as yacs' ``CfgNode``), list items, and state.
    """

    pickled_name = '<unknown>'

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args, self.kwargs, self.list_items, self.state = args, kwargs, [], None

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.list_items.append(item)

    def extend(self, items):
        self.list_items.extend(items)

    def __reduce__(self):  # pickles back as a plain dict of what it holds, never as the original class
        return (dict, (dict(self),))

    def __repr__(self):
        return f'OpaqueObject({self.pickled_name}, {dict.__repr__(self)})'


def _opaque_class(full_name: str) -> type:
    return type('OpaqueObject', (OpaqueObject,), {'pickled_name': full_name})


def _latin1_encode(text: str, encoding: str = 'latin1') -> bytes:
    """``_codecs.encode`` as protocol 2 pickles use it for bytes; any other codec (a codec lookup imports a
    module by the name the file gives) is refused."""
    if encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError(f'codec {encoding!r} is not allowed in a checkpoint (only latin1)')
    return codecs.encode(text, 'latin1')


def _numpy_dtype(obj, align=False, copy=True):
    """``numpy.dtype`` that always returns a new dtype: with ``copy=False`` numpy returns its shared built-in
    dtype, and the BUILD that follows in a pickle would change that one for the whole process."""
    return np.dtype(obj, align, True)


# Torch's tensor rebuild functions: each makes a new tensor or parameter from storages and plain values.
TENSOR_REBUILD_FUNCTIONS = ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3', '_rebuild_parameter',
                            '_rebuild_parameter_with_state', '_rebuild_qtensor', '_rebuild_sparse_tensor',
                            '_rebuild_nested_tensor', '_rebuild_device_tensor_from_numpy',
                            '_rebuild_device_tensor_from_cpu_tensor', '_rebuild_meta_tensor_no_storage',
                            '_rebuild_wrapper_subclass')


def _named_globals() -> Dict[str, Tuple[Any, str]]:
    """The single names a checkpoint may use: pickled name -> (object, why it is safe)."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    admitted: Dict[str, Tuple[Any, str]] = {
        'collections.OrderedDict': (OrderedDict, 'state_dicts and their metadata are ordered dicts'),
        'collections.Counter': (Counter, 'a dict of counts (in torch\'s weights_only list)'),
        'builtins.set': (set, 'a set of values the pickle gives'),
        'builtins.bytearray': (bytearray, 'bytes from the pickle'),
        'builtins.complex': (complex, 'a complex number'),
        '_codecs.encode': (_latin1_encode, 'protocol 2 bytes; restricted to the latin1 codec'),
        'torch.Tensor': (torch.Tensor, 'an empty tensor that a rebuild function or BUILD fills'),
        'torch.nn.parameter.Parameter': (torch.nn.Parameter, 'a parameter wrapping a rebuilt tensor'),
        'torch.Size': (torch.Size, 'a tuple of ints'),
        'torch.device': (torch.device, 'a device name; moves nothing by itself'),
        'torch.serialization._get_layout': (torch.serialization._get_layout, 'looks a layout constant up by name'),
        'torch._tensor._rebuild_from_type_v2': (torch._tensor._rebuild_from_type_v2,
                                                'a tensor subclass from a rebuilt tensor (type must be admitted)'),
        'torch.storage.UntypedStorage': (torch.storage.UntypedStorage, 'the bytes of a tensor'),
        'torch.storage.TypedStorage': (torch.storage.TypedStorage, 'the bytes of a tensor, with a dtype'),
        'numpy.dtype': (_numpy_dtype, 'a numpy dtype, always a new one'),
        'numpy.ndarray': (np.ndarray, 'an array the pickle fills with data'),
    }
    for name in TENSOR_REBUILD_FUNCTIONS:
        if hasattr(torch._utils, name):
            admitted[f'torch._utils.{name}'] = (getattr(torch._utils, name), 'rebuilds a tensor from a storage')
    # Files written under numpy 1 name `numpy.core`, under numpy 2 `numpy._core`: accept both spellings.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        admitted[f'{module}._reconstruct'] = (multiarray._reconstruct, 'an empty array that BUILD fills')
        admitted[f'{module}.scalar'] = (multiarray.scalar, 'a numpy scalar from its dtype and bytes')
    for name in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'float16', 'float32', 'float64'):
        dtype_class = type(np.dtype(name))
        admitted[f'{dtype_class.__module__}.{dtype_class.__qualname__}'] = (dtype_class, 'a numpy dtype class')
    try:  # mmengine's message hub keeps its logged scalars in these, with references to their statistics
        from mmengine.logging import HistoryBuffer
        name = 'mmengine.logging.history_buffer.HistoryBuffer'
        admitted[name] = (HistoryBuffer, "mmengine's log of scalars (lists of numbers)")
        for method in ('min', 'max', 'mean', 'current'):
            admitted[f'{name}.{method}'] = (getattr(HistoryBuffer, method), 'a statistic of a HistoryBuffer')
    except ImportError:
        pass
    return admitted


# Families of constants from torch's weights_only list, admitted by the kind of their value.
ADMITTED_FAMILIES: Tuple[Tuple[Callable[[Any], bool], str], ...] = (
    (lambda value: isinstance(value, torch.dtype), 'a torch dtype constant (torch.float32, ...)'),
    (lambda value: isinstance(value, torch.qscheme), 'a quantization scheme constant'),
    (lambda value: isinstance(value, torch.serialization.StorageType), 'a legacy storage class name (data only)'),
    (lambda value: isinstance(value, type) and value in torch._tensor_classes,
     'a legacy tensor type (torch.FloatTensor, ...): makes a tensor'),
)


def _family_globals() -> Dict[str, Tuple[Any, str]]:
    admitted = {}
    for name, value in _weights_only_unpickler._get_allowed_globals().items():
        for matches, reason in ADMITTED_FAMILIES:
            if matches(value):
                admitted[name] = (value, reason)
                break
    return admitted


def admitted_globals() -> Dict[str, Tuple[Any, str]]:
    """Every global name a checkpoint may use, with the object it is rebuilt from and why that is safe.

    Besides the names listed here, ``builtins.getattr`` is answered by a getattr that only returns admitted names,
    and the user's ``torch.serialization.add_safe_globals`` entries are admitted unless their module is one of
    :data:`REFUSED_MODULES`.
    """
    admitted = _family_globals()
    admitted.update(_named_globals())
    return admitted


# The table, built once the process has imported what it names (see admitted_globals for the reasons).
ADMITTED_GLOBALS = admitted_globals()


def _module_is_refused(name: str) -> bool:
    return any(name == module or name.startswith(module + '.') for module in REFUSED_MODULES)


def _user_safe_globals() -> Dict[str, Any]:
    allowed = {}
    for entry in get_safe_globals():  # the user's torch.serialization.add_safe_globals
        obj, name = entry if isinstance(entry, tuple) else (entry, f'{entry.__module__}.{entry.__qualname__}')
        if not _module_is_refused(name):
            allowed[name] = obj
    return allowed


def _restricted_getattr(allowed: Dict[str, Any], replaced: Set[str]):
    """``getattr`` as a pickle may call it (protocol 4 pickles ``Class.method`` as ``getattr(Class, 'method')``),
    answering only for attributes that are themselves allowed: an open getattr would reach any method of an
    allowed object (``ndarray.tofile`` writes files)."""

    def restricted_getattr(obj, name):
        owner = obj if isinstance(obj, type) else type(obj)
        full_name = f'{owner.__module__}.{owner.__qualname__}.{name}'
        if full_name in allowed:
            return allowed[full_name]
        replaced.add(full_name)
        return _opaque_class(full_name)

    return restricted_getattr


def allowed_globals(replaced: Set[str] = None) -> Dict[str, Any]:
    """Pickled name -> object, as the unpickler resolves it: the table, the user's safe globals and getattr."""
    allowed = {name: value for name, (value, _) in ADMITTED_GLOBALS.items()}
    allowed.update(_user_safe_globals())
    getattr_ = _restricted_getattr(allowed, replaced if replaced is not None else set())
    allowed['builtins.getattr'] = allowed['__builtin__.getattr'] = getattr_
    return allowed


def _is_code_or_namespace(obj: Any) -> bool:
    """Modules and anything callable (classes, functions, methods): shared by the whole process."""
    return isinstance(obj, types.ModuleType) or callable(obj)


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, with names resolved by :func:`allowed_globals` and guarded mutation opcodes.

    A global that a pickle names is shared by the whole process, so it must never be the target of an opcode that
    changes an object: BUILD (``setattr``/``__setstate__``), SETITEM(S), APPEND(S) and ADDITEMS refuse classes,
    modules, functions, any callable and every object that ``find_class`` returned. BUILD further requires an
    instance of an admitted class (or of a stand-in), as torch's weights_only unpickler does. The C unpickler
    cannot be guarded this way (only ``find_class`` can be overridden there), hence the pure-Python one; a
    checkpoint's pickle holds no tensor data, so it stays small.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    allowed: Dict[str, Any] = {}
    replaced: Set[str] = set()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shared_ids = {id(value) for value in self.allowed.values()}
        self._globals_returned: Dict[int, Any] = {}  # id -> object, kept alive so that ids stay unique
        self._buildable_types = {value for value in self.allowed.values() if isinstance(value, type)}

    def find_class(self, module, name):
        full_name = f'{module}.{name}'
        if full_name in self.allowed:
            obj = self.allowed[full_name]
        else:
            self.replaced.add(full_name)
            obj = _opaque_class(full_name)
        self._globals_returned[id(obj)] = obj
        return obj

    def _check_target(self, target: Any, opcode: str, build: bool = False):
        if id(target) in self._shared_ids or id(target) in self._globals_returned or _is_code_or_namespace(target):
            raise pickle.UnpicklingError(f'{opcode} on {target!r} refused: a checkpoint may only change objects '
                                         f'it creates, not a class, function or other shared object')
        # numpy dtypes are buildable: `numpy.dtype` here always makes a new one
        if build and not (type(target) in self._buildable_types or isinstance(target, (OpaqueObject, np.dtype))):
            raise pickle.UnpicklingError(f'BUILD on an object of type {type(target).__qualname__} refused: only '
                                         f'admitted classes are rebuilt with state')

    def load_build(self):
        self._check_target(self.stack[-2], 'BUILD', build=True)
        pickle._Unpickler.load_build(self)

    def load_setitem(self):
        self._check_target(self.stack[-3], 'SETITEM')
        pickle._Unpickler.load_setitem(self)

    def load_setitems(self):
        self._check_target(self.metastack[-1][-1], 'SETITEMS')
        pickle._Unpickler.load_setitems(self)

    def load_append(self):
        self._check_target(self.stack[-2], 'APPEND')
        pickle._Unpickler.load_append(self)

    def load_appends(self):
        self._check_target(self.metastack[-1][-1], 'APPENDS')
        pickle._Unpickler.load_appends(self)

    def load_additems(self):
        self._check_target(self.metastack[-1][-1], 'ADDITEMS')
        pickle._Unpickler.load_additems(self)

    for _opcode, _method in ((pickle.BUILD, load_build), (pickle.SETITEM, load_setitem),
                             (pickle.SETITEMS, load_setitems), (pickle.APPEND, load_append),
                             (pickle.APPENDS, load_appends), (pickle.ADDITEMS, load_additems)):
        dispatch[_opcode[0]] = _method
    del _opcode, _method


def _restricted_pickle_module(replaced: Set[str]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module whose unpickler is a :class:`RestrictedUnpickler` of this load."""
    unpickler = type('RestrictedUnpickler', (RestrictedUnpickler,),
                     {'allowed': allowed_globals(replaced), 'replaced': replaced})
    module = types.ModuleType('mlla_mm_restricted_pickle')
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    module.__dict__.update(dumps=pickle.dumps, dump=pickle.dump, Pickler=pickle.Pickler)
    return module


def _refuse_unsafe_container(opened: io.IOBase, name: str) -> bool:
    """Refuse TorchScript archives and legacy tar files; return whether the file is a zip (else a legacy pickle)."""
    start = opened.tell()
    is_zip = opened.read(4) == b'PK\x03\x04'
    opened.seek(start)
    if is_zip:
        records = torch._C.PyTorchFileReader(opened).get_all_records()
        opened.seek(start)
        found = [r for r in records if r in TORCHSCRIPT_RECORDS or r.startswith(TORCHSCRIPT_FOLDERS)]
        if found:
            raise UnsafeCheckpointError(
                f'{name} is a TorchScript archive (it holds {", ".join(sorted(found)[:3])}), not a checkpoint: '
                f'torch.load would run the code inside it, so it is refused. Load it with torch.jit.load only if '
                f'you trust its author, and save its state_dict() with torch.save.')
        return True
    try:
        with tarfile.open(fileobj=opened, mode='r:'):
            pass
    except tarfile.TarError:
        return False
    finally:
        opened.seek(start)
    raise UnsafeCheckpointError(
        f'{name} is a legacy tar checkpoint (torch < 0.4): it is refused because reading it extracts files and '
        f'unpickles them outside the checks applied to other checkpoints. Re-save its weights with a current torch.')


def _load_safetensors(path: str, map_location: Any) -> Dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise RuntimeError(f'{path}: reading .safetensors files needs the safetensors package') from err
    device = str(map_location) if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        return load_file(path, device=device)
    except Exception as err:
        raise RuntimeError(f'could not load checkpoint {path}: {type(err).__name__}: {err}') from err


def safe_torch_load(file: FileLike, map_location: Any = 'cpu') -> Any:
    """Load a ``torch.save`` file without executing code from it (see the module's docstring).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        UnsafeCheckpointError: a TorchScript archive or a legacy tar file (a ValueError naming the file).
        RuntimeError: the file is not a checkpoint torch can read, or it tries to change a shared object (the
            message names the file).
    """
    is_path = isinstance(file, (str, os.PathLike))
    name = os.fspath(file) if is_path else getattr(file, 'name', '<in-memory file>')
    if is_path and not os.path.isfile(file):
        raise FileNotFoundError(f'checkpoint not found: {name}')
    if is_path and name.endswith('.safetensors'):  # data only by design; torch.load reads these files the same way
        return _load_safetensors(name, map_location)
    replaced: Set[str] = set()
    opened = open(file, 'rb') if is_path else file
    try:
        pickle_module = _restricted_pickle_module(replaced)
        # torch.load is not called: it would hand a TorchScript archive to torch.jit.load whatever pickle module
        # it is given. Its two readers are called directly, after the container was checked.
        try:
            is_zip = _refuse_unsafe_container(opened, name)
            if is_zip:
                reader = torch._C.PyTorchFileReader(opened)
                checkpoint = torch.serialization._load(reader, map_location, pickle_module, encoding='utf-8')
            else:
                checkpoint = torch.serialization._legacy_load(opened, map_location, pickle_module,
                                                              encoding='utf-8')
        except UnsafeCheckpointError:
            raise
        except Exception as err:
            raise RuntimeError(f'could not load checkpoint {name}: {type(err).__name__}: {err}') from err
    finally:
        if is_path:
            opened.close()
    if replaced:
        warnings.warn(f'{name}: these pickled objects were not imported and are kept as inert OpaqueObject '
                      f'stand-ins: {", ".join(sorted(replaced))}')
    return checkpoint


def unwrap_state_dict(checkpoint: Any, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: its ``state_dict`` or ``model`` entry, or the file itself."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{source}: expected a dict of weights, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint
