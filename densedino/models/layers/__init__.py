"""Building blocks shared by every DINO backbone."""
from .attention import Attention
from .block import Block, DropPath, LayerScale, drop_path_rates
from .ffn import Mlp, SwiGLU, SwiGLUPacked, swiglu_hidden_dim
from .patch_embed import PatchEmbed, center_pad
from .pos_embed import RopePositionEmbedding, resample_abs_pos_embed, rope_apply

__all__ = [
    'Attention', 'Block', 'DropPath', 'LayerScale', 'drop_path_rates', 'Mlp', 'SwiGLU',
    'SwiGLUPacked', 'swiglu_hidden_dim', 'PatchEmbed', 'center_pad', 'RopePositionEmbedding',
    'resample_abs_pos_embed', 'rope_apply',
]
