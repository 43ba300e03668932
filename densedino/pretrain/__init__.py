"""Self-supervised pretraining parts: projection heads, losses, iBOT masking (and augmentation)."""
from .heads import DINOHead, NormalizedLinear
from .losses import DINOLoss, GramLoss, KoLeoLoss, iBOTPatchLoss
from .losses import downsample_gram_teacher_features, masked_patch_weights
from .losses import sinkhorn_knopp
from .masking import MaskingGenerator, sample_masks
from .augment import CropBox, CropParams, MultiCropAugmentation, sample_crop_box
from .collate import collate_multicrop
from .datasets import UnlabeledImageFolder, sample_seed
from .knn_folders import extract_cls_features, knn_eval_folders, knn_transform
from .knn_hook import KNNMonitorHook, find_backbone
from .datasets import SyntheticUnlabeledImages
from .collectives import OverlappedGradientSync, average_gradients
from .distributed import FSDPCheckpointHook, SSLDistributedWrapper
from .checkpoints import export_teacher_backbone
from .ssl_model import DinoSSLModel, MultiCropDataPreprocessor

__all__ = [
    'DINOHead', 'NormalizedLinear', 'DINOLoss', 'GramLoss', 'KoLeoLoss', 'iBOTPatchLoss',
    'downsample_gram_teacher_features', 'masked_patch_weights', 'sinkhorn_knopp',
    'MaskingGenerator', 'sample_masks', 'CropBox', 'CropParams', 'MultiCropAugmentation',
    'sample_crop_box', 'collate_multicrop', 'UnlabeledImageFolder', 'sample_seed',
    'extract_cls_features', 'knn_eval_folders', 'knn_transform', 'KNNMonitorHook',
    'find_backbone', 'SyntheticUnlabeledImages', 'average_gradients', 'OverlappedGradientSync', 'FSDPCheckpointHook',
    'SSLDistributedWrapper', 'export_teacher_backbone', 'DinoSSLModel',
    'MultiCropDataPreprocessor',
]
