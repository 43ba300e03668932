"""Losses, one per file."""
from .upsampled_ce import interp_weights, upsampled_cross_entropy

__all__ = ['interp_weights', 'upsampled_cross_entropy']
