"""A fast path for the MLLA block: one functional forward, compiled by ``torch.compile`` on CUDA.

The plain modules (:class:`~.mlla_block.MLLABlock`, :class:`~.linear_attention.LinearAttention`) stay the readable
reference and the CPU path. This module computes the same block as one pure function of the block's tensors, written
so that TorchInductor can fuse it into few kernels:

- the whole block runs in the input (autocast) dtype; RoPE's float32 tables are formed once per compiled stage
  and read by each block (a block compiled on its own forms its angles in-graph; eagerly, cached tables in the
  compute dtype are used instead), and the rotated q/k are rounded back to the compute dtype, so half precision no
  longer promotes q/k to float32;
- ELU+1, RoPE, the ``n ** -0.5`` scalings, the k-mean normaliser, the LePE/CPE residual adds, the SiLU gate and the
  LayerNorms become a handful of fused elementwise/reduction kernels; the normaliser is formed in float32, so fp16
  cannot overflow in it;
- the graph is compiled with dynamic shapes, so detection's varying input sizes share compiled code (weights are
  inputs, not constants). For inference the weights' shapes are dynamic too, so the stage widths share one
  graph (two in all: up to :data:`BLOCK_DIAGONAL_MAX_WIDTH` channels and above, whose attention differs); two
  things that would specialise it on the width are avoided for that: the depthwise convolutions (whose
  ``groups`` is the width) run as an opaque operator (:mod:`.dwconv`), and the LayerNorms are written out.
  Training still compiles once per stage width (see :func:`_get_compiled`);
- on CUDA the compiled kernels are replayed as CUDA graphs (``triton.cudagraphs``, torch.compile's
  'reduce-overhead'), since launching them one by one from Python is what bounds the block's speed on a fast GPU.

Backward comes from autograd through the compiled graph (AOTAutograd), so it is fused as well.
"""
import os
import warnings
from functools import lru_cache
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .dwconv import dwconv3x3_tokens
from .rope import rope_angles, rope_tables

ATTN_IMPLS = ('auto', 'plain', 'fast')


def check_attn_impl(attn_impl: str) -> str:
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
    return attn_impl


def use_fast_path(attn_impl: str, x: torch.Tensor) -> bool:
    """``'auto'`` takes the fast path for CUDA tensors, the plain one elsewhere."""
    if attn_impl == 'auto':
        return x.is_cuda
    return attn_impl == 'fast'


# ---------------------------------------------------------------------------------------------------- RoPE
@lru_cache(maxsize=256)
def cached_rope_tables(height: int, width: int, channels: int, device: torch.device,
                       dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`.rope.rope_tables` cast to ``dtype``, cached per (H, W, C, device, dtype) (eager fast path)."""
    cos, sin = rope_tables(height, width, channels, device)
    return cos.to(dtype), sin.to(dtype)


def _rope_cos_sin(height, width, channels, device, dtype):
    if torch.compiler.is_compiling():
        # In-graph: Inductor folds the angles into the consuming kernel, so no table is read from memory.
        angles = rope_angles(height, width, channels, device)
        return angles.cos(), angles.sin()
    return cached_rope_tables(int(height), int(width), int(channels), device, dtype)


def _apply_rope_qk(qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate q and k of ``qk`` ``(B, N, 2 C)`` (q then k) with ``(N, C/2)`` tables; result in ``qk.dtype``."""
    b, n, c2 = qk.shape
    pairs = qk.view(b, n, 2, c2 // 4, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.view(n, 1, -1), sin.view(n, 1, -1)
    rotated = torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1)
    return rotated.view(b, n, c2).to(qk.dtype)


# ---------------------------------------------------------------------------------------------------- pieces
# Up to this width the heads' K'V products are formed as one block-diagonal C x C product (_attend_block_diagonal).
# MLLA-T's first three stages (64, 128, 256 channels); its last (512) puts the heads first (_attend_heads_first).
BLOCK_DIAGONAL_MAX_WIDTH = 256


def _attend_block_diagonal(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                           head_dims: int) -> torch.Tensor:
    """Linear attention of ``(B, N, C)`` queries, keys and values with heads of ``head_dims`` channels: each head's
    K'V is that head's diagonal block of the all-channel product ``(B, C, C)``, and the other blocks are dropped.

    Why: in the tokens' own layout, the scalings before the products fuse into the kernels that form q, k and v,
    and the matmuls read the transposed keys in place. Putting the heads first instead costs a transposing copy of
    q, k, v and the output per block, memory-bound passes over all tokens (3.65 of 27.2 ms of GPU time in a
    128x224 fp16 inference profiled on an H100, 2026-11-27). The price: C x C products, ``heads`` times the FLOPs
    of these two matmuls (then up to 13% of the block's), and a K'V of C x C values, which outgrows the tokens
    where they are fewer than the channels, as at the last stage of a 224x224 image (49 tokens, 512 channels):
    hence :data:`BLOCK_DIAGONAL_MAX_WIDTH`. ``where`` drops the other blocks; a product with a 0/1 mask would
    turn an inf there into NaN.
    """
    c = queries.shape[-1]
    kv = torch.matmul(keys.transpose(1, 2), values)  # (B, C, C)
    head_of_channel = torch.arange(c, device=kv.device) // head_dims
    kv = torch.where(head_of_channel[:, None] == head_of_channel[None, :], kv, kv.new_zeros(()))
    return torch.matmul(queries, kv)


def _attend_heads_first(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                        num_heads: int) -> torch.Tensor:
    """:func:`_attend_block_diagonal`'s result with the heads put first: ``(B * heads, N, d)`` products."""
    b, n, c = queries.shape
    head_dims = c // num_heads

    def heads_first(t):  # (B, N, C) -> (B * heads, N, d)
        return t.reshape(b, n, num_heads, head_dims).transpose(1, 2).reshape(b * num_heads, n, head_dims)

    kv = torch.matmul(heads_first(keys).transpose(-2, -1), heads_first(values))  # (B * heads, d, d)
    out = torch.matmul(heads_first(queries), kv)
    return out.view(b, num_heads, n, head_dims).transpose(1, 2).reshape(b, n, c)


def linear_attention_fast(x: torch.Tensor, height, width, num_heads: int, qk_weight: torch.Tensor,
                          qk_bias: Optional[torch.Tensor], lepe_weight: torch.Tensor, lepe_bias: torch.Tensor,
                          triton_dwconv: bool = False, rope_cos: Optional[torch.Tensor] = None,
                          rope_sin: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The computation of :class:`~.linear_attention.LinearAttention` on ``(B, N, C)`` tokens; ``rope_cos`` /
    ``rope_sin``: the RoPE tables for this size (from :func:`_rope_cos_sin`), or None to form them here."""
    b, n, c = x.shape
    head_dims = c // num_heads
    qk = F.elu(F.linear(x, qk_weight, qk_bias)) + 1.0
    dtype = qk.dtype  # the compute dtype (autocast's, or the input's)
    v = x.to(dtype)
    if rope_cos is None:
        rope_cos, rope_sin = _rope_cos_sin(height, width, c, x.device, dtype)
    qk_rope = _apply_rope_qk(qk, rope_cos, rope_sin)

    # Normaliser 1 / (phi(q_i) . mean_j phi(k_j)) per head, in float32 (no fp16 overflow, no cancellation).
    wide = torch.promote_types(dtype, torch.float32)
    q32 = qk[..., :c].to(wide).view(b, n, num_heads, head_dims)
    k_mean = qk[..., c:].to(wide).mean(dim=1).view(b, 1, num_heads, head_dims)
    normaliser = 1.0 / ((q32 * k_mean).sum(dim=-1, keepdim=True) + 1e-6)  # (B, N, heads, 1), float32

    # Both factors of K'V carry n ** -0.5 before the product, as in the official model. Why not one 1/n after it:
    # K'V sums over all n tokens, and with positive keys and values (a SiLU's output has a positive mean) an
    # unscaled fp16 product overflows (past 65504 at 128 x 128 tokens in tests/test_fast_path.py).
    scale = n ** -0.5
    keys, queries = qk_rope[..., c:] * scale, qk_rope[..., :c].view(b, n, num_heads, head_dims)
    # The normaliser is applied to the rotated queries *before* the product: (z_i q_i) . KV is of the order of v,
    # whereas q_i . KV alone can exceed fp16's range when q and k are large.
    queries, values = (queries * normaliser).to(dtype).view(b, n, c), v * scale
    if c <= BLOCK_DIAGONAL_MAX_WIDTH:
        out = _attend_block_diagonal(queries, keys, values, head_dims)
    else:
        out = _attend_heads_first(queries, keys, values, num_heads)
    return out + dwconv3x3_tokens(v, lepe_weight, lepe_bias, height, width, triton_dwconv)


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.layer_norm`` over the last dimension, written out (at least float32 inside, result in ``x.dtype``).

    Written out because ``torch.compile`` specialises ``F.layer_norm`` on the normalised width, which would
    compile the block once per stage width; these few reductions fuse just as well.
    """
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    centred = wide - wide.mean(dim=-1, keepdim=True)
    variance = centred.square().mean(dim=-1, keepdim=True)
    return (centred * torch.rsqrt(variance + eps) * weight + bias).to(x.dtype)


def _drop_path(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    return x if mask is None else x * mask.to(x.dtype)


def mlla_block_fast(x: torch.Tensor, height, width, num_heads: int,
                    cpe1_w, cpe1_b, norm1_w, norm1_b, norm1_eps: float,
                    act_w, act_b, in_w, in_b, dwc_w, dwc_b,
                    qk_w, qk_b, lepe_w, lepe_b, out_w, out_b,
                    cpe2_w, cpe2_b, norm2_w, norm2_b, norm2_eps: float,
                    fc1_w, fc1_b, fc2_w, fc2_b,
                    mask1: Optional[torch.Tensor] = None, mask2: Optional[torch.Tensor] = None,
                    triton_dwconv: bool = False, rope_cos: Optional[torch.Tensor] = None,
                    rope_sin: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The computation of :class:`~.mlla_block.MLLABlock` (no dropout) as one pure function.

    ``mask1`` / ``mask2``: per-sample ``(B, 1, 1)`` stochastic-depth factors of the two residual branches, or None.
    ``triton_dwconv``: the depthwise convolutions through this project's Triton kernels on CUDA (:mod:`.dwconv`).
    ``rope_cos`` / ``rope_sin``: RoPE tables for ``(height, width)`` (from :func:`_rope_cos_sin`), or None to form
    them inside.
    """
    x = x + dwconv3x3_tokens(x, cpe1_w, cpe1_b, height, width, triton_dwconv)
    shortcut = x
    y = _layer_norm(x, norm1_w, norm1_b, norm1_eps)
    gate = F.silu(F.linear(y, act_w, act_b))
    y = F.linear(y, in_w, in_b)
    y = F.silu(dwconv3x3_tokens(y, dwc_w, dwc_b, height, width, triton_dwconv))
    y = linear_attention_fast(y, height, width, num_heads, qk_w, qk_b, lepe_w, lepe_b, triton_dwconv,
                              rope_cos, rope_sin)
    y = F.linear(y * gate, out_w, out_b)
    x = shortcut + _drop_path(y, mask1)

    x = x + dwconv3x3_tokens(x, cpe2_w, cpe2_b, height, width, triton_dwconv)
    y = _layer_norm(x, norm2_w, norm2_b, norm2_eps)
    y = F.linear(F.gelu(F.linear(y, fc1_w, fc1_b)), fc2_w, fc2_b)
    return x + _drop_path(y, mask2)


# ---------------------------------------------------------------------------------------------------- compile
_compiled = {}
# What failed once in this process and is not tried again, from the most to the least ambitious: 'dynamic-weights'
# (inference compiles once per stage width instead), 'graphs' (compiled kernels without CUDA graphs), 'compile'
# (eager); and, on their own, 'convs' (the stem and patch merging run eagerly), 'stages' (each block is compiled
# on its own) and 'backbone' (the backbone runs stage by stage).
_failed = set()
# What the announcement names for the graphs compiled once per stage width (per-block training, compiled stages)
_PER_WIDTH = 'the blocks for training or compiled stages (one graph per stage width)'


def _compile_enabled() -> bool:
    return os.environ.get('MLLA_FAST_COMPILE', '1') != '0' and 'compile' not in _failed


def _compiles(x: torch.Tensor) -> bool:
    """Whether the fast path compiles for ``x``: on CUDA only (CPU tests switch this to check the compiled calls)."""
    return x.is_cuda and _compile_enabled()


def _announce_compile(what: str) -> None:
    """Say once per compiled variant why the next step takes long: a silent multi-minute first step looks hung."""
    from mmengine.logging import print_log
    print_log(f'MLLA fast path: compiling {what} with torch.compile; on a cold Inductor cache '
              'the first step takes minutes (TORCHINDUCTOR_CACHE_DIR keeps the cache; attn_impl="plain" skips '
              'compiling)', logger='current')


def _step_down(error: Exception, step: str, where: str, from_now_on: str) -> None:
    """After ``torch.compile`` failed: re-raise what must not be hidden (out of memory, or ``MLLA_FAST_STRICT=1``);
    otherwise record ``step`` in :data:`_failed`, so it is not tried again in this process, and warn once."""
    if isinstance(error, torch.OutOfMemoryError) or os.environ.get('MLLA_FAST_STRICT') == '1':
        raise error
    _failed.add(step)
    message = str(error).strip().splitlines()[0] if str(error).strip() else ''
    warnings.warn(f'MLLA fast path: torch.compile failed{where} ({type(error).__name__}: {message}); '
                  f'from now on {from_now_on}')


def _allow_recompiles():
    """One compiled function serves every block (and one every stem / patch merging); it is specialised per
    autocast dtype, grad mode, train/eval and module, so allow more variants than Dynamo's default (8) before it
    falls back to eager."""
    import torch._dynamo
    config = torch._dynamo.config
    for name in ('recompile_limit', 'cache_size_limit'):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 64))
    return config


def _get_compiled(cuda_graphs: bool, dynamic_weights: bool = True):
    """The compiled block function.

    ``cuda_graphs``: Inductor replays the kernels as CUDA graphs. Why: measured on an H100, the compiled block's
    kernels take 37 ms of GPU time in a 2x800x1344 train step, yet the step took 122 ms; launching ~3,200 small
    kernels from Python is the bottleneck, not the GPU. CUDA graph trees record each block call once per input
    shape (in one memory pool) and replay it with one launch.

    ``dynamic_weights``: the weights are inputs of the compiled function; with their shapes static (Dynamo's
    default for parameters) every stage width is compiled anew (four times for MLLA-T, about a minute each on an
    H100 host). Dynamic, one graph serves all widths up to :data:`BLOCK_DIAGONAL_MAX_WIDTH` and one the wider
    ones (their attention puts the heads first). That is used for inference only: with a backward, torch 2.11's
    Inductor fails an assertion in its tiling analysis on such graphs (measured on an H100), so training compiles
    once per stage width.
    """
    what = ('the blocks for inference (one graph for all widths, or two if wider than '
            f'{BLOCK_DIAGONAL_MAX_WIDTH} channels)' if dynamic_weights else _PER_WIDTH)
    return _compile_once((cuda_graphs, dynamic_weights), what, mlla_block_fast, cuda_graphs, dynamic_weights)


def _compile_once(key, what: str, fn, cuda_graphs: bool, dynamic_weights: bool,
                  inductor_options: Optional[dict] = None, **dynamo_settings):
    """``fn`` compiled with dynamic sizes, duck sizing off (and CUDA graphs if asked), kept under ``key`` in
    :data:`_compiled`, and announced as compiling ``what``; the weights' shapes static unless ``dynamic_weights``
    (see :func:`_get_compiled`); ``inductor_options``: more options of ``torch.compile``; ``dynamo_settings``: more
    ``torch._dynamo.config`` patched around each call."""
    if key not in _compiled:
        _announce_compile(what)
        config = _allow_recompiles()
        options = {'triton.cudagraphs': cuda_graphs, **(inductor_options or {})}
        compiled = torch.compile(fn, dynamic=True, options=options)
        compiled = config.patch(force_parameter_static_shapes=not dynamic_weights, **dynamo_settings)(compiled)
        _compiled[key] = _without_duck_sizes(compiled)
    return _compiled[key]


def _without_duck_sizes(compiled):
    """``compiled`` with Dynamo's duck sizing off: every size of an input gets a symbol of its own, even where two
    sizes are equal.

    Why: with it on, sizes that happen to be equal in the first call share one symbol, and the graph is guarded on
    their equality. The GPU demo's first train step (8 images of 256 x 256, so 8 x 8 tiles of 32 for the whole
    backbone) compiled a graph for batch == rows == columns; its two-GPU run (4 images a GPU) then compiled the
    whole backbone anew, minutes on the H100 host (benchmarks/h100_2026-11-28_training/). A square crop (rows ==
    columns) would likewise cost a compile of its own after a first non-square batch, or the other way round.
    """
    from torch.fx.experimental import _config as shape_config
    if not hasattr(shape_config, 'use_duck_shape'):
        return compiled
    return shape_config.patch(use_duck_shape=False)(compiled)


def _own_tokens(x: torch.Tensor) -> torch.Tensor:
    """``x``, copied if it is a view. Why: the first block of a stage gets the stem's or the patch merging's output
    as a view of their image, the others a tensor of its own. Dynamo guards on the layout of a view's base, so the
    two kinds of input would be two compiled graphs per stage width (tests/test_fast_path.py counts them); one copy
    of the tokens per stage costs far less than compiling again."""
    if torch.compiler.is_compiling():  # inside a compiled backbone the tokens are a graph value, not a call's input
        return x
    return x.clone() if x._base is not None else x


def _out_of_graph_pool(out: torch.Tensor, graphs: bool) -> torch.Tensor:
    """``out`` of a compiled call, copied into ordinary memory where CUDA graphs may overwrite it. Why: with no
    backward pending (inference, or a frozen stage), CUDA graph trees start a new generation at every call and may
    reuse this output's memory for the next call, while that call still reads it (its residual). A copy costs one
    pass over the tokens."""
    return out.clone() if graphs and not out.requires_grad else out


# ---------------------------------------------------------------------------------------------------- stages
def _block_region():
    """:func:`mlla_block_fast` as a nested compile region: inside a compiled stage it is traced and compiled once
    and called once per block (the blocks differ only in their weights, which are its inputs). None where this
    torch has no ``torch.compiler.nested_compile_region`` (before 2.8)."""
    if 'region' not in _compiled:
        region = getattr(torch.compiler, 'nested_compile_region', None)
        _compiled['region'] = region(mlla_block_fast) if region is not None else None
    return _compiled['region']


def _stage_blocks(x: torch.Tensor, height: int, width: int, num_heads: int, block_args: Sequence[tuple],
                  masks: Sequence[tuple], triton_dwconv: bool) -> torch.Tensor:
    """A stage's blocks, one after the other: ``block_args`` holds each block's tensors, ``masks`` its
    ``(mask1, mask2)``; the RoPE tables are formed once for all of them.

    Why once, outside the block: formed inside it, Inductor fuses the angles into the kernel that rotates q and k,
    and so computes a ``pow``, a ``cos`` and a ``sin`` for every element of every image. Profiled on an H100
    (2026-11-27), that kernel was the largest of Inductor's in a 128x3x224x224 fp16 inference (2.56 of 27.2 ms). As
    inputs of the blocks' nested compile region, the tables are computed once per stage call and read, as the
    official model reads its.
    """
    block = _block_region()
    rope_cos, rope_sin = _rope_cos_sin(height, width, x.shape[-1], x.device, x.dtype)
    for args, (mask1, mask2) in zip(block_args, masks):
        x = block(x, height, width, num_heads, *args, mask1, mask2, triton_dwconv, rope_cos, rope_sin)
    return x


def _get_compiled_stage(cuda_graphs: bool):
    """The compiled :func:`_stage_blocks`, with the training settings of :func:`_get_compiled` (weights' shapes
    static: one graph per stage width).

    Floats (the LayerNorms' eps) are specialised (:func:`_specialised_floats`).
    """
    return _compile_once(('stage', cuda_graphs), _PER_WIDTH, _stage_blocks, cuda_graphs, False,
                         **_specialised_floats())


def _specialised_floats() -> dict:
    """The Dynamo setting that keeps Python floats (the LayerNorms' eps) constants: a nested region takes tensors
    and integers only, and Dynamo would otherwise make them symbolic under ``dynamic=True``. Empty on a torch
    without that setting."""
    import torch._dynamo
    return {'specialize_float': True} if hasattr(torch._dynamo.config, 'specialize_float') else {}


def stage_compiles(x: torch.Tensor, in_inference: bool = False) -> bool:
    """Whether :func:`run_stage_fast` is to be called for ``x``: it compiles as the blocks do, with gradients
    (training), or without them too if ``in_inference``, if this torch has nested compile regions and compiling a
    stage has not failed in this process.

    Without gradients only if asked: there the blocks' own path compiles one graph for all widths up to
    :data:`BLOCK_DIAGONAL_MAX_WIDTH` and one above (dynamic weights' shapes), which a nested region does not take
    (torch 2.14 on the CPU: Dynamo fails on the weights' symbolic sizes), so a compiled stage costs one inference
    graph per width instead.
    """
    return (_compiles(x) and (torch.is_grad_enabled() or in_inference) and 'stages' not in _failed
            and _block_region() is not None)


def run_stage_fast(x: torch.Tensor, height: int, width: int, num_heads: int, block_args: Sequence[tuple],
                   masks: Sequence[tuple], cuda_graphs: bool = False,
                   triton_dwconv: bool = False) -> Optional[torch.Tensor]:
    """A stage's blocks as one compiled call (``MLLA(compile_stages=...)``), or None should compiling fail: the
    stage then runs each block through :func:`run_block_fast`. For callers that have checked
    :func:`stage_compiles` (the stage does, before it draws the masks).

    Why: per-block calls leave a fast-path train step bound by the host. Profiled on an H100 (2026-11-27), MLLA-T's
    2x800x1344 bf16 step had about 27 ms of kernels but took 48 ms: 36 CUDA-graph launches (18 blocks, forward and
    backward) of about 180 us each, the autograd and CUDA-graph bookkeeping of every compiled call, and Dynamo's
    guard checks at each of the 18 calls. One call per stage makes that 8 launches and 4 guard checks, and the
    block, a nested compile region, is still compiled once per width.
    """
    if torch.compiler.is_compiling():  # traced into a compiled backbone (run_backbone_fast): no call of its own
        return _stage_blocks(x, height, width, num_heads, block_args, masks, triton_dwconv)
    graphs = cuda_graphs and 'graphs' not in _failed
    try:
        out = _get_compiled_stage(graphs)(_own_tokens(x), height, width, num_heads, block_args, masks, triton_dwconv)
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        _step_down(error, 'stages', ' on a whole stage', 'each block is compiled on its own')
        return None
    return _out_of_graph_pool(out, graphs)


# ---------------------------------------------------------------------------------------------------- backbone
def _backbone_features(backbone: torch.nn.Module, tiles: torch.Tensor):
    """``backbone.forward_features`` of the images that :func:`_as_tiles` cut."""
    batch, channels, rows, tile_h, cols, tile_w = tiles.shape
    return backbone.forward_features(tiles.reshape(batch, channels, rows * tile_h, cols * tile_w), fast=True)


def _as_tiles(x: torch.Tensor, tile: int) -> torch.Tensor:
    """``(B, C, H, W)`` images whose sides are multiples of ``tile`` as ``(B, C, H / tile, tile, W / tile, tile)``,
    in memory of their own, with the channels and the two ``tile`` sizes marked static for Dynamo.

    Why: compiled with dynamic sizes, the graph's symbols are then the numbers of tiles, and every size in the
    backbone is a product of them (the stem's ``(H - 1) // 2 + 1`` becomes ``16 * rows``), where from ``H`` itself
    each stage nests another floor division, carried through every index of every kernel. Measured on an H100
    (2026-11-27, ``benchmarks/h100_2026-11-27_compile/``, three processes compiling at once), MLLA-T's training
    graphs took 480 s to compile with sizes of ``H`` and ``W``, 44% of it in sympy, and 141 s with static sizes.
    A copy of the images costs far less (a view of ``x`` would be guarded on its base's layout, see
    :func:`_own_tokens`).
    """
    batch, channels, height, width = x.shape
    tiles = x.view(batch, channels, height // tile, tile, width // tile, tile).clone()
    for dim in (1, 3, 5):
        torch._dynamo.mark_static(tiles, dim)
    return tiles


def _get_compiled_backbone(cuda_graphs: bool):
    """The compiled :func:`_backbone_features`, with the settings of :func:`_get_compiled_stage`: the weights'
    shapes static, floats specialised; sizes dynamic. Dynamo traces the modules (stem, patch merging, output norms)
    and treats their parameters and buffers as static inputs, so CUDA graph trees take the BatchNorms' in-place
    updates of their running statistics, and the blocks stay one nested compile region per stage width.

    Inductor's coalescing analysis of tilings is off for this graph. Why: here the blocks' token count is the
    product of the stem's output sizes, ``((H - 1) // 4 + 1) * ((W - 1) // 4 + 1)``, which torch 2.11's analysis
    compares with its expanded form and fails an assertion on (``tiling_utils.get_pw_red_splits``, measured on an
    H100 on 2026-11-27; pytorch/pytorch#181563, fixed in later releases by pytorch/pytorch#181793). The compiled
    stages, whose sizes are plain symbols, keep the analysis.

    Graph outputs that are views keep their exact strides (``strict_output_strides``, where this torch has it).
    Why: torch 2.14's Inductor otherwise requires only their stride order, and sorting strides such as
    ``4096 * rows * cols`` against ``64`` fails in sympy ("cannot determine truth value of Relational"); the forward
    graph's outputs include views of that kind, the channels-last inputs that the stem's and the patch merging's
    convolutions save for their backward (CPU, 2026-11-28, ``benchmarks/cpu_2026-11-28_torch214/``). Exact strides
    are what torch 2.11 always required.
    """
    return _compile_once(('backbone', cuda_graphs), 'the whole backbone (one block graph per stage width)',
                         _backbone_features, cuda_graphs, False, inductor_options=_backbone_inductor_options(),
                         **_specialised_floats())


@lru_cache(maxsize=None)
def _backbone_inductor_options() -> Dict[str, bool]:
    """The Inductor options of :func:`_get_compiled_backbone`, looked up once: it is called on every forward."""
    import torch._inductor.config as inductor_config
    options = {'triton.coalesce_tiling_analysis': False}
    if hasattr(inductor_config, 'strict_output_strides'):
        options['strict_output_strides'] = True
    return options


def backbone_compiles(x: torch.Tensor) -> bool:
    """Whether :func:`run_backbone_fast` is to be tried for ``x``: as :func:`stage_compiles` (nested compile regions
    needed), and compiling the backbone has not failed in this process."""
    return _compiles(x) and 'backbone' not in _failed and _block_region() is not None


def run_backbone_fast(backbone: torch.nn.Module, x: torch.Tensor, tile: int,
                      cuda_graphs: bool = False) -> Optional[Tuple[torch.Tensor, ...]]:
    """``backbone.forward_features(x, fast=True)`` as one compiled call (``MLLA(compile_backbone=True)``), or None
    should compiling fail: the backbone then runs stage by stage from now on.

    Why: with compiled stages a train step still runs the stem, the three patch mergings and the output norms
    eagerly (about 90 ATen operations in MLLA-T's forward, counted on the CPU, and their backward), between 8
    CUDA-graph replays, and the step waits on the host (README, Speed). Compiled whole, a step is one replay forward
    and one backward, and the BatchNorms fuse with their convolutions' neighbours.
    """
    graphs = cuda_graphs and 'graphs' not in _failed
    try:
        outs = _get_compiled_backbone(graphs)(backbone, _as_tiles(x, tile))
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        _step_down(error, 'backbone', ' on the whole backbone', 'the backbone runs stage by stage')
        return None
    return tuple(_out_of_graph_pool(out, graphs) for out in outs)


# ---------------------------------------------------------------------------------------------------- conv parts
def _call(fn, *args):
    return fn(*args)


def run_compiled(fn, *args):
    """``fn(*args)`` compiled on CUDA: the convolutions of the stem and of the patch merging, with ``MLLA``'s
    ``compile_convs``.

    Why: their BatchNorms, ReLUs and the stem's residual run in eager mode as separate memory-bound kernels over
    the largest tensors of the network (the stem works at strides 2 and 4); measured on an H100, eager BatchNorm
    took 6.2 ms of a 2x800x1344 bf16 train step's 36.6 ms of GPU time (before CUDA graphs). Compiled, Inductor
    fuses each BatchNorm's statistics, normalisation and activation (and their backward) into few kernels; the
    convolutions stay cuDNN's. Without CUDA graphs: these are a few dozen kernels per step, and their BatchNorm
    buffers change in place. Compiled as the blocks are (:func:`_compile_once`: dynamic sizes, duck sizing off). A
    compiler failure warns once and runs them eagerly from then on.
    """
    if not (_compiles(args[0]) and 'convs' not in _failed) or torch.compiler.is_compiling():
        return fn(*args)  # eager, or traced into a compiled backbone (run_backbone_fast)
    compiled = _compile_once('convs', 'the convolutions of the stem and the patch merging', _call, False, False)
    try:
        return compiled(fn, *args)
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        _step_down(error, 'convs', ' on the stem or patch merging', 'they run eagerly')
        return fn(*args)


def run_block_fast(x: torch.Tensor, height: int, width: int, *args, cuda_graphs: bool = False,
                   **kwargs) -> torch.Tensor:
    """:func:`mlla_block_fast`, compiled on CUDA (unless ``MLLA_FAST_COMPILE=0``), eager elsewhere.

    ``cuda_graphs``: replay the compiled kernels as CUDA graphs (see :func:`_get_compiled`). Should compiling
    fail, the fast path warns and steps down once per failure: weights' shapes static (one graph per width), then
    no CUDA graphs, then eager. ``MLLA_FAST_STRICT=1`` raises instead (the GPU tests set it).
    """
    if not _compiles(x):
        return mlla_block_fast(x, height, width, *args, **kwargs)
    graphs = cuda_graphs and 'graphs' not in _failed
    dynamic_weights = not torch.is_grad_enabled() and 'dynamic-weights' not in _failed
    x = _own_tokens(x)
    try:
        out = _get_compiled(graphs, dynamic_weights)(x, height, width, *args, **kwargs)
    except Exception as error:  # noqa: BLE001 - a compiler failure must not stop training
        step = 'dynamic-weights' if dynamic_weights else ('graphs' if graphs else 'compile')
        _step_down(error, step, '', {'dynamic-weights': 'compiling once per stage width',
                                     'graphs': 'without CUDA graphs', 'compile': 'running eagerly'}[step])
        return run_block_fast(x, height, width, *args, cuda_graphs=cuda_graphs, **kwargs)
    return _out_of_graph_pool(out, graphs)
