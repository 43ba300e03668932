"""DINO backbones: one ViT for DINOv1/v2/v3, the DINOv3 ConvNeXt, presets and loaders."""
from .checkpoint import CheckpointError, load_into, read_checkpoint
from .convnext import ConvNeXt
from .convert import detect_format, to_densedino
from .dense import BlockFeatures, DinoBackbone, center_pad, resolve_out_indices
from .factory import create_backbone
from .precision import bf16_matmul_mode, to_bf16
from .presets import PRESETS, Preset, get_preset, list_backbones
from .vit import DinoVisionTransformer

__all__ = [
    'CheckpointError', 'load_into', 'read_checkpoint', 'ConvNeXt', 'detect_format',
    'to_densedino', 'BlockFeatures', 'DinoBackbone', 'center_pad', 'resolve_out_indices',
    'create_backbone', 'PRESETS', 'Preset', 'get_preset', 'list_backbones',
    'DinoVisionTransformer', 'bf16_matmul_mode', 'to_bf16'
]
