"""Models: layers -> backbones -> heads -> segmentors/depth models."""
from .backbones import DinoBackbone, create_backbone, list_backbones  # noqa: F401
from .depth_estimator import DinoDepthEstimator  # noqa: F401
from .heads import DepthHead, LinearSegHead  # noqa: F401
