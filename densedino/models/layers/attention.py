"""Multi-head self-attention through torch's scaled_dot_product_attention, with optional RoPE."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .pos_embed import rope_apply

Rope = Tuple[torch.Tensor, torch.Tensor]


class Attention(nn.Module):
    """Self-attention with a fused ``qkv`` projection and an output ``proj`` (official key names).

    Args:
        dim: Token width D.
        num_heads: Number of heads; D must divide evenly.
        qkv_bias: Bias on the qkv projection.
        proj_bias: Bias on the output projection.
    """

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True,
                 proj_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _qkv(self, x: torch.Tensor, rope: Optional[Rope]):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, hd)
        if rope is not None:
            q, k = _apply_rope(q, rope), _apply_rope(k, rope)
        return q, k, v

    def forward(self, x: torch.Tensor, rope: Optional[Rope] = None) -> torch.Tensor:
        """(B, N, D) -> (B, N, D). ``rope`` rotates the last ``len(sin)`` tokens (the patches)."""
        B, N, D = x.shape
        q, k, v = self._qkv(x, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))

    def attention_map(self, x: torch.Tensor, rope: Optional[Rope] = None,
                      n_queries: Optional[int] = None) -> torch.Tensor:
        """Softmax attention weights (B, heads, Q, N), computed explicitly (for visualisation).

        ``n_queries``: only the first Q query tokens (e.g. 1: the class token's row, O(N)
        memory); None: all N.
        """
        q, k, _ = self._qkv(x, rope)
        if n_queries is not None:
            q = q[..., :n_queries, :]
        scores = (q.float() @ k.float().transpose(-2, -1)) * self.head_dim ** -0.5
        return scores.softmax(dim=-1)


def _apply_rope(t: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate the patch tokens of ``t`` (B, heads, N, hd) in fp32; prefix tokens pass through."""
    sin, cos = rope
    n_prefix = t.shape[-2] - sin.shape[-2]
    rotated = rope_apply(t[..., n_prefix:, :].to(sin.dtype), sin, cos).to(t.dtype)
    return torch.cat([t[..., :n_prefix, :], rotated], dim=-2)
