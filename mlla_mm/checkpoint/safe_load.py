"""Loading checkpoints without running code from them.

A checkpoint is a pickle, and unpickling can import and call anything the file names. ``torch.load`` with
``weights_only=True`` refuses every object that is not plain data, and released checkpoints carry such objects
beside their weights: a training config of a class the user has not installed (yacs' ``CfgNode``),
``argparse.Namespace``, numpy scalars, mmengine's log buffers. So mlla-mm unpickles with a restricted unpickler:

- names that torch's own ``weights_only`` loader trusts (tensors, storages, ``OrderedDict``, ...), those the user
  allowed with ``torch.serialization.add_safe_globals``, and a short list of plain-data classes (numpy arrays and
  scalars, mmengine's ``HistoryBuffer``) are rebuilt for real, so that mmengine's resume restores its full state;
- every other name becomes an inert :class:`OpaqueObject` that only records what the pickle gives it. The named
  module is never imported and nothing from it runs. Unrestricted unpickling is never used, not even as a fallback.
"""
import io
import os
import pickle
import types
import warnings
from typing import Any, Dict, Set, Union

import numpy as np
import torch
from torch import _weights_only_unpickler
from torch.serialization import get_safe_globals

FileLike = Union[str, os.PathLike, io.IOBase]


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


def _known_data_classes() -> Dict[str, Any]:
    """Pickled name -> class or function, for what holds data only and is rebuilt for real."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    known: Dict[str, Any] = {'numpy.dtype': np.dtype, 'numpy.ndarray': np.ndarray}
    # Files written under numpy 1 name `numpy.core`, under numpy 2 `numpy._core`: accept both spellings.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        known[f'{module}._reconstruct'] = multiarray._reconstruct
        known[f'{module}.scalar'] = multiarray.scalar
    for name in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'float16', 'float32', 'float64'):
        dtype_class = type(np.dtype(name))
        known[f'{dtype_class.__module__}.{dtype_class.__qualname__}'] = dtype_class
    try:  # mmengine's message hub keeps its logged scalars in these, with references to their statistics
        from mmengine.logging import HistoryBuffer
        name = 'mmengine.logging.history_buffer.HistoryBuffer'
        known[name] = HistoryBuffer
        for method in ('min', 'max', 'mean', 'current'):
            known[f'{name}.{method}'] = getattr(HistoryBuffer, method)
    except ImportError:
        pass
    return known


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


def _allowed_globals() -> Dict[str, Any]:
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    for entry in get_safe_globals():  # the user's torch.serialization.add_safe_globals
        obj, name = entry if isinstance(entry, tuple) else (entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    allowed.update(_known_data_classes())
    return allowed


def _restricted_pickle_module(replaced: Set[str]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module whose unpickler resolves names only as described above."""
    allowed = _allowed_globals()
    allowed['builtins.getattr'] = allowed['__builtin__.getattr'] = _restricted_getattr(allowed, replaced)

    class RestrictedUnpickler(pickle.Unpickler):

        def find_class(self, module, name):
            full_name = f'{module}.{name}'
            if full_name in allowed:
                return allowed[full_name]
            replaced.add(full_name)
            return _opaque_class(full_name)

    module = types.ModuleType('mlla_mm_restricted_pickle')
    module.Unpickler = RestrictedUnpickler
    module.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()
    module.__dict__.update(dumps=pickle.dumps, dump=pickle.dump, Pickler=pickle.Pickler)
    return module


def safe_torch_load(file: FileLike, map_location: Any = 'cpu') -> Any:
    """Load a ``torch.save`` file without executing code from it (see the module's docstring).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        RuntimeError: the file is not a checkpoint torch can read (the message names it).
    """
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else '<in-memory file>'
    if isinstance(file, (str, os.PathLike)) and not os.path.isfile(file):
        raise FileNotFoundError(f'checkpoint not found: {name}')
    replaced: Set[str] = set()
    try:
        # weights_only=False only hands unpickling to the restricted module above; torch's weights_only
        # loader itself cannot take the stand-ins (it allows dict items on exact dicts only).
        checkpoint = torch.load(file, map_location=map_location, weights_only=False,
                                pickle_module=_restricted_pickle_module(replaced))
    except Exception as err:
        raise RuntimeError(f'could not load checkpoint {name}: {type(err).__name__}: {err}') from err
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
