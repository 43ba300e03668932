"""Depth as the expectation over fixed depth bins (AdaBins-style classification-regression).

DINOv2's and DINOv3's depth heads predict one logit per bin, turn the logits into weights that
sum to one, and output ``depth = sum_k p_k b_k``.
"""
import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

from ..losses import fold_columns, resize_columns, row_chunks

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


class _UpsampledBinsToDepth(torch.autograd.Function):
    """``bins_to_depth(F.interpolate(logits, size, bilinear), bins, 'linear')``, row chunk by
    row chunk (see :func:`upsampled_bins_to_depth`)."""

    @staticmethod
    def _weights(z: Tensor, bins: Tensor) -> Tuple[Tensor, Tensor]:
        """(R, K, W) upsampled logits -> depth (R, W) and the weight sums S (R, W)."""
        weights = torch.relu(z).add_(LINEAR_NORM_EPS)
        total = weights.sum(dim=1)
        return torch.matmul(bins, weights).div_(total), total  # (K) @ (R, K, W): no transpose

    @staticmethod
    def forward(ctx, logits: Tensor, bins: Tensor, size: Sequence[int], align_corners: bool,
                chunk_elems: int) -> Tensor:
        B, K, h, w = logits.shape
        H, W = size
        x = logits.detach()
        plan = row_chunks((h, w), (H, W), K, align_corners, chunk_elems, x.device, x.dtype)
        out = x.new_empty(B, 1, H, W)
        b = bins.to(x.dtype)
        for i in range(B):
            wide = resize_columns(x[i], plan.cols)
            for r0, r1, lo, hi, a_sub in plan.chunks:
                z = (a_sub @ wide[lo:hi]).view(r1 - r0, K, W)
                out[i, 0, r0:r1] = _UpsampledBinsToDepth._weights(z, b)[0]
        ctx.save_for_backward(x, b)
        ctx.size, ctx.align_corners, ctx.chunk_elems = tuple(size), align_corners, chunk_elems
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, b = ctx.saved_tensors
        B, K, h, w = x.shape
        H, W = ctx.size
        plan = row_chunks((h, w), (H, W), K, ctx.align_corners, ctx.chunk_elems, x.device,
                          x.dtype)
        grad = torch.empty_like(x)
        g_all = grad_out.to(x.dtype)
        for i in range(B):
            wide = resize_columns(x[i], plan.cols)
            grad_wide = torch.zeros_like(wide)
            for r0, r1, lo, hi, a_sub in plan.chunks:
                z = (a_sub @ wide[lo:hi]).view(r1 - r0, K, W)
                depth, total = _UpsampledBinsToDepth._weights(z, b)
                # d depth / d z_k = (b_k - depth) / S where z_k > 0, else 0
                scale = (g_all[i, 0, r0:r1] / total).unsqueeze(1)  # (R, 1, W)
                gz = (b.view(1, K, 1) - depth.unsqueeze(1)).mul_(scale).mul_(z > 0)
                grad_wide[lo:hi] += a_sub.T @ gz.view(r1 - r0, K * W)
            grad[i] = fold_columns(grad_wide, plan.cols, K)
        return grad, None, None, None, None


def upsampled_bins_to_depth(logits: Tensor, bins: Tensor, size: Sequence[int],
                            align_corners: bool = False, chunk_elems: int = 1 << 20) -> Tensor:
    """Depth of bin logits bilinearly resized to ``size``, 'linear' normalisation, fused.

    Equals ``bins_to_depth(F.interpolate(logits, size=size, mode='bilinear',
    align_corners=align_corners), bins, 'linear')`` (values and gradients, up to float
    rounding) without ever holding the (B, K, H, W) resized logits: the resize is separable, so
    a few output rows at a time are resized (one small GEMM), turned into depth, and dropped;
    the backward recomputes them and folds the gradient straight back to the (B, K, h, w)
    logits. On a CPU this is the bulk of a linear depth head's training cost (DINOv2's x4
    upsampling of 256 bins); memory is O(K h W) instead of O(K H W).

    Args:
        logits: (B, K, h, w) bin logits.
        bins: (K,) bin centres (metres).
        size: (H, W) of the output.
        align_corners: As in ``F.interpolate``.
        chunk_elems: Elements of one (rows, K, W) chunk.

    Returns:
        (B, 1, H, W) depth, fp32 for lower-precision logits and under autocast (fp64 stays fp64).
    """
    if logits.dim() != 4 or bins.dim() != 1 or bins.numel() != logits.shape[1]:
        raise ValueError(f'expected logits (B, K, h, w) and bins (K,), got '
                         f'{tuple(logits.shape)} and {tuple(bins.shape)}')
    # fp32 (fp64 kept) throughout, also under --amp
    x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    with torch.autocast(logits.device.type, enabled=False):
        return _UpsampledBinsToDepth.apply(x, bins.to(x.dtype), tuple(int(s) for s in size),
                                           align_corners, chunk_elems)
