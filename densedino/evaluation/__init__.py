"""Evaluation: pure per-image metric functions and their mmengine ``BaseMetric`` wrappers."""
from .depth_functional import (
    DEPTH_CROPS,
    DEPTH_METRIC_KEYS,
    check_crop,
    crop_mask,
    depth_metrics,
)
from .depth_metric import DenseDepthMetric

__all__ = [
    'DEPTH_CROPS',
    'DEPTH_METRIC_KEYS',
    'DenseDepthMetric',
    'check_crop',
    'crop_mask',
    'depth_metrics',
]
