"""Images as the models take them: read from disk, resized, normalised and padded.

Used wherever densedino feeds a picture to a backbone outside a dataset pipeline: the feature
visualisations, the pretraining datasets and k-NN features, and the tools. The padding is
:func:`densedino.models.layers.center_pad`, the one the dense models apply.
"""
import os.path as osp
from typing import NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from .models.backbones.presets import IMAGENET_MEAN, IMAGENET_STD
from .models.layers import center_pad

Box = Tuple[int, int, int, int]  # top, left, height, width of the image inside the padded input


class PreparedImage(NamedTuple):
    """A model input: ``tensor`` (1, 3, Hp, Wp), the resized ``image`` (H, W, 3) uint8 RGB, and
    the ``box`` (top, left, H, W) where the image lies in the padded input."""
    tensor: Tensor
    image: np.ndarray
    box: Box



def read_image(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; the error names the file it could not read."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path} does not exist')
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'cannot read image {path}: not an image format OpenCV can decode')
    return np.ascontiguousarray(image[..., ::-1])


def prepare_image(image: np.ndarray, *, multiple: int, size: Optional[int] = None,
                  mean: Sequence[float], std: Sequence[float]) -> PreparedImage:
    """Resize the short side to ``size`` (aspect kept; None keeps the size), normalise, pad.

    Args:
        image: (H0, W0, 3) uint8 RGB.
        multiple: Pad H and W up to a multiple of this (the patch size).
        size: Target short side in pixels, or None.
        mean: RGB mean on the 0-1 scale.
        std: RGB std on the 0-1 scale.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}')
    if size is not None:
        if size < 1:
            raise ValueError(f'size must be a positive number of pixels, got {size}')
        scale = size / min(image.shape[:2])
        hw = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, hw[::-1], interpolation=interp)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    H, W = image.shape[:2]
    box = ((-H % multiple) // 2, (-W % multiple) // 2, H, W)  # where center_pad puts the image
    return PreparedImage(center_pad(x[None], multiple), image, box)


def input_normalisation(backbone, mean: Optional[Sequence[float]] = None,
                        std: Optional[Sequence[float]] = None
                        ) -> Tuple[Sequence[float], Sequence[float]]:
    """The given mean/std, else the backbone preset's, else ImageNet's (every DINO preset's)."""
    preset = getattr(backbone, 'preset', None)
    if mean is None:
        mean = preset.mean if preset is not None else IMAGENET_MEAN
    if std is None:
        std = preset.std if preset is not None else IMAGENET_STD
    return mean, std


__all__ = ['PreparedImage', 'read_image', 'prepare_image', 'input_normalisation']
