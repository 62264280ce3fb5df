from .conv_layers import ConvLayer, PatchMerging, Stem
from .linear_attention import LinearAttention
from .mlla_block import MLLABlock, Mlp
from .rope import apply_rope, rope_tables
from .stage import MLLAStage

__all__ = ['ConvLayer', 'PatchMerging', 'Stem', 'LinearAttention', 'MLLABlock', 'Mlp', 'apply_rope',
           'rope_tables', 'MLLAStage']
