"""Datasets: mmseg's segmentation datasets with checked inputs, depth datasets and transforms, synthetic scenes."""
from .depth import (
    KITTI_DEPTH_SCALE,
    NYU_DEPTH_SCALE,
    NYU_FOCAL,
    DepthFolderDataset,
    KITTIEigenDepthDataset,
    NYUDepthDataset,
    NYUFolderDepthDataset,
    SyntheticDepthDataset,
)
from .depth_transforms import (
    DepthColorJitter,
    KBCrop,
    LoadDepthAnnotation,
    NYUCrop,
    RandomDepthRotate,
)
from .check import SPLITS, DatasetReport, SplitStats, check_config, startup_check
from .resize import ResizeShortSideToMultiple
from .seg import (
    ADE20KDataset,
    CityscapesDataset,
    LoadAnnotations,
    PascalVOCDataset,
    SyntheticSegDataset,
)
from .errors import DatasetError
from .synthetic_writers import ensure_synthetic_ade20k
from .synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_PALETTE,
    SceneConfig,
    SceneGenerator,
    SceneObject,
    SceneSample,
)
from .synthetic_writers import write_ade20k, write_kitti, write_nyu

__all__ = [
    'KITTI_DEPTH_SCALE', 'NYU_DEPTH_SCALE', 'NYU_FOCAL', 'SYNTHETIC_CLASSES', 'SYNTHETIC_PALETTE',
    'ADE20KDataset', 'CityscapesDataset', 'DatasetError', 'DepthColorJitter', 'DepthFolderDataset',
    'KBCrop', 'KITTIEigenDepthDataset', 'LoadAnnotations', 'LoadDepthAnnotation', 'NYUCrop',
    'NYUDepthDataset', 'NYUFolderDepthDataset', 'PascalVOCDataset', 'RandomDepthRotate',
    'ResizeShortSideToMultiple', 'SceneConfig', 'SceneGenerator', 'SceneObject', 'SceneSample',
    'SyntheticSegDataset', 'SyntheticDepthDataset',
    'ensure_synthetic_ade20k', 'write_ade20k', 'write_kitti', 'write_nyu',
    'SPLITS', 'DatasetReport', 'SplitStats', 'check_config', 'startup_check',
]
