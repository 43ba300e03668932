"""Evaluation: pure per-image metric functions and their mmengine ``BaseMetric`` wrappers."""
from .depth_align import ALIGN_MODES, check_align, fit_scale_shift
from .depth_functional import (
    DEPTH_CROPS,
    DEPTH_METRIC_KEYS,
    LOWER_IS_BETTER,
    align_depth,
    check_crop,
    crop_mask,
    depth_metrics,
    disparity_scale_shift,
)
from .depth_metric import DenseDepthMetric
from .head_sweep_metric import HeadSweepMetric
from .seg_confusion import ConfusionScores, SegConfusionMetric, iou_from_confusion

__all__ = [
    'ALIGN_MODES',
    'DEPTH_CROPS',
    'DEPTH_METRIC_KEYS',
    'LOWER_IS_BETTER',
    'DenseDepthMetric',
    'HeadSweepMetric',
    'align_depth',
    'check_align',
    'check_crop',
    'crop_mask',
    'depth_metrics',
    'disparity_scale_shift',
    'fit_scale_shift',
    'ConfusionScores',
    'SegConfusionMetric',
    'iou_from_confusion',
]
