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
        mask_k_bias: DINOv3's masked qkv bias: a buffer ``qkv.bias_mask`` (3D,) multiplies the
            bias before the projection, as in the official code; its default zeros the key
            third. It is loaded from checkpoints like any weight, so a file with another mask
            is computed with that mask. No effect without ``qkv_bias``.
    """

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True,
                 proj_bias: bool = True, mask_k_bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.mask_k_bias = mask_k_bias and qkv_bias
        if self.mask_k_bias:
            # Held by the qkv Linear itself so that the key is the official attn.qkv.bias_mask.
            mask = torch.ones(3 * dim)
            mask[dim:2 * dim] = 0
            self.qkv.register_buffer('bias_mask', mask)

    def _project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, 3D): ``qkv(x)``, with the bias times ``bias_mask`` if masked."""
        if not self.mask_k_bias:
            return self.qkv(x)
        bias = self.qkv.bias * self.qkv.bias_mask.to(self.qkv.bias.dtype)
        # In the input's dtype: bf16 weights with fp32 input (precision.py's fp32 compute mode,
        # which upcasts the input of the whole attention) then compute in fp32, as qkv would.
        return F.linear(x, self.qkv.weight.to(x.dtype), bias.to(x.dtype))

    def _qkv(self, x: torch.Tensor, rope: Optional[Rope]):
        B, N, D = x.shape
        qkv = self._project_qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)
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
