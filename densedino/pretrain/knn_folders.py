"""CLS features of labelled image folders for DINO k-NN (docs/protocols.md section 8.10).

Each image is resized so its short side is ``resize`` pixels (aspect kept), centre-cropped to
``size`` x ``size`` (the standard k-NN eval transform, 256 -> 224), normalised with the
backbone preset's mean/std and run through ``backbone.forward_features(x)['x_norm_clstoken']``:
the normed class token of a ViT, the normed global average pool of a ConvNeXt's last stage.
:func:`knn_eval_folders` adds :func:`~densedino.pretrain.knn.knn_accuracy` on top.
"""
from __future__ import annotations

import os
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..datasets.errors import DatasetError
from ..models.backbones.presets import IMAGENET_MEAN, IMAGENET_STD
from ..models.layers import center_pad
from ..progress import progress_iter
from ..images import input_normalisation, prepare_image, read_image
from .datasets import UnlabeledImageFolder
from .knn import knn_accuracy

ImageLike = Union[str, os.PathLike, np.ndarray]


def knn_transform(image: np.ndarray, *, size: int = 224, resize: int = 256,
                  mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Resize the short side to ``resize``, centre-crop ``size`` x ``size``, normalise.

    Resizing is OpenCV's (area when shrinking, bicubic when enlarging), as in the feature
    visualisations (:func:`densedino.images.prepare_image`).

    Args:
        image: (H, W, 3) uint8 RGB.
        size: Side of the square crop in pixels.
        resize: Short side after resizing; must be >= ``size``.
        mean: RGB mean on the 0-1 scale.
        std: RGB std on the 0-1 scale.

    Returns:
        (3, size, size) float32 tensor.
    """
    if size < 1 or resize < size:
        raise ValueError(f'need 1 <= size <= resize, got size={size}, resize={resize}')
    x = prepare_image(image, multiple=1, size=resize, mean=mean, std=std).tensor[0]
    top, left = (x.shape[1] - size) // 2, (x.shape[2] - size) // 2
    return x[:, top:top + size, left:left + size].contiguous()


class _ImageList(Dataset):
    """Paths or arrays -> :func:`knn_transform` tensors (a Dataset so loading can use workers)."""

    def __init__(self, images: Sequence[ImageLike], **transform_args: Any) -> None:
        self.images = images
        self.transform_args = transform_args

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        item = self.images[index]
        image = item if isinstance(item, np.ndarray) else read_image(os.fspath(item))
        return knn_transform(image, **self.transform_args)


@torch.no_grad()
def extract_cls_features(backbone: nn.Module, images_or_paths: Sequence[ImageLike], *,
                         size: int = 224, resize: int = 256, batch_size: int = 32,
                         device: Union[str, torch.device, None] = None, num_workers: int = 0,
                         mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                         progress: bool = False, desc: str = 'k-NN features') -> Tensor:
    """Normed global features ``forward_features(x)['x_norm_clstoken']`` of every image.

    The backbone runs in eval mode without gradients, ``batch_size`` images at a time; its
    training flag is restored afterwards. The crop side is padded (centred) to the backbone's
    ``patch_size`` multiple if it is not one already.

    Args:
        backbone: A ``create_backbone`` model (ViT or ConvNeXt) or anything with
            ``forward_features(x) -> {'x_norm_clstoken': (B, D)}``.
        images_or_paths: (H, W, 3) uint8 RGB arrays and/or image file paths.
        size: Crop side in pixels (see :func:`knn_transform`).
        resize: Short side before cropping.
        batch_size: Images per forward pass.
        device: Where to run; None = where the backbone's parameters are (the backbone is
            moved only when a different device is given).
        num_workers: DataLoader workers that read and transform the images.
        mean: Normalisation mean; default the backbone preset's (ImageNet without a preset).
        std: Normalisation std; default as ``mean``.
        progress: Show progress on stderr (a bar on a terminal, else a line per tenth).
        desc: Progress bar label.

    Returns:
        (N, D) float32 features on ``device``, in input order.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    param = next(backbone.parameters(), None)
    if device is not None and (param is None or param.device != torch.device(device)):
        backbone.to(device)
    device = torch.device(device) if device is not None else (
        param.device if param is not None else torch.device('cpu'))
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    mean, std = input_normalisation(backbone, mean, std)
    loader = DataLoader(_ImageList(images_or_paths, size=size, resize=resize, mean=mean, std=std),
                        batch_size=batch_size, shuffle=False, num_workers=num_workers)
    multiple = int(getattr(backbone, 'patch_size', 1) or 1)
    was_training = backbone.training
    backbone.eval()
    try:
        feats = [backbone.forward_features(center_pad(x, multiple).to(device, dtype))
                 ['x_norm_clstoken'].float()
                 for x in progress_iter(loader, len(loader), progress, desc)]
    finally:
        backbone.train(was_training)
    if not feats:
        raise ValueError('extract_cls_features got no images')
    return torch.cat(feats)


def labelled_folder(root: Union[str, os.PathLike],
                    labels_file: Union[str, os.PathLike]) -> tuple[list[str], Tensor]:
    """Image paths below ``root`` (sorted) and their (N,) int64 labels from ``labels_file``.

    The label file format is :class:`~densedino.pretrain.UnlabeledImageFolder`'s: lines
    ``"<relative path, or it without extension, or stem> <integer label>"``.

    Raises:
        DatasetError: A missing folder or label file (named), no images, an unlabelled image.
    """
    if not os.path.isfile(os.fspath(labels_file)):
        raise DatasetError(f'labels file {os.fspath(labels_file)} does not exist')
    folder = UnlabeledImageFolder(root, labels_file=labels_file)
    paths = [os.path.join(folder.root, rel) for rel in folder.files]
    return paths, torch.tensor(folder.labels, dtype=torch.long)


def knn_eval_folders(backbone: nn.Module, *, train_dir: str, train_labels: str, val_dir: str,
                     val_labels: str, ks: Sequence[int] = (10, 20), temperature: float = 0.07,
                     **extract_args: Any) -> dict[str, float]:
    """k-NN top-1 (percent) of ``backbone`` on a labelled train / val folder pair.

    Args:
        backbone: See :func:`extract_cls_features`.
        train_dir: Folder of the reference ("memory bank") images.
        train_labels: Their label file (see :func:`labelled_folder`).
        val_dir: Folder of the query images.
        val_labels: Their label file.
        ks: Neighbour counts; one result per ``k``.
        temperature: Vote weight ``exp(similarity / temperature)``.
        **extract_args: Passed to :func:`extract_cls_features` (size, resize, batch_size ...).

    Returns:
        ``{'knn_top1_k10': ..., 'knn_top1_k20': ...}``.
    """
    train_paths, train_y = labelled_folder(train_dir, train_labels)
    val_paths, val_y = labelled_folder(val_dir, val_labels)
    train_f = extract_cls_features(backbone, train_paths, desc='k-NN train', **extract_args)
    val_f = extract_cls_features(backbone, val_paths, desc='k-NN val', **extract_args)
    return knn_accuracy(train_f, train_y.to(train_f.device), val_f, val_y.to(val_f.device),
                        ks=ks, temperature=temperature)
