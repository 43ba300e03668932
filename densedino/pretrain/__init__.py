"""Self-supervised pretraining parts: projection heads, losses, iBOT masking (and augmentation)."""
from .heads import DINOHead, NormalizedLinear  # noqa: F401
from .losses import DINOLoss, GramLoss, KoLeoLoss, iBOTPatchLoss  # noqa: F401
from .losses import downsample_gram_teacher_features, masked_patch_weights  # noqa: F401
from .losses import sinkhorn_knopp  # noqa: F401
from .masking import MaskingGenerator, sample_masks  # noqa: F401
from .augment import CropBox, CropParams, MultiCropAugmentation, sample_crop_box  # noqa: F401
from .collate import collate_multicrop  # noqa: F401
from .datasets import UnlabeledImageFolder, sample_seed  # noqa: F401
from .features import extract_cls_features, knn_eval_folders, knn_transform  # noqa: F401
from .knn_hook import KNNMonitorHook, find_backbone  # noqa: F401
from .datasets import SyntheticUnlabeledImages  # noqa: F401
from .collectives import average_gradients  # noqa: F401
from .distributed import FSDPCheckpointHook, SSLDistributedWrapper  # noqa: F401
from .checkpoints import export_teacher_backbone  # noqa: F401
from .ssl_model import DinoSSLModel, MultiCropDataPreprocessor  # noqa: F401
