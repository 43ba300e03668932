"""The iBOT masked-patch loss: cross-entropy on masked patch tokens only.

The student sees masked global crops; at every masked patch position its patch logits are matched
to the teacher's (unmasked) patch targets. Each image's masked patches are weighted by
1 / (its number of masked patches), so every masked image counts the same whatever its mask
ratio, and the sum is divided by the number of global-crop images, masked or not:

    loss = (1 / n_images) * sum_i sum_{p in M_i} CE(t_ip, s_ip) / |M_i|

Teacher targets come from the same centering or Sinkhorn-Knopp helpers as the DINO loss
(:class:`~densedino.pretrain.losses.dino.CenteredTeacherLoss`), applied to the (M, K) rows of
masked patches; the center is a separate buffer of this loss.

References:
    Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022.
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024.
"""
from typing import Optional, Union

from torch import Tensor

from ...registry import MODELS
from .dino import CenteredTeacherLoss


def masked_patch_weights(masks: Tensor) -> Tensor:
    """Weight 1 / (own image's masked count) of every masked patch, in ``masks.nonzero()`` order.

    Args:
        masks: (n_images, n_patches) bool, True = masked.

    Returns:
        (M,) fp32 weights, M = ``masks.sum()``; the weights of each masked image sum to 1.
    """
    if masks.dim() != 2:
        raise ValueError(f'masks must be (n_images, n_patches), got {tuple(masks.shape)}')
    masks = masks.bool()
    per_image = 1.0 / masks.sum(dim=-1, keepdim=True).clamp(min=1).float()
    return per_image.expand(masks.shape)[masks]


@MODELS.register_module()
class iBOTPatchLoss(CenteredTeacherLoss):  # noqa: N801 - the paper's spelling
    """iBOT patch loss over masked positions.

    Args:
        patch_out_dim: number of patch prototypes K.
        student_temp: student temperature (0.1).
        center_momentum: EMA momentum of the patch center (0.9).
    """

    def __init__(self, patch_out_dim: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__(patch_out_dim, student_temp, center_momentum)

    def forward_masked(self, student_patch_logits: Tensor, teacher_patch_probs: Tensor,
                       student_masks_flat: Tensor,
                       n_masked_patches: Optional[Union[int, Tensor]] = None,
                       masks_weight: Optional[Tensor] = None, *,
                       n_images: Optional[int] = None) -> Tensor:
        """Weighted cross-entropy over the masked patches.

        Args:
            student_patch_logits: (M, K) student logits at masked positions, rows in
                ``student_masks_flat.nonzero()`` order (image by image, row-major).
            teacher_patch_probs: (M, K) teacher targets at the same positions.
            student_masks_flat: (n_images, n_patches) bool masks of all global crops.
            n_masked_patches: use only the first ``n_masked_patches`` rows (when the inputs are
                padded to a fixed size); all rows when None.
            masks_weight: (M,) per-row weights; :func:`masked_patch_weights` of the masks when
                None.
            n_images: divisor, the number of global-crop images masked or not;
                ``student_masks_flat.shape[0]`` when None.

        Returns:
            Scalar fp32 loss (0 when nothing is masked).
        """
        if student_patch_logits.shape != teacher_patch_probs.shape:
            raise ValueError(f'student {tuple(student_patch_logits.shape)} and teacher '
                             f'{tuple(teacher_patch_probs.shape)} shapes differ')
        if masks_weight is None:
            masks_weight = masked_patch_weights(student_masks_flat)
        n = student_patch_logits.shape[0] if n_masked_patches is None else int(n_masked_patches)
        if n_masked_patches is None and masks_weight.shape[0] != n:
            raise ValueError(f'{n} logit rows but {masks_weight.shape[0]} masked patches/weights')
        if not 0 <= n <= min(student_patch_logits.shape[0], masks_weight.shape[0]):
            raise ValueError(f'n_masked_patches={n} not in [0, min of the '
                             f'{student_patch_logits.shape[0]} logit rows and '
                             f'{masks_weight.shape[0]} weights]')
        n_images = student_masks_flat.shape[0] if n_images is None else n_images
        if n_images < 1:
            raise ValueError(f'n_images must be >= 1, got {n_images}')
        ce = self.cross_entropy(student_patch_logits[:n], teacher_patch_probs[:n])
        return (ce * masks_weight[:n].float()).sum() / n_images

    def forward(self, *args, **kwargs) -> Tensor:
        """Alias of :meth:`forward_masked`."""
        return self.forward_masked(*args, **kwargs)
