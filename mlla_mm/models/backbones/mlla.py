"""The MLLA backbone for OpenMMLab dense prediction (mmdet, mmseg)."""
import copy
import numbers
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ...checkpoint import load_pretrained_backbone
from ...checkpoint.model_checkpoint import drop_official_rope_tables
from ...registry import register_model
from .. import fast
from ..layers import MLLAStage, Stem, trunc_normal_

ATTN_IMPLS = ('auto', 'plain', 'fast')


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_int(name: str, value) -> int:
    if not _is_int(value) or value <= 0:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return int(value)


def _positive_ints(name: str, values) -> List[int]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f'{name} must be a non-empty list with one positive integer per stage, got {values!r}')
    return [_positive_int(name, value) for value in values]


@register_model()
class MLLA(BaseModule):
    """MLLA: Mamba-Like Linear Attention backbone.

    A PyTorch implementation of `Demystify Mamba in Vision: A Linear Attention Perspective
    <https://arxiv.org/abs/2405.16605>`_ (Han et al., NeurIPS 2024) for dense prediction. Parameter and buffer
    names follow the official release (LeapLabTHU/MLLA), so its ImageNet checkpoints load through
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``.

    Args:
        arch (str | dict): ``'tiny'``/``'t'``, ``'small'``/``'s'``, ``'base'``/``'b'``, or a dict with
            ``embed_dims`` (int), ``depths`` and ``num_heads`` (one int per stage). Defaults to ``'tiny'``.
        in_channels (int): Image channels. Defaults to 3.
        patch_size (int): Stride of the stem: 4, its two stride-2 convolutions (as in the official model).
            Defaults to 4.
        mlp_ratio (float): MLP hidden size over the channels. Defaults to 4.
        qkv_bias (bool): Bias in the query/key projections. Defaults to True.
        drop_rate (float): Dropout in the MLPs. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly over the blocks to this value. Defaults to 0.1.
        out_indices (Sequence[int]): Stages whose (layer-normed) features are returned. Defaults to (0, 1, 2, 3).
        frozen_stages (int): ``-1`` trains everything; ``0`` freezes the stem; ``k > 0`` freezes the stem and
            stages ``0 .. k-1`` (with their patch merging and output norms). Defaults to -1.
        norm_eval (bool): Keep the BatchNorm layers (stem, patch merging) in eval mode during training, i.e.
            use and keep their running statistics. Defaults to False.
        with_cp (bool): Gradient checkpointing of every block: less memory, about a third more compute.
            Defaults to False.
        attn_impl (str): How the backbone computes, chosen once per forward: ``'plain'`` (module by module: the
            reference), ``'fast'`` (:mod:`mlla_mm.models.fast`: each block as one fused function, compiled by
            ``torch.compile`` on CUDA and replayed as CUDA graphs, eager elsewhere), or ``'auto'``: for CUDA
            inputs, uncompiled for the model's first images (``compile_training_after``,
            ``compile_inference_after``; counted per process, not saved), then the compiled fast path; plain for
            other inputs. Uncompiled is the fast path's functions with the Triton kernels, or the plain path
            without them (:meth:`_path`). The weights and
            state-dict keys are the same. The fast path has no dropout: training with ``drop_rate > 0`` runs plain.
            It compiles when it first meets a shape and dtype, minutes on a cold cache (Inductor keeps it in
            ``TORCHINDUCTOR_CACHE_DIR``). Defaults to ``'auto'``.
        fast_cfg (dict, optional): Options of the fast path, each optional (unknown keys raise a ValueError):

            - ``cuda_graphs`` (True): replay the compiled kernels as CUDA graphs, which removes the kernel-launch
              overhead that otherwise bounds a fast GPU. Off with ``with_cp``. Gradient accumulation over steps
              (no ``zero_grad`` in between) is supported.
            - ``triton_dwconv`` (True): the 3x3 depthwise convolutions (blocks and patch mergings) through this
              project's Triton kernels (:mod:`mlla_mm.models.fast.triton_dwconv`) on CUDA instead of cuDNN, which
              sets them up again for every new image size.
            - ``compile_convs`` (False): the convolutions of the stem and the patch merging compiled (their
              BatchNorms and activations fuse), where the backbone is not compiled whole.
            - ``compile_stages`` (``'all'``): each stage's blocks as one compiled call, the block a nested compile
              region: ``'all'`` in training and inference, ``'train'`` in training only, ``False`` one compiled
              call per block. Fewer calls leave the host less to do per step. Needs torch >= 2.8
              (``torch.compiler.nested_compile_region``); without it the blocks are compiled one by one.
            - ``compile_backbone`` (True): the whole backbone (stem, stages, patch merging, output norms) as one
              compiled call, for inputs whose sides are multiples of 32 (mmdet pads its batches to those, mmseg
              its training crops), without ``with_cp``; other inputs run stage by stage.
            - ``compile`` (True): False runs the fused functions eagerly, without ``torch.compile``.
            - ``compile_training_after`` (5000): with ``attn_impl='auto'``, training (with gradients) runs
              uncompiled for this many images, then on the compiled fast path, so that a short job never waits for
              the compile (docs/fast_path.md). 0 compiles at once, None never. ``'fast'`` compiles at once.
            - ``compile_inference_after`` (2000): the same for inference (no gradients).
            - ``uncompiled_graphs`` (0; 1 in the UperNet configs): uncompiled train steps at up to this many input
              shapes (batch size included), each met twice before, are captured and replayed as CUDA graphs (with
              ``cuda_graphs``; a graph keeps one step's activations), which takes the kernel launches off the host
              without compiling: for training at one size. 0: none.
            - ``uncompiled_inference_graphs`` (8): the same for uncompiled forwards without gradients of a model in
              eval mode (a test job's images at a few sizes); they share one memory pool and keep only their input
              and outputs. 0: none.
            - ``strict`` (False): a compiler failure raises instead of falling back to a slower path (tests).

            Defaults to None (all defaults).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads official or
            mmengine checkpoints (see :func:`mlla_mm.checkpoint.load_pretrained_backbone`); other
            initialisers of mmengine apply as usual. Defaults to None (the official initialisation).
    """

    arch_zoo: Dict[str, Dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=64, depths=[2, 4, 8, 4], num_heads=[2, 4, 8, 16])),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=64, depths=[3, 6, 21, 6], num_heads=[2, 4, 8, 16])),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=96, depths=[3, 6, 21, 6], num_heads=[3, 6, 12, 24])),
    }

    def __init__(self,
                 arch: Union[str, Dict] = 'tiny',
                 in_channels: int = 3,
                 patch_size: int = 4,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 attn_impl: str = 'auto',
                 fast_cfg: Optional[Dict] = None,
                 init_cfg: Union[Dict, List[Dict], None] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        embed_dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        num_heads = self.arch_settings['num_heads']
        self.num_stages = len(depths)
        self.num_features = [embed_dims * 2 ** i for i in range(self.num_stages)]
        for dims, heads in zip(self.num_features, num_heads):
            if dims % heads or dims % 4:
                raise ValueError(f'arch: stage channels must be divisible by their heads and by 4 (RoPE rotates '
                                 f'channel pairs by row and by column); got {dims} channels, {heads} heads')
        self.in_channels = _positive_int('in_channels', in_channels)
        if not _is_int(patch_size) or patch_size != 4:
            raise ValueError(f'patch_size must be 4 (the stem downsamples by 4 with two stride-2 convolutions, as in '
                             f'the official model), got {patch_size!r}')
        self.out_indices = self._parse_out_indices(out_indices)
        if not _is_int(frozen_stages) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be an integer in [-1, {self.num_stages}], got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        self.attn_impl = attn_impl
        self.fast_cfg = fast.check_fast_cfg(fast_cfg)
        # images run before compiling with attn_impl='auto', per kind of forward (see _path)
        self.uncompiled_images: Dict[str, int] = {}
        self.drop_rate = drop_rate
        self.with_cp = with_cp

        self.patch_embed = Stem(in_channels, embed_dims, patch_size)
        self.pos_drop = nn.Dropout(drop_rate)
        block_drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (dims, depth, heads) in enumerate(zip(self.num_features, depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(
                MLLAStage(dims, depth, heads, drop_path=block_drop_paths[first:first + depth],
                          downsample=i < self.num_stages - 1, with_cp=with_cp, mlp_ratio=mlp_ratio,
                          qkv_bias=qkv_bias, drop=drop_rate))
        for i in self.out_indices:  # one LayerNorm per returned feature map, named as in the official code
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

        self._freeze_stages()
        # whole-model files of the official release carry RoPE tables that this backbone recomputes
        self.register_load_state_dict_pre_hook(drop_official_rope_tables)

    # ------------------------------------------------------------------ configuration
    def _parse_arch(self, arch: Union[str, Dict]) -> Dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise KeyError(f'arch {arch!r} is not one of {sorted(set(self.arch_zoo))}; '
                               f'or pass a dict with embed_dims, depths, num_heads')
            return copy.deepcopy(self.arch_zoo[arch.lower()])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')
        required = {'embed_dims', 'depths', 'num_heads'}
        if set(arch) != required:
            raise KeyError(f'arch dict needs exactly the keys {sorted(required)}, got {sorted(arch)}')
        embed_dims = _positive_int('arch: embed_dims', arch['embed_dims'])
        depths, num_heads = (_positive_ints(f'arch: {key}', arch[key]) for key in ('depths', 'num_heads'))
        if len(depths) != len(num_heads):
            raise ValueError(f'arch: depths {depths} and num_heads {num_heads} must give one value per stage')
        return {'embed_dims': embed_dims, 'depths': depths, 'num_heads': num_heads}

    def _parse_out_indices(self, out_indices: Sequence[int]) -> Tuple[int, ...]:
        if _is_int(out_indices):
            out_indices = [out_indices]
        indices = []
        if not isinstance(out_indices, (list, tuple)):
            raise ValueError(f'out_indices must be an int or a sequence of ints, got {out_indices!r}')
        for i in out_indices:
            if not _is_int(i):
                raise ValueError(f'out_indices must hold integers, got {i!r} in {out_indices!r}')
            if not -self.num_stages <= i < self.num_stages:
                raise ValueError(f'out_indices: {i} is out of range for {self.num_stages} stages')
            indices.append(i % self.num_stages)
        return tuple(sorted(set(indices)))

    # ------------------------------------------------------------------ training state
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: List[nn.Module] = [self.patch_embed]
        for i in range(self.frozen_stages):
            modules.append(self.layers[i])
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
        return modules

    def _freeze_stages(self):
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Switch mode, keeping frozen stages (and with ``norm_eval`` all BatchNorms) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ weights
    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if 'checkpoint' not in cfg:
                raise KeyError("init_cfg of type 'Pretrained' needs a 'checkpoint' (a path or URL)")
            report = load_pretrained_backbone(self, cfg['checkpoint'])
            print_log(report, logger='current')
            self._is_init = True
            return
        self.apply(self._official_init)
        if cfg is None:
            self._is_init = True
        else:  # any other mmengine initialiser (e.g. Kaiming), applied over the official one
            super().init_weights()

    @staticmethod
    def _official_init(module: nn.Module):
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ forward
    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f'MLLA expects a tensor of shape (N, {self.in_channels}, H, W), '
                             f'got {type(x).__name__}')
        if x.dim() != 4 or x.shape[1] != self.in_channels or not x.is_floating_point():
            raise ValueError(f'MLLA expects a floating-point tensor of shape (N, {self.in_channels}, H, W), '
                             f'got {x.dtype} of shape {tuple(x.shape)}')
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f'MLLA got an empty input of shape {tuple(x.shape)}')
        # Outside autocast the convolutions need the weights' dtype; autocast casts float32 and half inputs, never
        # float64 ones.
        weight_dtype = self.patch_embed.conv1.conv.weight.dtype
        autocast = torch.is_autocast_enabled(x.device.type)
        if x.dtype != weight_dtype and (x.dtype == torch.float64 or not autocast):
            where = 'under autocast, which does not cast float64' if autocast else 'outside autocast'
            raise ValueError(f'MLLA got a {x.dtype} input for its {weight_dtype} weights {where}: convert the input '
                             f'(x.to({weight_dtype})) or the model (model.to({x.dtype})), or run it under '
                             f'torch.autocast')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(N, C, H, W)`` images -> one ``(N, C_i, H_i, W_i)`` map per index of ``out_indices`` (stride 4 * 2^i)."""
        self._check_input(x)
        path = self._path(x)
        if path == 'fast':
            return fast.forward_backbone(self, x, self.fast_cfg)
        if path == 'uncompiled':
            return fast.forward_backbone(self, x, {**self.fast_cfg, 'compile': False})
        if x.dtype in (torch.float16, torch.bfloat16) and not torch.is_autocast_enabled(x.device.type):
            # RoPE's tables are float32, as in the official model, and would meet half-precision values in a matmul
            raise ValueError(f'MLLA got a {x.dtype} model and input outside autocast, which its plain path does not '
                             f'run: keep the weights float32 and use torch.autocast, or attn_impl="fast"')
        x, hw_shape = self.patch_embed(x)
        x = self.pos_drop(x)
        outs = []
        for i, stage in enumerate(self.layers):
            x, hw_shape, out, out_shape = stage(x, hw_shape)
            if i in self.out_indices:
                outs.append(self.output_map(i, out, out_shape))
        return tuple(outs)

    def _path(self, x: torch.Tensor) -> str:
        """How the forward of ``x`` runs: ``'plain'``, ``'fast'``, or ``'uncompiled'`` (the fast path's functions
        without compiling them, with its Triton kernels).

        ``'auto'`` takes the fast path for CUDA inputs once ``fast_cfg['compile_training_after']`` images (with
        gradients) or ``fast_cfg['compile_inference_after']`` images (without) have run uncompiled, counted in
        :attr:`uncompiled_images` per kind of forward: training and inference, batches of one image apart (they
        compile graphs of their own). Until then it runs ``'uncompiled'`` where the Triton kernels run
        (``triton_dwconv``), plain elsewhere: the kernels serve every image size at once, where cuDNN sets its
        depthwise convolutions up (and, with ``cudnn.benchmark``, times them) again, for seconds, at every new size.
        The fast path has no dropout; half-precision weights outside autocast, which the plain path does not run,
        take it at once."""
        if self.training and self.drop_rate > 0:
            return 'plain'
        if self.attn_impl != 'auto':
            return self.attn_impl
        if not x.is_cuda:
            return 'plain'
        if torch.compiler.is_compiling() or (x.dtype in (torch.float16, torch.bfloat16)
                                             and not torch.is_autocast_enabled(x.device.type)):
            return 'fast'  # under the caller's torch.compile, a changing count would recompile at every step
        mode = 'training' if torch.is_grad_enabled() else 'inference'
        after = self.fast_cfg[f'compile_{mode}_after']
        kind = mode + (', batches of one' if x.shape[0] == 1 else '')
        seen = self.uncompiled_images.get(kind, 0)
        if after is not None and seen >= after:
            return 'fast'
        self.uncompiled_images[kind] = seen + x.shape[0]
        if after is not None and self.uncompiled_images[kind] >= after:
            print_log(f'MLLA: {self.uncompiled_images[kind]} images ({kind}) have run uncompiled '
                      f'(fast_cfg compile_{mode}_after={after}); the next ones take the compiled fast path',
                      logger='current')
        return 'uncompiled' if fast.has_triton_kernels(self.fast_cfg) else 'plain'

    def output_map(self, index: int, tokens: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        """Stage ``index``'s ``(N, H*W, C)`` output tokens, layer-normed, as a contiguous ``(N, C, H, W)`` map."""
        out = getattr(self, f'norm{index}')(tokens)
        return out.transpose(1, 2).reshape(out.shape[0], -1, *hw_shape).contiguous()
