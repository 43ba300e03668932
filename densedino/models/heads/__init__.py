"""Heads for segmentation and depth, fed by ``DinoBackbone`` outputs."""
from .checkpoint import load_head_checkpoint
from .depth_base import DepthHead, gt_depth_batch
from .depth_dpt import DPTDepthHead
from .depth_linear import LinearDepthHead
from .inputs import block_maps, resize_concat, resolve_input_widths
from .linear import LinearSegHead

__all__ = ['block_maps', 'resize_concat', 'LinearSegHead', 'DepthHead', 'gt_depth_batch',
           'load_head_checkpoint', 'DPTDepthHead', 'LinearDepthHead', 'resolve_input_widths']
