"""The pre-norm transformer block shared by every DINO ViT."""
from typing import Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention, Rope


def drop_path_rates(rate: float, depth: int, uniform: bool) -> list:
    """Per-block stochastic depth: ``rate`` everywhere (DINOv2, DINOv3), or rising linearly from 0
    in the first block to ``rate`` in the last (DINOv1)."""
    if uniform:
        return [rate] * depth
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


class LayerScale(nn.Module):
    """Per-channel residual scaling (key ``gamma``)."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class DropPath(nn.Module):
    """Stochastic depth per sample; identity in eval mode or with ``p == 0``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f'p={self.p}'


class Block(nn.Module):
    """x + ls1(attn(norm1(x))) then x + ls2(mlp(norm2(x))).

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp: The feed-forward module (key ``mlp``).
        norm_eps: LayerNorm epsilon (1e-6 DINOv1/v2, 1e-5 DINOv3).
        layerscale_init: LayerScale init value, or None for no LayerScale (DINOv1).
        qkv_bias: Bias on qkv.
        proj_bias: Bias on the attention output projection.
        mask_k_bias: Mask the qkv bias with a ``bias_mask`` buffer (DINOv3; see ``Attention``).
        drop_path: Stochastic depth rate.

    ``grad_checkpointing`` (attribute, default False; ``VisionTransformer.set_grad_checkpointing``
    sets it): when the block runs with autograd, keep only its input and recompute its
    activations in the backward (``torch.utils.checkpoint``, non-reentrant, random state
    preserved so stochastic depth draws the same masks): memory for one block's activations
    instead of every block's, for about one more forward of compute.
    """

    grad_checkpointing = False

    def __init__(self, dim: int, num_heads: int, *, mlp: nn.Module, norm_eps: float,
                 layerscale_init: Optional[float], qkv_bias: bool = True, proj_bias: bool = True,
                 mask_k_bias: bool = False, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias,
                              mask_k_bias=mask_k_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp
        scale = (lambda: LayerScale(dim, layerscale_init)) if layerscale_init else nn.Identity
        self.ls1, self.ls2 = scale(), scale()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, rope: Optional[Rope] = None) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled() and (
                x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return checkpoint(self._forward, x, rope, use_reentrant=False)
        return self._forward(x, rope)

    def _forward(self, x: torch.Tensor, rope: Optional[Rope] = None) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), rope)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def attention_map(self, x: torch.Tensor, rope: Optional[Rope] = None,
                      n_queries: Optional[int] = None) -> torch.Tensor:
        """This block's attention weights (B, heads, Q, N) on input tokens ``x`` (Q = N unless
        ``n_queries``: the first Q query rows)."""
        return self.attn.attention_map(self.norm1(x), rope, n_queries=n_queries)
