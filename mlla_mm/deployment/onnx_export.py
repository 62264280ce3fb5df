"""Export a module to ONNX with standard operators, and check the file against PyTorch with ONNX Runtime.

The graph is captured by ``torch.export`` in strict mode (Dynamo), then translated by ``torch.onnx.export``'s
Dynamo-based exporter (torch's default; the TorchScript exporter is deprecated). Strict mode because MLLA's RoPE
tables and mmseg's resizes depend on the input size through Python code, which Dynamo traces into the graph:
the tables are then computed in the graph for whatever size comes. The non-strict capture stops at the tables'
cache, whose key cannot hold a symbolic size, and for a static size leaves its fake tensors in that cache.

With dynamic axes the batch is dynamic, and (``dynamic_sides``) height and width are dynamic multiples of 32,
MLLA's largest stride: inputs of such sides need no padding at any stage, while other sides take padding branches
that a graph cannot follow. An exported graph given other sides computes something else, without an error.
Dynamic sides are for the backbone and neck only: with a segmentor's UPerHead behind them, torch 2.14's exporter
stops in its type-promotion pass ("Unknown fx arg type" at the linear attention's ``n ** -0.5`` of a symbolic
token count), so a segmentor is exported with a dynamic batch at a fixed size.
"""
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

OPSET = 18
SIDE_MULTIPLE = 32
STANDARD_DOMAINS = ('', 'ai.onnx')


def _as_tuple(outputs) -> Tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def output_names(module: nn.Module, example: torch.Tensor) -> List[str]:
    """``output`` for one output, ``output0``, ``output1`` ... for several."""
    with torch.no_grad():
        count = len(_as_tuple(module(example)))
    return ['output'] if count == 1 else [f'output{i}' for i in range(count)]


def check_standard_operators(model) -> None:
    """Raise if an ``onnx.ModelProto`` uses an operator outside the standard ONNX domain (or local functions)."""
    custom = sorted({f'{node.domain}::{node.op_type}' for node in model.graph.node
                     if node.domain not in STANDARD_DOMAINS})
    custom += [f'function {f.domain}::{f.name}' for f in model.functions]
    if custom:
        raise RuntimeError(f'the exported graph uses operators outside the standard ONNX domain: {custom}')


def _name_dynamic_axes(model) -> None:
    """Give the graph's symbolic sizes readable names: ``batch``, and ``h``, ``w`` for the input's sides over 32
    (the input is ``(batch, 3, 32*h, 32*w)``, a stride-4 map ``(batch, C, 8*h, 8*w)``)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    names = {}
    for axis, name in ((0, 'batch'), (2, 'h'), (3, 'w')):
        symbols = re.findall(r'[A-Za-z_]\w*', dims[axis].dim_param)
        if len(symbols) == 1:
            names[symbols[0]] = name
    if not names:
        return
    pattern = re.compile(r'\b(' + '|'.join(map(re.escape, names)) + r')\b')
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)


def export_onnx(module: nn.Module, example: torch.Tensor, path: str, dynamic: bool = False,
                dynamic_sides: bool = True, opset: int = OPSET) -> List[str]:
    """Write ``module(example)`` as an ONNX graph at ``path`` (weights inside the file); return its output names.

    ``dynamic``: the batch is a dynamic axis, and with ``dynamic_sides`` height and width too (multiples of 32,
    see the module's docstring); ``example`` then needs a batch of 2 or more (a batch of 1 would be fixed by the
    capture), and with ``dynamic_sides`` sides that are multiples of 32."""
    import onnx
    names = output_names(module, example)
    dynamic_shapes = None
    if dynamic:
        batch, height, width = example.shape[0], example.shape[2], example.shape[3]
        if batch < 2 or dynamic_sides and (height % SIDE_MULTIPLE or width % SIDE_MULTIPLE):
            raise ValueError(f'a dynamic export needs an example of batch >= 2 and sides that are multiples of '
                             f'{SIDE_MULTIPLE}, got shape {tuple(example.shape)}')
        Dim = torch.export.Dim
        axes = {0: Dim('batch', min=1, max=1024)}
        if dynamic_sides:
            axes.update({2: SIDE_MULTIPLE * Dim('height_blocks', min=1, max=1024),
                         3: SIDE_MULTIPLE * Dim('width_blocks', min=1, max=1024)})
        dynamic_shapes = (axes,)
    # not under no_grad: torch 2.14 then fails to decompose a static program's lifted constants (the RoPE tables)
    program = torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes, strict=True)
    torch.onnx.export(program, (example,), path, dynamo=True, opset_version=opset, input_names=['input'],
                      output_names=names, external_data=False)
    model = onnx.load(path)
    check_standard_operators(model)
    if dynamic:
        _name_dynamic_axes(model)
        onnx.save(model, path)
    onnx.checker.check_model(path)
    return names


def relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |actual - expected| / max |expected|``: the largest error relative to the output's magnitude."""
    scale = float(np.abs(expected).max())
    return float(np.abs(actual - expected).max()) / (scale if scale > 0 else 1.0)


def compare_with_onnxruntime(path: str, reference: nn.Module, inputs: Sequence[torch.Tensor]
                             ) -> List[Dict[str, object]]:
    """Run the ONNX file with ONNX Runtime (CPU) and ``reference`` on each input; per input, the shape and the
    largest :func:`relative_difference` over the outputs."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    results = []
    for x in inputs:
        with torch.no_grad():
            expected = _as_tuple(reference(x))
        actual = session.run(None, {input_name: x.numpy()})
        if len(actual) != len(expected):
            raise RuntimeError(f'{path} gives {len(actual)} outputs, PyTorch {len(expected)}')
        for a, e in zip(actual, expected):
            if a.shape != tuple(e.shape):
                raise RuntimeError(f'{path}: output of shape {a.shape} for input {tuple(x.shape)}, PyTorch gives '
                                   f'{tuple(e.shape)}')
        diff = max(relative_difference(a, e.numpy()) for a, e in zip(actual, expected))
        results.append(dict(shape=tuple(x.shape), max_rel_diff=diff))
    return results
