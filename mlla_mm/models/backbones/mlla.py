"""The MLLA backbone for OpenMMLab dense prediction (mmdet, mmseg)."""
import copy
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import trunc_normal_

from ...checkpoint import load_pretrained_backbone
from ...checkpoint.model_checkpoint import drop_official_rope_tables
from ...registry import register_model
from ..layers import MLLAStage, Stem
from ..layers.fast_block import backbone_compiles, check_attn_impl, run_backbone_fast, use_fast_path


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
        patch_size (int): Stride of the stem. Defaults to 4.
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
        attn_impl (str): How the blocks compute: ``'plain'`` (module by module: the reference, and the CPU
            path), ``'fast'`` (one fused function per block, compiled by ``torch.compile`` on CUDA; set
            ``MLLA_FAST_COMPILE=0`` to run it eagerly), or ``'auto'``: fast for CUDA inputs, plain otherwise. The
            weights and state-dict keys are the same for all three. Defaults to ``'auto'``. The fast path
            compiles when it first meets a shape and dtype: minutes for the first training step on a cold
            cache (Inductor keeps its cache in ``TORCHINDUCTOR_CACHE_DIR``; README, Speed); pass ``'plain'``
            to skip that for a short job. On the fast path the stem and patch merging also run channels-last,
            so their BatchNorms and convolutions need no layout conversions.
        cuda_graphs (bool): On the fast path, replay each block's compiled kernels as CUDA graphs (recorded once
            per input shape), which removes the kernel-launch overhead that otherwise dominates on a GPU. Not
            combined with ``with_cp``. Gradient accumulation over steps (no ``zero_grad`` in between, as
            mmengine's ``accumulative_counts`` does) is supported: see :meth:`forward`. Defaults to True.
        triton_dwconv (bool): On the fast path, run the blocks' 3x3 depthwise convolutions through this project's
            Triton kernels (:mod:`mlla_mm.models.layers.triton_dwconv`) instead of cuDNN: 2-3x less GPU time per
            convolution on an H100 (benchmarks/scripts/bench_dwconv.py). Off by default until a training step
            with it is measured faster (README, Speed). Defaults to False.
        compile_convs (bool): On the fast path, run the convolutions of the stem and the patch merging through
            ``torch.compile`` (their BatchNorms and activations fuse). Off by default, as ``triton_dwconv``.
            Defaults to False.
        compile_stages (bool | str): On the fast path, run each stage's blocks as one compiled call, the block a
            nested compile region (compiled once per width, and called once per block). ``'all'`` (the default):
            in training and in inference. ``True`` (or ``'train'``): in training only, where a step then replays 8
            CUDA graphs instead of one per block, forward and backward (36 for MLLA-T), and checks Dynamo's guards
            4 times instead of 18; inference keeps one compiled call per block, which compiles one graph for all
            widths up to 256 channels and one above, instead of one per stage width. ``False``: one compiled call
            per block. Why: on an H100 the fast path waits on the host (README, Speed). Needs torch >= 2.8
            (``torch.compiler.nested_compile_region``); without it, or should it fail to compile, the blocks are
            compiled one by one. Measured on an H100 (2026-11-27, same process each): MLLA-T's 2x800x1344 bf16
            backbone train step 37.8 ms against 48.5 ms one block per call, the Mask R-CNN fp16 train step 110.4 ms
            against 142.9 ms; batch-1 bf16 inference 7.6 ms against 9.2 ms at 800x1344, 5.5 ms against 9.4 ms at
            512x512 (README, Speed). Defaults to ``'all'``.
        compile_backbone (bool): On the fast path, run the whole backbone (stem, stages, patch merging, output
            norms) as one compiled call, replayed as one CUDA graph forward and one backward: for inputs whose sides
            are multiples of 32 (``patch_size * 2 ** (stages - 1)``; mmdet's configs pad every batch to such
            sizes, mmseg's their training crops), without ``with_cp``; other inputs (mmseg's whole-image test
            inputs, for one) run stage by stage (``compile_stages``), and so does everything should it fail to
            compile. Why: the eager stem and patch merging between the compiled stages left the train step
            waiting on the host. Measured on an H100 (2026-11-27, same process each, against
            ``compile_stages='all'`` alone): MLLA-T's 2x800x1344 bf16 backbone train step 37.4 ms against 40.7 ms,
            its inference 8.9 ms against 11.9 ms, 128x224x224 fp16 inference 5,955 against 4,592 images/s
            (README, Speed). Defaults to True.
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
                 cuda_graphs: bool = True,
                 triton_dwconv: bool = False,
                 compile_convs: bool = False,
                 compile_stages: Union[bool, str] = 'all',
                 compile_backbone: bool = True,
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
        self.in_channels = in_channels
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.attn_impl = check_attn_impl(attn_impl)
        self.cuda_graphs = cuda_graphs
        self.compile_convs = compile_convs
        self.compile_backbone = compile_backbone
        self.with_cp = with_cp

        self.patch_embed = Stem(in_channels, embed_dims, patch_size)
        self.pos_drop = nn.Dropout(drop_rate)
        block_drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (dims, depth, heads) in enumerate(zip(self.num_features, depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(
                MLLAStage(dims, depth, heads, drop_path=block_drop_paths[first:first + depth],
                          downsample=i < self.num_stages - 1, with_cp=with_cp, attn_impl=attn_impl,
                          cuda_graphs=cuda_graphs, triton_dwconv=triton_dwconv, compile_convs=compile_convs,
                          compile_stages=compile_stages,
                          mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                          residual_masks=drop_path_rate > 0))
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
        if len(arch['depths']) != len(arch['num_heads']):
            raise ValueError(f'arch: depths {list(arch["depths"])} and num_heads {list(arch["num_heads"])} '
                             f'must give one value per stage')
        return {'embed_dims': int(arch['embed_dims']), 'depths': list(arch['depths']),
                'num_heads': list(arch['num_heads'])}

    def _parse_out_indices(self, out_indices: Sequence[int]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        indices = []
        for i in out_indices:
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

    def _move_accumulated_grads_out_of_graphs(self):
        """Copy gradients still held from the last backward into memory of their own, before the graphs run.

        Why: with CUDA graphs, the blocks' parameter gradients are handed to ``param.grad`` in the graphs' memory
        pool, which the next replay reuses. A train step normally drops them first (``zero_grad``, as mmengine's
        optimizer wrapper does), and this costs nothing. Accumulating over steps keeps them, and the next backward
        would add to overwritten memory (torch stops with "accessing tensor output of CUDAGraphs that has been
        overwritten"); copied here, before any replay of this step, they stay valid.
        """
        for param in self.parameters():
            if param.grad is not None:
                param.grad = param.grad.clone()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(N, C, H, W)`` images -> one ``(N, C_i, H_i, W_i)`` map per index of ``out_indices`` (stride 4 * 2^i)."""
        self._check_input(x)
        fast = use_fast_path(self.attn_impl, x)
        if fast:
            if self.cuda_graphs and self.training and torch.is_grad_enabled():
                self._move_accumulated_grads_out_of_graphs()
            # Channels-last images: the stem's convolutions and BatchNorms then run without layout conversions,
            # and its output turns into (B, H*W, C) tokens as a view.
            x = x.contiguous(memory_format=torch.channels_last)
            if self._compiles_whole(x):
                outs = run_backbone_fast(self, x, self._largest_stride, cuda_graphs=self.cuda_graphs)
                if outs is not None:
                    return outs
        return self.forward_features(x, fast)

    def _compiles_whole(self, x: torch.Tensor) -> bool:
        """Whether ``compile_backbone`` applies to ``x``. Only for sides that need no padding at any stage: the pad
        sizes are a modulo of the image size, which torch.compile with dynamic shapes fails to lower (the stem pads
        outside its compiled part for that reason)."""
        stride = self._largest_stride
        return (self.compile_backbone and not self.with_cp and x.shape[-2] % stride == 0
                and x.shape[-1] % stride == 0 and backbone_compiles(x))

    @property
    def _largest_stride(self) -> int:
        """The last stage's stride (32 for MLLA): sides that are multiples of it need no padding at any stage."""
        return self.patch_embed.patch_size * 2 ** (self.num_stages - 1)

    def forward_features(self, x: torch.Tensor, fast: bool) -> Tuple[torch.Tensor, ...]:
        """The layers of :meth:`forward` on a checked input (``fast``: it takes the fast path); also what
        ``compile_backbone`` compiles as a whole."""
        x, hw_shape = self.patch_embed(x, compiled=fast and self.compile_convs)
        x = self.pos_drop(x)
        outs = []
        for i, stage in enumerate(self.layers):
            x, hw_shape, out, out_shape = stage(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(out.transpose(1, 2).reshape(out.shape[0], -1, *out_shape).contiguous())
        return tuple(outs)
