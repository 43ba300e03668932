"""Heads for segmentation and depth, fed by ``DinoBackbone`` outputs."""
from .features import block_maps, resize_concat
from .linear import LinearSegHead

__all__ = ['block_maps', 'resize_concat', 'LinearSegHead']
