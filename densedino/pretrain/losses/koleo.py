"""The KoLeo regulariser: spread features uniformly by pushing apart nearest neighbours.

On L2-normalised vectors x_1..x_B of one batch (the student's class tokens of one global crop),
with n(i) the nearest other vector of x_i and d_i its distance,

    L = -(1 / B) * sum_i log(d_i + eps),   eps = 1e-8,

the Kozachenko-Leonenko differential-entropy estimator up to constants. As in DINOv2's code,
n(i) is the largest dot product with the diagonal set to -1, and the distance is torch's pairwise
distance ``d_i = ||x_i - x_n(i) + delta||``, delta = 1e-8 added to every coordinate: exact
duplicates (or a vector and a scaled copy) sit ``delta * sqrt(D)`` apart, not 0, which sets the
value and the gradients in batches that hold them. Everything is fp32.

References:
    Sablayrolles et al., "Spreading vectors for similarity search", ICLR 2019.
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024.
"""
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS


@MODELS.register_module()
class KoLeoLoss(nn.Module):
    """KoLeo loss of one batch of vectors, or the sum over crops of per-crop losses.

    Args:
        eps: added to the nearest-neighbour distance inside the log.
        distance_eps: added to every coordinate of the difference before its norm (torch's
            pairwise distance; DINOv2: 1e-8).
    """

    def __init__(self, eps: float = 1e-8, distance_eps: float = 1e-8) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        if distance_eps < 0:
            raise ValueError(f'distance_eps must be >= 0, got {distance_eps}')
        self.eps = eps
        self.distance_eps = distance_eps

    def single(self, x: Tensor) -> Tensor:
        """Loss of one batch.

        Args:
            x: (B, D) vectors, B >= 2 (normalised here).

        Returns:
            Scalar fp32 loss.
        """
        if x.dim() != 2 or x.shape[0] < 2:
            raise ValueError(f'x must be (B >= 2, D), got {tuple(x.shape)}')
        x = F.normalize(x.float(), dim=-1, eps=1e-8)
        with torch.no_grad():
            dots = x @ x.t()
            # -1 as DINOv2 (not -inf): if every other dot is -1 too, the first index wins
            dots.fill_diagonal_(-1.0)
            nearest = dots.argmax(dim=1)
        distances = F.pairwise_distance(x, x[nearest], p=2.0, eps=self.distance_eps)
        return -torch.log(distances + self.eps).mean()

    def forward(self, x: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """KoLeo of each crop separately, summed over crops (as DINOv2 does).

        Args:
            x: (B, D) for one crop, or (n_crops, B, D) / a sequence of (B, D), one per crop.

        Returns:
            Scalar fp32 loss.
        """
        if isinstance(x, Tensor) and x.dim() == 2:
            return self.single(x)
        if isinstance(x, Tensor) and x.dim() != 3:
            raise ValueError(f'x must be (B, D) or (n_crops, B, D), got {tuple(x.shape)}')
        return sum(self.single(crop) for crop in x)
