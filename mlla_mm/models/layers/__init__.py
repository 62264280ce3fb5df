from .conv_layers import ConvLayer, PatchMerging, Stem
from .drop_path import DropPath
from .linear_attention import LinearAttention
from .mlla_block import MLLABlock, Mlp
from .rope import apply_rope, rope_tables
from .stage import MLLAStage
from .weight_init import trunc_normal_

__all__ = ['ConvLayer', 'PatchMerging', 'Stem', 'DropPath', 'LinearAttention', 'MLLABlock', 'Mlp', 'apply_rope',
           'rope_tables', 'MLLAStage', 'trunc_normal_']
