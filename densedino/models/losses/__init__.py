"""Losses, one per file."""
from .depth import GradientLoss, SigLoss
from .upsampled_ce import interp_weights, upsampled_cross_entropy

__all__ = ['GradientLoss', 'SigLoss', 'interp_weights', 'upsampled_cross_entropy']
