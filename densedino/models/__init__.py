"""Models: layers -> backbones (heads, segmentors and depth models build on them)."""
from .backbones import DinoBackbone, create_backbone, list_backbones  # noqa: F401
