"""Monocular-depth datasets: NYU-Depth-v2 and KITTI Eigen split files, mmseg's NYU folders, any folder.

Every dataset yields data infos with the same keys, which :class:`~.depth_transforms.LoadDepthAnnotation`
and the depth metrics read:

- ``img_path``: the RGB image.
- ``depth_map_path``: the 16-bit depth PNG, or ``None`` for a KITTI test line without ground truth
  (kept only with ``skip_missing_gt=False``; such samples give predictions but no metrics).
- ``focal``: the focal length in pixels (``float``).
- ``depth_scale``: the divisor that turns PNG values into metres (1000 for NYU, 256 for KITTI).
- ``seg_fields``: an empty list; loading appends ``'gt_depth_map'`` so mmseg's geometric transforms
  (``RandomFlip``, ``RandomCrop``, ``Resize``) move the depth map with the image.

The file list is checked when it is built (``full_init``, i.e. at construction unless ``lazy_init``):
a missing folder, split file or listed file, a malformed split line or an empty split raises
:class:`~.seg.DatasetError` with a one-line message naming the path, before any training starts.
"""
from __future__ import annotations

import logging
import math
import os.path as osp
from typing import ClassVar

from mmengine import fileio
from mmseg.datasets import BaseSegDataset

from ..registry import DATASETS
from .errors import DatasetError

logger = logging.getLogger(__name__)

NYU_FOCAL = 518.8579
"""NYU-Depth-v2's focal length in pixels (Kinect RGB camera, 480x640), as in the BTS split files."""
NYU_DEPTH_SCALE = 1000.0
KITTI_DEPTH_SCALE = 256.0
_NO_GT = 'None'


def _check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is a finite number > 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f'{name} must be a positive number, got {value!r}')
    return float(value)


class _DepthDataset(BaseSegDataset):
    """Common part: metainfo, data-info layout and the up-front file checks.

    Subclasses implement :meth:`_list_samples`, returning data infos built by :meth:`_info`.

    Args:
        depth_scale: PNG value / ``depth_scale`` = metres.
        **kwargs: ``BaseSegDataset`` options (``data_root``, ``pipeline``, ``test_mode``, ``lazy_init``...).
    """
    METAINFO: ClassVar[dict] = {'classes': ('depth',), 'palette': [[255, 255, 255]]}

    def __init__(self, *, depth_scale: float, **kwargs) -> None:
        self.depth_scale = _check_positive('depth_scale', depth_scale)
        super().__init__(**kwargs)

    def _info(self, img_path: str, depth_map_path: str | None, focal: float) -> dict:
        return {'img_path': img_path, 'depth_map_path': depth_map_path, 'focal': float(focal),
                'depth_scale': self.depth_scale, 'seg_fields': []}

    def _list_samples(self) -> list[dict]:
        raise NotImplementedError

    def _exists(self, path: str) -> bool:
        return fileio.exists(path, backend_args=self.backend_args)

    def _check_folder(self, path: str, what: str, hint: str) -> None:
        if not fileio.isdir(path, backend_args=self.backend_args):
            raise DatasetError(f'{what} {path} does not exist (check {hint} in the config)')

    def load_data_list(self) -> list[dict]:
        """List the samples and check that every listed file exists.

        Raises:
            DatasetError: empty list, or a listed image / depth file missing (the first one is named).
        """
        data_list = self._list_samples()
        if not data_list:
            raise DatasetError(f'{type(self).__name__} found no samples (data_root {self.data_root})')
        for key, what in (('img_path', 'image'), ('depth_map_path', 'depth')):
            missing = [d[key] for d in data_list if d[key] is not None and not self._exists(d[key])]
            if missing:
                more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
                raise DatasetError(f'{what} file {missing[0]} is missing{more}')
        return data_list


def _read_split_file(path: str, backend_args: dict | None) -> list[tuple[str, str, float]]:
    """Parse "<rgb> <depth> <focal>" lines (blank lines skipped); leading '/' of paths dropped."""
    if not fileio.exists(path, backend_args=backend_args):
        raise DatasetError(f'split file {path} does not exist (check data_root / split_file in the config)')
    rows = []
    for num, line in enumerate(fileio.get_text(path, backend_args=backend_args).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DatasetError(f'{path} line {num}: expected "<rgb> <depth> <focal>", got {line.strip()!r}')
        try:
            focal = float(fields[2])
        except ValueError:
            focal = math.nan
        if not (math.isfinite(focal) and focal > 0):
            raise DatasetError(f'{path} line {num}: focal must be a positive number, got {fields[2]!r}')
        rows.append((fields[0].lstrip('/'), fields[1].lstrip('/'), focal))
    if not rows:
        raise DatasetError(f'split file {path} lists no samples')
    return rows


@DATASETS.register_module()
class NYUDepthDataset(_DepthDataset):
    """NYU-Depth-v2 in the BTS / Monocular-Depth-Estimation-Toolbox split-file layout.

    ``split_file`` lines are "<rgb> <depth> <focal>" with paths relative to ``data_root`` (a leading
    '/' is tolerated), e.g. "/bathroom/rgb_00045.jpg /bathroom/sync_depth_00045.png 518.8579".
    Depth PNGs are uint16 millimetres (``depth_scale`` 1000).

    Args:
        data_root: Folder holding the scene folders and the split files.
        split_file: Split file, relative to ``data_root`` (``'nyu_train.txt'``: 24,231 lines,
            ``'nyu_test.txt'``: 654).
        depth_scale: PNG value / ``depth_scale`` = metres.
        **kwargs: ``BaseSegDataset`` options (``pipeline``, ``test_mode``, ``lazy_init``, ``indices``...).
    """

    def __init__(self, data_root: str, *, split_file: str = 'nyu_test.txt',
                 depth_scale: float = NYU_DEPTH_SCALE, **kwargs) -> None:
        super().__init__(data_root=data_root, ann_file=split_file, depth_scale=depth_scale,
                         data_prefix={'img_path': '', 'depth_map_path': ''}, **kwargs)

    def _list_samples(self) -> list[dict]:
        self._check_folder(self.data_root, 'data_root', 'data_root')
        root = self.data_root
        return [self._info(osp.join(root, rgb), osp.join(root, depth), focal)
                for rgb, depth, focal in _read_split_file(self.ann_file, self.backend_args)]


@DATASETS.register_module()
class KITTIEigenDepthDataset(_DepthDataset):
    """KITTI in the Eigen split-file layout (BTS / Monocular-Depth-Estimation-Toolbox).

    ``split_file`` lines are "<rgb relative to img_dir> <GT relative to ann_dir, or 'None'> <focal>".
    GT PNGs are uint16 ``metres * 256`` with 0 = no measurement (``depth_scale`` 256). The official
    ``kitti_eigen_test.txt`` has 697 lines, 45 of them without GT: with ``skip_missing_gt=True`` (for
    evaluation: the 652 evaluated frames) those lines are dropped and the count is logged; with
    ``False`` they are kept with ``depth_map_path=None`` (predictions only, no metrics).

    Args:
        data_root: Folder holding ``img_dir``, ``ann_dir`` and the split files.
        split_file: Split file, relative to ``data_root``.
        img_dir: RGB folder (``input/<date>/<drive>/image_02/data/*.png``), relative to ``data_root``.
        ann_dir: GT folder (``gt_depth/<drive>/proj_depth/groundtruth/image_02/*.png``), relative to
            ``data_root``.
        skip_missing_gt: Drop lines whose GT is 'None' (else keep them with ``depth_map_path=None``).
        depth_scale: PNG value / ``depth_scale`` = metres.
        **kwargs: ``BaseSegDataset`` options.

    Attributes:
        num_missing_gt: Number of lines without GT in the split file (set when the list is built).
    """

    def __init__(self, data_root: str, *, split_file: str = 'kitti_eigen_test.txt', img_dir: str = 'input',
                 ann_dir: str = 'gt_depth', skip_missing_gt: bool = True,
                 depth_scale: float = KITTI_DEPTH_SCALE, **kwargs) -> None:
        if not isinstance(skip_missing_gt, bool):
            raise TypeError(f'skip_missing_gt must be True or False, got {skip_missing_gt!r}')
        self.skip_missing_gt = skip_missing_gt
        self.num_missing_gt = 0
        super().__init__(data_root=data_root, ann_file=split_file, depth_scale=depth_scale,
                         data_prefix={'img_path': img_dir, 'depth_map_path': ann_dir}, **kwargs)

    def _list_samples(self) -> list[dict]:
        img_dir, ann_dir = self.data_prefix['img_path'], self.data_prefix['depth_map_path']
        rows = _read_split_file(self.ann_file, self.backend_args)
        self._check_folder(img_dir, 'image folder', 'data_root / img_dir')
        self.num_missing_gt = sum(gt == _NO_GT for _, gt, _ in rows)
        if self.num_missing_gt == len(rows) and self.skip_missing_gt:
            raise DatasetError(f'split file {self.ann_file}: none of its {len(rows)} lines has ground truth')
        if self.num_missing_gt < len(rows):
            self._check_folder(ann_dir, 'ground-truth folder', 'data_root / ann_dir')
        if self.num_missing_gt:
            action = 'skipped' if self.skip_missing_gt else 'kept without ground truth'
            logger.info('%s: %d of %d lines have no ground truth (%s)', self.ann_file,
                        self.num_missing_gt, len(rows), action)
        return [self._info(osp.join(img_dir, rgb), None if gt == _NO_GT else osp.join(ann_dir, gt), focal)
                for rgb, gt, focal in rows if not (gt == _NO_GT and self.skip_missing_gt)]


@DATASETS.register_module()
class DepthFolderDataset(_DepthDataset):
    """Images and depth PNGs in two folders, paired by relative path and stem (searched recursively).

    ``img_dir/a/b.jpg`` pairs with ``depth_dir/a/b.png`` (with the default suffixes).

    Args:
        img_dir: Image folder, relative to ``data_root`` when that is given.
        depth_dir: Depth folder, relative to ``data_root`` when that is given.
        depth_scale: PNG value / ``depth_scale`` = metres (e.g. 1000 for millimetres, 256 for KITTI).
        focal: Focal length in pixels of every image.
        img_suffix: Image file suffix.
        depth_suffix: Depth file suffix.
        skip_missing_depth: Drop images without a depth file (the count is logged) instead of raising.
        **kwargs: ``BaseSegDataset`` options (``data_root``, ``pipeline``...).
    """

    def __init__(self, *, img_dir: str, depth_dir: str, depth_scale: float, focal: float,
                 img_suffix: str = '.jpg', depth_suffix: str = '.png', skip_missing_depth: bool = False,
                 **kwargs) -> None:
        self.focal = _check_positive('focal', focal)
        for name, value in (('img_suffix', img_suffix), ('depth_suffix', depth_suffix)):
            if not (isinstance(value, str) and value):
                raise ValueError(f'{name} must be a non-empty string such as ".png", got {value!r}')
        if not isinstance(skip_missing_depth, bool):
            raise TypeError(f'skip_missing_depth must be True or False, got {skip_missing_depth!r}')
        self.skip_missing_depth = skip_missing_depth
        super().__init__(img_suffix=img_suffix, seg_map_suffix=depth_suffix, depth_scale=depth_scale,
                         data_prefix={'img_path': img_dir, 'depth_map_path': depth_dir}, **kwargs)

    def _list_samples(self) -> list[dict]:
        img_dir, depth_dir = self.data_prefix['img_path'], self.data_prefix['depth_map_path']
        self._check_folder(img_dir, 'image folder', 'data_root / img_dir')
        self._check_folder(depth_dir, 'depth folder', 'data_root / depth_dir')
        names = sorted(fileio.list_dir_or_file(img_dir, list_dir=False, suffix=self.img_suffix,
                                               recursive=True, backend_args=self.backend_args))
        if not names:
            raise DatasetError(f'no *{self.img_suffix} images found under {img_dir}')
        pairs = [(osp.join(img_dir, n), osp.join(depth_dir, n[:-len(self.img_suffix)] + self.seg_map_suffix))
                 for n in names]
        missing = [(img, depth) for img, depth in pairs if not self._exists(depth)]
        if missing and not self.skip_missing_depth:
            more = f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''
            raise DatasetError(f'image {missing[0][0]} has no depth file {missing[0][1]}{more}; '
                               'set skip_missing_depth=True to drop such images')
        if missing:
            logger.info('%s: skipped %d of %d images without a depth file', img_dir, len(missing), len(pairs))
        skip = {img for img, _ in missing}
        return [self._info(img, depth, self.focal) for img, depth in pairs if img not in skip]


@DATASETS.register_module()
class NYUFolderDepthDataset(DepthFolderDataset):
    """NYU-Depth-v2 in mmseg's layout (``tools/dataset_converters/nyu.py``).

    Layout under ``data_root``: ``images/{train,test}/<scene>_<frame>.jpg`` and
    ``annotations/{train,test}/<scene>_<frame>.png`` (the converter drops the ``/rgb`` and
    ``/sync_depth`` of the BTS paths), uint16 millimetres. The layout has no focal column, so every
    image gets ``focal`` (NYU's 518.8579 px by default).

    Args:
        data_root: Folder holding ``images/`` and ``annotations/``.
        split: ``'train'`` or ``'test'``.
        focal: Focal length in pixels.
        depth_scale: PNG value / ``depth_scale`` = metres.
        img_suffix: Image suffix (mmseg: '.jpg').
        depth_suffix: Depth suffix (mmseg: '.png').
        skip_missing_depth: Drop images without a depth file instead of raising.
        **kwargs: ``BaseSegDataset`` options.
    """

    def __init__(self, data_root: str, *, split: str = 'test', focal: float = NYU_FOCAL,
                 depth_scale: float = NYU_DEPTH_SCALE, img_suffix: str = '.jpg', depth_suffix: str = '.png',
                 skip_missing_depth: bool = False, **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        super().__init__(data_root=data_root, img_dir=f'images/{split}', depth_dir=f'annotations/{split}',
                         depth_scale=depth_scale, focal=focal, img_suffix=img_suffix,
                         depth_suffix=depth_suffix, skip_missing_depth=skip_missing_depth, **kwargs)


__all__ = ['KITTI_DEPTH_SCALE', 'NYU_DEPTH_SCALE', 'NYU_FOCAL', 'DepthFolderDataset', 'KITTIEigenDepthDataset',
           'NYUDepthDataset', 'NYUFolderDepthDataset']


@DATASETS.register_module()
class SyntheticDepthDataset(NYUDepthDataset):
    """The embedded procedural scenes in NYU split-file layout, generated on first use.

    Images are ``SceneConfig().image_size`` (240 x 320) with metric depth in millimetres, so the
    NYU pipelines work without the fixed 480 x 640 crops.

    Args:
        data_root: Folder holding (or receiving) the ``nyu`` scene folders and split files.
        split: 'train' or 'test'.
        num_train: Training scenes to generate if the folder is absent.
        num_test: Test scenes to generate if the folder is absent.
        seed: Generator seed.
        scene: ``SceneConfig`` options.
        **kwargs: ``BaseSegDataset`` options (pipeline, ...).
    """

    def __init__(self, data_root: str = 'data/synthetic', *, split: str = 'train',
                 num_train: int = 400, num_test: int = 100, seed: int = 0,
                 scene: dict | None = None, **kwargs) -> None:
        from .synthetic_writers import ensure_generated
        from .synthetic_config import SceneConfig
        from .synthetic_writers import write_nyu
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        nyu_root = ensure_generated(
            osp.join(data_root, 'nyu'),
            lambda tmp: write_nyu(tmp, num_train=num_train, num_test=num_test,
                                  config=SceneConfig(**(scene or {})), seed=seed, progress=True),
            f'{num_train} + {num_test} synthetic depth scenes')
        super().__init__(data_root=nyu_root, split_file=f'nyu_{split}.txt', **kwargs)
