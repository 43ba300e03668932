"""Models: layers -> backbones -> heads -> segmentors/depth models."""
from .backbones import DinoBackbone, create_backbone, list_backbones
from .convert_depth_anything import load_depth_anything_v2
from .depth_estimator import DinoDepthEstimator
from .head_sweep import (HeadSweepDepthEstimator, HeadSweepSegmentor, sweep_head_names,
                         sweep_head_state)
from .heads import DepthHead, LinearSegHead

__all__ = [
    'DinoBackbone', 'create_backbone', 'list_backbones', 'DinoDepthEstimator', 'DepthHead',
    'LinearSegHead', 'load_depth_anything_v2', 'HeadSweepSegmentor', 'HeadSweepDepthEstimator',
    'sweep_head_names', 'sweep_head_state',
]
