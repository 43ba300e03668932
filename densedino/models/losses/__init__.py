"""Losses, one per file."""
from .depth import GradientLoss, SigLoss
from .upsampled_ce import column_matrix, interp_weights, upsampled_cross_entropy

__all__ = ['GradientLoss', 'SigLoss', 'column_matrix', 'interp_weights', 'upsampled_cross_entropy']
