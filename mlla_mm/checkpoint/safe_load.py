"""Loading checkpoints without running code from them.

``torch.load(weights_only=True)`` refuses any pickled object that is not plain data, and released checkpoints
carry such objects beside the weights: a training config of a class the user has not installed (yacs'
``CfgNode``), ``argparse.Namespace``, numpy scalars, mmengine's log buffers. Unrestricted unpickling would import
and call whatever the file names, so it is never used, not even as a fallback.

Instead the file is loaded by torch's own restricted unpickler (``weights_only=True``) with two additions:

- a short list of known plain-data classes (numpy arrays and scalars, mmengine's ``HistoryBuffer``) that are
  rebuilt for real, so that mmengine's resume restores its full state;
- every other class the pickle names is replaced by an inert :class:`OpaqueObject` that just records the
  arguments it was given. Nothing of the named module is imported or run.
"""
import io
import os
import warnings
from typing import Any, Dict, List, Tuple, Union

import numpy as np
import torch
from torch.serialization import get_unsafe_globals_in_checkpoint, safe_globals

FileLike = Union[str, os.PathLike, io.BytesIO]


class OpaqueObject(dict):
    """Stand-in for an object whose class mlla-mm will not import: holds what the pickle gave it, runs nothing.

    It is a ``dict`` so that dict subclasses (yacs' ``CfgNode``, mmengine's ``ConfigDict``) keep their items.
    """

    pickled_name = '<unknown>'

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f'OpaqueObject({self.pickled_name}, {dict.__repr__(self)})'


def _opaque_class(full_name: str) -> type:
    return type('OpaqueObject', (OpaqueObject,), {'pickled_name': full_name})


def _known_data_classes() -> List[Tuple[Any, str]]:
    """``(class or function, pickled name)`` of what holds data only and is rebuilt for real."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    known = [(np.dtype, 'numpy.dtype'), (np.ndarray, 'numpy.ndarray')]
    # Files written under numpy 1 name `numpy.core`, under numpy 2 `numpy._core`: accept both spellings.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        known += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    for name in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'float16', 'float32', 'float64'):
        dtype_class = type(np.dtype(name))
        known.append((dtype_class, f'{dtype_class.__module__}.{dtype_class.__qualname__}'))
    try:  # mmengine's message hub keeps its logged scalars in these
        from mmengine.logging import HistoryBuffer
        known.append((HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'))
    except ImportError:
        pass
    return known


def safe_torch_load(file: FileLike, map_location: Any = 'cpu') -> Any:
    """Load a ``torch.save`` file without executing code from it (see the module's docstring).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        RuntimeError: the file is not a checkpoint torch can read (the message names it).
    """
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else '<in-memory file>'
    if isinstance(file, (str, os.PathLike)) and not os.path.isfile(file):
        raise FileNotFoundError(f'checkpoint not found: {name}')
    allowed = _known_data_classes()
    known = {pickled_name for _, pickled_name in allowed}
    try:
        named = get_unsafe_globals_in_checkpoint(file)
    except Exception:  # legacy (pre-zip) format: torch's restricted unpickler reports unknown names itself
        named = []
    finally:
        if isinstance(file, io.IOBase):
            file.seek(0)
    stand_ins = [name_ for name_ in named if name_ not in known]
    if stand_ins:
        warnings.warn(f'{name}: these pickled classes were not imported and are kept as inert OpaqueObject '
                      f'stand-ins: {", ".join(sorted(stand_ins))}')
    allowed += [(_opaque_class(n), n) for n in stand_ins]
    try:
        with safe_globals(allowed):
            return torch.load(file, map_location=map_location, weights_only=True)
    except Exception as err:
        raise RuntimeError(f'could not load checkpoint {name}: {err}') from err


def unwrap_state_dict(checkpoint: Any, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: its ``state_dict`` or ``model`` entry, or the file itself."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{source}: expected a dict of weights, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint
