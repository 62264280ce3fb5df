"""``torch.compile`` for the fast path: how its functions are compiled, kept, and given up on when compiling fails.

Every compiled function takes the weights as inputs, so one compiled function serves every block and every model
in the process. They are compiled with dynamic sizes (detection's varying image sizes share compiled code), with
Dynamo's duck sizing off, and on CUDA replayed as CUDA graphs (launching the many small kernels one by one from
Python is what otherwise bounds the speed).

The fast path's only process-wide state lives here, in two containers: :data:`COMPILED` (the compiled functions)
and :data:`FAILED` (what failed to compile once and is not tried again). :func:`reset` empties both.
"""
import warnings
from functools import lru_cache
from typing import Callable, Dict, Hashable, Optional, Set

import torch

# Compiled functions by key: (cuda_graphs, dynamic_weights) for a block, ('stage', cuda_graphs) for a stage's
# blocks, ('backbone', cuda_graphs) for the whole backbone, 'convs' for the stem's and patch mergings' convolutions,
# 'region' for the block as a nested compile region.
COMPILED: Dict[Hashable, Callable] = {}
# What failed once, from the most to the least ambitious: 'dynamic-weights' (blocks in inference are then compiled
# once per stage width), 'graphs' (compiled kernels without CUDA graphs), 'compile' (everything eager); and, on
# their own, 'convs' (the stem and patch merging run eagerly), 'stages' (each block is compiled on its own) and
# 'backbone' (the backbone runs stage by stage).
FAILED: Set[str] = set()

# Dynamo's recompile limit for these functions: each is specialised per autocast dtype, grad mode, train/eval and
# module, more variants than Dynamo's default (8) allows before it falls back to eager.
RECOMPILE_LIMIT = 64


def reset() -> None:
    """Forget every compiled function and every failure, as in a new process (and reset Dynamo's caches)."""
    COMPILED.clear()
    FAILED.clear()
    torch._dynamo.reset()


def compiles_on(device: torch.device) -> bool:
    """Whether the fast path compiles for tensors on ``device``: CUDA only (elsewhere it runs eagerly)."""
    return device.type == 'cuda'


def compiles(x: torch.Tensor, cfg: dict) -> bool:
    """Whether the fast path compiles for ``x`` with the options ``cfg`` (``MLLA.fast_cfg``)."""
    return cfg['compile'] and compiles_on(x.device) and 'compile' not in FAILED


def step_down(error: Exception, step: str, where: str, from_now_on: str, strict: bool) -> None:
    """After ``torch.compile`` failed: re-raise what must not be hidden (out of memory, or any error if ``strict``);
    otherwise record ``step`` in :data:`FAILED`, so that it is not tried again in this process, and warn once."""
    if strict or isinstance(error, torch.OutOfMemoryError):
        raise error
    FAILED.add(step)
    warnings.warn(f'MLLA fast path: torch.compile failed{where} ({describe(error)}); from now on {from_now_on}')


def describe(error: Exception) -> str:
    """``error`` in a line for a warning: its type and the first line of its message."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ''
    return f'{type(error).__name__}: {message}'


def _announce(what: str) -> None:
    """Say once per compiled function why the next step takes long: a silent first step of minutes looks hung."""
    from mmengine.logging import print_log
    print_log(f'MLLA fast path: compiling {what} with torch.compile; on a cold Inductor cache '
              'this step takes minutes (TORCHINDUCTOR_CACHE_DIR keeps the cache; attn_impl="plain" skips '
              'compiling)', logger='current')


def compile_once(key: Hashable, what: str, fn: Callable, cuda_graphs: bool, dynamic_weights: bool,
                 inductor_options: Optional[dict] = None, **dynamo_settings) -> Callable:
    """``fn`` compiled with dynamic sizes, duck sizing off and CUDA graphs if asked, kept under ``key`` in
    :data:`COMPILED` and announced as compiling ``what``.

    ``dynamic_weights``: the weights' shapes dynamic too (Dynamo's default for parameters is static, which compiles
    once per stage width); ``inductor_options``: more options of ``torch.compile``; ``dynamo_settings``: more
    ``torch._dynamo.config`` settings, patched around each call (not changed for the process).
    """
    if key not in COMPILED:
        _announce(what)
        import torch._dynamo
        config = torch._dynamo.config
        limit = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'
        settings = {limit: max(getattr(config, limit), RECOMPILE_LIMIT),
                    'force_parameter_static_shapes': not dynamic_weights, **dynamo_settings}
        options = {'triton.cudagraphs': cuda_graphs, **(inductor_options or {})}
        compiled = torch.compile(fn, dynamic=True, options=options)
        COMPILED[key] = _without_duck_sizes(config.patch(**settings)(compiled))
    return COMPILED[key]


def _without_duck_sizes(compiled: Callable) -> Callable:
    """``compiled`` with Dynamo's duck sizing off: every size of an input gets a symbol of its own, even where two
    sizes are equal. Why: with it on, sizes equal in the first call (batch, rows and columns of a square input)
    share one symbol, the graph is guarded on their equality, and the next batch size or a non-square input
    compiles everything again."""
    from torch.fx.experimental import _config as shape_config
    if not hasattr(shape_config, 'use_duck_shape'):
        return compiled
    return shape_config.patch(use_duck_shape=False)(compiled)


def specialised_floats() -> dict:
    """The Dynamo setting that keeps Python floats (the LayerNorms' eps) constants: a nested compile region takes
    tensors and integers only, and under ``dynamic=True`` Dynamo would make floats symbolic. Empty on a torch
    without that setting."""
    import torch._dynamo
    return {'specialize_float': True} if hasattr(torch._dynamo.config, 'specialize_float') else {}


@lru_cache(maxsize=None)
def backbone_inductor_options() -> Dict[str, bool]:
    """Inductor options for the whole compiled backbone (looked up once: asked for on every forward).

    - Coalescing analysis of tilings off: the blocks' token count there is a product of the stem's output sizes,
      which torch 2.11's analysis fails an assertion on (pytorch/pytorch#181563, fixed by pytorch/pytorch#181793).
    - Exact strides for graph outputs that are views (``strict_output_strides``, where this torch has it): torch
      2.14 otherwise sorts strides such as ``4096 * rows * cols`` against ``64`` and fails in sympy ("cannot
      determine truth value of Relational"). Exact strides are what torch 2.11 always required.
    - Mix-order reductions without their size checks (``mix_order_reduction_non_strict_mode``, where this torch has
      it): the checks guard on the token count, so a batch of small images would compile a second backbone. They
      only choose between two correct kernels.
    """
    import torch._inductor.config as inductor_config
    options = {'triton.coalesce_tiling_analysis': False}
    if hasattr(inductor_config, 'strict_output_strides'):
        options['strict_output_strides'] = True
    if hasattr(inductor_config.triton, 'mix_order_reduction_non_strict_mode'):
        options['triton.mix_order_reduction_non_strict_mode'] = True
    return options


@lru_cache(maxsize=None)
def sizes_specialise_convolution_backward() -> bool:
    """Whether this torch's Inductor lowers convolution backward itself (torch 2.14 does; earlier ones call ATen's
    kernel). That lowering fixes the input gradient's strides to the first call's sizes, so a compiled training
    graph with the stem's and patch mergings' convolutions in it would compile again for every image size (minutes
    each on a GPU, and detection trains on many sizes). The whole backbone is then compiled for inference only, and
    training compiles stage by stage, whose graphs hold no convolution and serve every size."""
    from torch._inductor.kernel import conv
    return hasattr(conv, 'convolution_backward_lowering')


def block_region(fn: Callable) -> Optional[Callable]:
    """``fn`` (the block function) as a nested compile region: inside a compiled stage or backbone it is traced and
    compiled once and called once per block (the blocks differ only in their weights, its inputs). None where this
    torch has no ``torch.compiler.nested_compile_region`` (before 2.8)."""
    if 'region' not in COMPILED:
        region = getattr(torch.compiler, 'nested_compile_region', None)
        COMPILED['region'] = region(fn) if region is not None else None
    return COMPILED['region']


def own_tokens(x: torch.Tensor) -> torch.Tensor:
    """``x``, copied if it is a view. Why: the first block of a stage gets the stem's or the patch merging's output
    as a view of their image, the others a tensor of its own; Dynamo guards on the layout of a view's base, so the
    two kinds of input would be two compiled graphs per stage width. One copy per stage costs far less."""
    if torch.compiler.is_compiling():  # inside a compiled backbone the tokens are a graph value, not a call's input
        return x
    return x.clone() if x._base is not None else x


def out_of_graph_pool(out: torch.Tensor, graphs: bool) -> torch.Tensor:
    """``out`` of a compiled call, copied into ordinary memory where CUDA graphs may overwrite it. Why: with no
    backward pending (inference, or a frozen stage), CUDA graph trees start a new generation at every call and may
    reuse this output's memory for the next call, while that call still reads it (its residual)."""
    return out.clone() if graphs and not out.requires_grad else out
