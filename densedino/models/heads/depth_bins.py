"""Depth as the expectation over fixed depth bins (AdaBins-style classification-regression).

DINOv2's and DINOv3's depth heads predict one logit per bin, turn the logits into weights that
sum to one, and output ``depth = sum_k p_k b_k``.
"""
import math

import torch
from torch import Tensor

BINS_STRATEGIES = ('UD', 'SID')
NORM_STRATEGIES = ('linear', 'softmax', 'sigmoid')
# AdaBins' floor on the ReLU'd logits of the 'linear' normalisation (kept by DINOv2 and DINOv3).
LINEAR_NORM_EPS = 0.1


def depth_bins(min_depth: float, max_depth: float, n_bins: int, strategy: str = 'UD') -> Tensor:
    """(n_bins,) float32 bin centres from ``min_depth`` to ``max_depth``, both included.

    Args:
        min_depth: First bin (> 0 for 'SID').
        max_depth: Last bin.
        n_bins: Number of bins (>= 2).
        strategy: 'UD' (uniform: ``linspace(min, max)``, as DINOv2 computes it in float32) or
            'SID' (log-spaced: ``exp(linspace(ln min, ln max))``, computed in float64). The
            DINOv2 toolbox's 'SID' is ``torch.logspace(min, max)``, i.e. 10**min .. 10**max
            (1.002 .. 1e10 m for 0.001-10), a bug that is not reproduced.

    Raises:
        ValueError: unknown strategy, fewer than 2 bins, or an invalid range.
    """
    if strategy not in BINS_STRATEGIES:
        raise ValueError(f'bins_strategy must be one of {BINS_STRATEGIES}, got {strategy!r}')
    if n_bins < 2:
        raise ValueError(f'n_bins must be >= 2, got {n_bins}')
    if not 0 <= min_depth < max_depth:
        raise ValueError(f'need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}')
    if strategy == 'UD':
        return torch.linspace(min_depth, max_depth, n_bins)
    if min_depth <= 0:
        raise ValueError(f"bins_strategy='SID' needs min_depth > 0, got {min_depth}")
    logs = torch.linspace(math.log(min_depth), math.log(max_depth), n_bins, dtype=torch.float64)
    return logs.exp().float()


def bin_weights(logits: Tensor, norm_strategy: str = 'linear') -> Tensor:
    """(B, K, H, W) logits -> weights over the K bins that sum to one.

    'linear': ``relu(l) + 0.1`` divided by its sum (AdaBins); 'softmax'; 'sigmoid': ``sigmoid(l)``
    divided by its sum.
    """
    if norm_strategy == 'linear':
        w = torch.relu(logits) + LINEAR_NORM_EPS
    elif norm_strategy == 'sigmoid':
        w = torch.sigmoid(logits)
    elif norm_strategy == 'softmax':
        return torch.softmax(logits, dim=1)
    else:
        raise ValueError(f'norm_strategy must be one of {NORM_STRATEGIES}, got {norm_strategy!r}')
    return w / w.sum(dim=1, keepdim=True)


def bins_to_depth(logits: Tensor, bins: Tensor, norm_strategy: str = 'linear') -> Tensor:
    """(B, K, H, W) logits and (K,) bins -> (B, 1, H, W) depth ``sum_k p_k b_k``."""
    weights = bin_weights(logits, norm_strategy)
    return torch.einsum('bkhw,k->bhw', weights, bins.to(weights.dtype)).unsqueeze(1)
