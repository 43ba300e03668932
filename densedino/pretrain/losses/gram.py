"""Gram anchoring (DINOv3): keep the student's patch similarities close to an earlier teacher's.

For patch features F_s, F_g of one image (N, D), L2-normalised per patch, the Gram matrices
G = F F^T (N, N) hold the patch-to-patch cosine similarities, and

    L = mean over images and the N^2 entries of (G_s - G_g)^2.

Two options of DINOv3's Gram loss:

* ``batch_gram``: one Gram matrix over all B N patches of the batch (every patch of every image
  against every other), L = mean over the (B N)^2 entries. DINOv3 does this over the batch of
  one process (no gathering across processes); the matrix costs (B N)^2 floats.
* ``remove_negatives``: negative similarities are set to 0 in both matrices before the MSE (no
  gradient flows through the student's zeroed entries).

DINOv3's released ViT-7B Gram-anchoring config computes the matrices per image and keeps the
negatives (``img_level: true``, ``remove_neg: false``), the defaults here; its default config
and its loss class's own defaults differ (batch-level; negatives removed).

The Gram teacher is a frozen earlier teacher fed 2x-resolution crops; its patch grid is
downsampled bicubically to the student's grid with :func:`downsample_gram_teacher_features`.
DINOv3 weights the loss up to 2.0 late in training (the weight lives in the caller).

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
    """MSE between the Gram matrices of student and Gram-teacher patch features.

    Args:
        batch_gram: one Gram matrix over all patches of the batch instead of one per image.
        remove_negatives: set negative similarities to 0 in both matrices before the MSE.
    """

    def __init__(self, *, batch_gram: bool = False, remove_negatives: bool = False) -> None:
        super().__init__()
        for name, value in (('batch_gram', batch_gram), ('remove_negatives', remove_negatives)):
            if not isinstance(value, bool):
                raise ValueError(f'{name} must be a bool, got {value!r}')
        self.batch_gram = batch_gram
        self.remove_negatives = remove_negatives

    def forward(self, student_features: Tensor, teacher_features: Tensor) -> Tensor:
        """Gram-anchoring loss.

        Args:
            student_features: (B, N, D) student patch features.
            teacher_features: (B, N, D') Gram-teacher patch features on the same grid (no
                gradient flows to them).

        Returns:
            Scalar fp32 loss.
        """
        if student_features.dim() != 3 or student_features.shape[:2] != teacher_features.shape[:2]:
            raise ValueError(f'student {tuple(student_features.shape)} and teacher '
                             f'{tuple(teacher_features.shape)} must be (B, N, D) with the same '
                             '(B, N)')
        if self.batch_gram:  # (1, B N, D): every patch of the batch against every other
            student_features = student_features.flatten(0, 1)[None]
            teacher_features = teacher_features.flatten(0, 1)[None]
        student = gram_matrix(student_features)
        target = gram_matrix(teacher_features.detach())
        if self.remove_negatives:
            student = student.masked_fill(student < 0, 0.0)
            target = target.masked_fill(target < 0, 0.0)
        return F.mse_loss(student, target)
