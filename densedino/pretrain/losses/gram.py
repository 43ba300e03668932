"""Gram anchoring (DINOv3): keep the student's patch similarities close to an earlier teacher's.

For patch features F_s, F_g of one image (N, D), L2-normalised per patch, the Gram matrices
G = F F^T (N, N) hold the patch-to-patch cosine similarities, and

    L = mean over images and the N^2 entries of (G_s - G_g)^2.

The Gram teacher is a frozen earlier teacher fed 2x-resolution crops; its patch grid is
downsampled bicubically to the student's grid with :func:`downsample_gram_teacher_features`.
DINOv3 weights the loss up to 2.0 late in training (the weight lives in the caller).

Not implemented (options of the DINOv3 code beyond REFERENCE.md): removing negative
similarities before the MSE, and Gram matrices over the whole (gathered) batch instead of per
image.

References:
    Simeoni et al., "DINOv3", arXiv 2508.10104, 2025.
"""
from typing import Tuple, Union

import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS


def gram_matrix(features: Tensor) -> Tensor:
    """(B, N, D) features -> (B, N, N) cosine similarities of the L2-normalised rows, fp32."""
    if features.dim() != 3:
        raise ValueError(f'features must be (B, N, D), got {tuple(features.shape)}')
    x = F.normalize(features.float(), dim=-1)
    return x @ x.transpose(1, 2)


def downsample_gram_teacher_features(features: Tensor, size: Union[int, Tuple[int, int]], *,
                                     antialias: bool = False) -> Tensor:
    """Bicubically resample a Gram teacher's patch grid to the student's grid.

    Args:
        features: (B, h2, w2, D) teacher patch features (typically 2x the student grid).
        size: student grid (h, w), or one int for a square grid.
        antialias: use antialiased bicubic resampling (off: plain bicubic).

    Returns:
        (B, h * w, D) features in the input dtype.
    """
    if features.dim() != 4:
        raise ValueError(f'features must be (B, h2, w2, D), got {tuple(features.shape)}')
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f'size must be (h >= 1, w >= 1), got {size}')
    x = features.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode='bicubic', align_corners=False, antialias=antialias)
    return x.flatten(2).transpose(1, 2).to(features.dtype)


@MODELS.register_module()
class GramLoss(nn.Module):
    """MSE between the per-image Gram matrices of student and Gram-teacher patch features."""

    def forward(self, student_features: Tensor, teacher_features: Tensor) -> Tensor:
        """Gram-anchoring loss.

        Args:
            student_features: (B, N, D) student patch features.
            teacher_features: (B, N, D') Gram-teacher patch features on the same grid (no
                gradient flows to them).

        Returns:
            Scalar fp32 loss.
        """
        if student_features.shape[:2] != teacher_features.shape[:2]:
            raise ValueError(f'student {tuple(student_features.shape)} and teacher '
                             f'{tuple(teacher_features.shape)} differ in (B, N)')
        target = gram_matrix(teacher_features.detach())
        return F.mse_loss(gram_matrix(student_features), target)
