"""Datasets: mmseg's segmentation datasets with checked inputs, and procedural synthetic scenes."""
from .seg import (ADE20KDataset, CityscapesDataset, DatasetError, LoadAnnotations,
                  PascalVOCDataset, SyntheticSegDataset, ensure_synthetic_ade20k)
from .synthetic import (SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, SceneConfig, SceneGenerator,
                        SceneObject, SceneSample, write_ade20k, write_kitti, write_nyu)

__all__ = [
    'ADE20KDataset', 'CityscapesDataset', 'DatasetError', 'LoadAnnotations', 'PascalVOCDataset',
    'SyntheticSegDataset', 'ensure_synthetic_ade20k', 'SYNTHETIC_CLASSES', 'SYNTHETIC_PALETTE',
    'SceneConfig', 'SceneGenerator', 'SceneObject', 'SceneSample', 'write_ade20k', 'write_nyu',
    'write_kitti'
]
