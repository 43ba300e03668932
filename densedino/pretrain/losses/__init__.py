"""Pretraining losses, one per file: DINO (class tokens), iBOT (masked patches), KoLeo, Gram."""
from .dino import CenteredTeacherLoss, DINOLoss, sinkhorn_knopp
from .gram import GramLoss, downsample_gram_teacher_features, gram_matrix
from .ibot import iBOTPatchLoss, masked_patch_weights
from .koleo import KoLeoLoss

__all__ = ['CenteredTeacherLoss', 'DINOLoss', 'GramLoss', 'KoLeoLoss',
           'downsample_gram_teacher_features', 'gram_matrix', 'iBOTPatchLoss',
           'masked_patch_weights', 'sinkhorn_knopp']
