"""Segmentation datasets: mmseg's, with inputs checked up front, and the embedded synthetic scenes.

mmseg's datasets fail late and vaguely on bad inputs (an assertion deep in a worker, or a silent
wrong mIoU for labels out of range). The classes here keep mmseg's behaviour and add one-line
errors that name the folder or file: a missing image folder, an image without its label file,
an unreadable image or label, a label of another size than its image, a label value outside the
class range (shown as stored in the file).
"""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmseg.datasets import ADE20KDataset as _MMSegADE20K
from mmseg.datasets import BaseSegDataset
from mmseg.datasets import CityscapesDataset as _MMSegCityscapes
from mmseg.datasets import PascalVOCDataset as _MMSegVOC
from mmseg.datasets.transforms import LoadAnnotations as _MMSegLoadAnnotations

from ..registry import DATASETS, TRANSFORMS
from .synthetic_config import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE
from .errors import DatasetError
from .synthetic_writers import ensure_synthetic_ade20k

logger = logging.getLogger(__name__)
IGNORE_INDEX = 255


def check_same_size(what: str, path: str, shape: Sequence[int], img_path: Optional[str],
                    img_shape: Sequence[int]) -> None:
    """Raise unless an annotation (label or depth map) has its image's size.

    Args:
        what: 'label' or 'depth', for the message.
        path: The annotation file.
        shape: The annotation's ``(H, W, ...)``.
        img_path: The image file.
        img_shape: The image's ``(H, W, ...)`` as decoded (before any resize or crop).

    Raises:
        DatasetError: the sizes differ (the message names both files and both sizes).
    """
    if tuple(shape[:2]) != tuple(img_shape[:2]):
        size, img_size = ('x'.join(str(n) for n in s[:2]) for s in (shape, img_shape))
        raise DatasetError(f'{what} file {path} is {size} but image {img_path} is {img_size}; an '
                           'annotation must have its image\'s size (fix or re-export one of the '
                           'two files)')


def label_lookup(reduce_zero_label: bool, label_map: Optional[Dict[int, int]]) -> np.ndarray:
    """The table mapping stored label values to training values, as mmseg's ``LoadAnnotations``.

    ``reduce_zero_label`` sends 0 to 255 (ignore) and v to v - 1 otherwise (255 stays 255); then
    ``label_map`` (custom classes) replaces old ids by new ones.

    Returns:
        ``(256,)`` uint8 array: ``table[stored] = value used in training``.
    """
    table = np.arange(256, dtype=np.uint8)
    if reduce_zero_label:
        table = table - np.uint8(1)  # 0 wraps to 255
        table[table == 254] = IGNORE_INDEX
    if label_map:
        before = table.copy()
        for old, new in label_map.items():
            table[before == old] = new
    return table


class CheckedSegDatasetMixin:
    """Validates the file list that ``load_data_list`` builds."""

    def _list_samples(self) -> List[dict]:
        """The data infos of every image, without checking that their label files exist.

        Raises:
            DatasetError: missing image folder or no image in it.
        """
        img_dir = self.data_prefix.get('img_path')
        if img_dir and not osp.isdir(img_dir) and not (self.ann_file and osp.isfile(self.ann_file)):
            raise DatasetError(f'image folder {img_dir} does not exist (check data_root / '
                               'data_prefix in the config)')
        data_list = super().load_data_list()
        if not data_list:
            raise DatasetError(f'no *{self.img_suffix} images found under {img_dir}')
        num_classes = len(self.metainfo['classes'])
        for d in data_list:
            d['num_classes'] = num_classes
        return data_list

    def load_data_list(self) -> List[dict]:
        """List the samples and check that every label file exists.

        Raises:
            DatasetError: missing image folder, no image, or a missing label file (the first one
                is named).
        """
        data_list = self._list_samples()
        missing = [d['seg_map_path'] for d in data_list
                   if 'seg_map_path' in d and not osp.isfile(d['seg_map_path'])]
        if missing:
            more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
            raise DatasetError(f'label file {missing[0]} is missing{more}')
        return data_list


@TRANSFORMS.register_module()
class LoadAnnotations(_MMSegLoadAnnotations):
    """mmseg's ``LoadAnnotations`` that also rejects unreadable, mis-sized and out-of-range labels.

    When the image was loaded before (``ori_shape`` set by ``LoadImageFromFile``), the label must
    have the image's original size. After ``reduce_zero_label`` / ``label_map``, every value must
    be a class index (``< num_classes``, given by the dataset) or the ignore index 255; the error
    shows the offending values as stored in the file (and as mapped).
    """

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        try:
            super()._load_seg_map(results)
        except Exception as e:  # noqa: BLE001 - decoding errors of any kind
            raise DatasetError(f'cannot read label file {path}: {e}') from None
        seg = results.get('gt_seg_map')
        if seg is None:
            raise DatasetError(f'cannot read label file {path}')
        if results.get('ori_shape') is not None:
            check_same_size('label', path, seg.shape, results.get('img_path'), results['ori_shape'])
        num_classes = results.get('num_classes')
        if num_classes is not None:
            self._check_range(path, seg, num_classes, results.get('label_map'))

    def _check_range(self, path: str, seg: np.ndarray, num_classes: int,
                     label_map: Optional[Dict[int, int]]) -> None:
        bad = np.unique(seg[(seg >= num_classes) & (seg != IGNORE_INDEX)])
        if not bad.size:
            return
        table = label_lookup(bool(self.reduce_zero_label), label_map)
        stored = np.flatnonzero(np.isin(table, bad))  # exact: out-of-range values map 1:1
        mapped = ''
        if not np.array_equal(stored, bad):
            how = ' / '.join(n for n, on in (('reduce_zero_label', self.reduce_zero_label),
                                             ('label_map', label_map)) if on)
            mapped = f' ({bad[:5].tolist()} after {how})'
        raise DatasetError(f'label file {path} has values {stored[:5].tolist()}{mapped} outside '
                           f'the {num_classes} classes (and 255 = ignore); fix the file, or the '
                           'classes / reduce_zero_label of the dataset in the config')


@DATASETS.register_module()
class ADE20KDataset(CheckedSegDatasetMixin, _MMSegADE20K):
    """mmseg's ADE20K (150 classes, ``reduce_zero_label``) with checked inputs."""


@DATASETS.register_module()
class PascalVOCDataset(CheckedSegDatasetMixin, _MMSegVOC):
    """mmseg's Pascal VOC 2012 (21 classes, split file) with checked inputs."""


@DATASETS.register_module()
class CityscapesDataset(CheckedSegDatasetMixin, _MMSegCityscapes):
    """mmseg's Cityscapes (19 classes) with checked inputs."""


@DATASETS.register_module()
class SyntheticSegDataset(CheckedSegDatasetMixin, BaseSegDataset):
    """The embedded procedural scenes in ADE20K layout, generated on first use.

    Args:
        data_root: Folder holding (or receiving) ``ADEChallengeData2016``.
        split: 'training' or 'validation'.
        num_train: Training scenes to generate if the folder is absent.
        num_val: Validation scenes to generate if the folder is absent.
        seed: Generator seed.
        scene: ``SceneConfig`` options.
        **kwargs: ``BaseSegDataset`` options (pipeline, ...).
    """
    METAINFO = dict(classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE)

    def __init__(self, data_root: str = 'data/synthetic', *, split: str = 'training',
                 num_train: int = 400, num_val: int = 100, seed: int = 0,
                 scene: Optional[dict] = None, **kwargs) -> None:
        if split not in ('training', 'validation'):
            raise ValueError(f"split must be 'training' or 'validation', got {split!r}")
        ade_root = ensure_synthetic_ade20k(data_root, num_train=num_train, num_val=num_val,
                                           seed=seed, scene=scene)
        super().__init__(data_root=ade_root, img_suffix='.jpg', seg_map_suffix='.png',
                         reduce_zero_label=True,
                         data_prefix=dict(img_path=f'images/{split}',
                                          seg_map_path=f'annotations/{split}'), **kwargs)
