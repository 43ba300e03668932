"""Writers that save procedural scenes in the ADE20K, NYU-Depth-v2 and KITTI folder layouts.

Each writer renders scenes with :class:`densedino.datasets.synthetic.SceneGenerator` and writes the
images, labels and split files that the real datasets' loaders expect.
"""
from __future__ import annotations

import logging
import math
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Iterator, Optional

import cv2
import numpy as np

from ..progress import progress_iter
from .synthetic import SceneGenerator
from .synthetic_config import SceneConfig, SceneSample

logger = logging.getLogger(__name__)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f'{name} must be a non-negative integer, got {value!r}')


def _write_rgb(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith('.jpg') else []
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
        raise OSError(f'could not write {path}')


def _write_png(path: str, array: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')


def _write_lines(path: str, lines: list[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.writelines(lines)


def _samples(gen: SceneGenerator, start: int, count: int, progress: bool,
             desc: str) -> Iterator[tuple[int, SceneSample]]:
    indices = range(start, start + count)
    return progress_iter(((i - start, gen.sample(i)) for i in indices), count, progress, desc)


def write_ade20k(root: str | os.PathLike, *, num_train: int, num_val: int,
                 config: SceneConfig | None = None, seed: int = 0, progress: bool = False) -> str:
    """Write scenes in the ADE20K (ADEChallengeData2016) folder layout and label convention.

    Layout under ``root/ADEChallengeData2016``::

        images/training/ADE_train_00000001.jpg ...       annotations/training/ADE_train_00000001.png ...
        images/validation/ADE_val_00000001.jpg ...       annotations/validation/ADE_val_00000001.png ...
        image_labels_training.txt, image_labels_validation.txt   ("<stem> <image_label>" per line)

    Label encoding: annotation value = class id + 1, so 1 = 'background', ..., 9 = 'pyramid', and 0
    (ADE's 'other', ignored) never occurs. With ``reduce_zero_label=True`` (ADE's setting) the
    labels become 0..8 = ``SYNTHETIC_CLASSES``. Load with mmseg's ``BaseSegDataset`` (img_suffix
    '.jpg', seg_map_suffix '.png', ``reduce_zero_label=True``, ``metainfo=dict(classes=SYNTHETIC_CLASSES,
    palette=SYNTHETIC_PALETTE)``), not ``ADE20KDataset``: it rejects classes outside ADE's 150.
    Training scenes are indices ``0..num_train-1`` of the generator, validation scenes the next
    ``num_val`` indices, so the splits never share a scene.

    Args:
        root: output folder (created if needed).
        num_train: number of training images.
        num_val: number of validation images.
        config: scene knobs; ``None`` uses ``SceneConfig()``.
        seed: generator seed.
        progress: show progress on stderr (a bar on a terminal, else a line per tenth).

    Returns:
        The dataset root ``root/ADEChallengeData2016``.
    """
    _check_count('num_train', num_train)
    _check_count('num_val', num_val)
    gen = SceneGenerator(config, seed=seed)
    data_root = os.path.join(os.fspath(root), 'ADEChallengeData2016')
    splits = (('training', 'train', 0, num_train), ('validation', 'val', num_train, num_val))
    for folder, prefix, start, count in splits:
        lines = []
        for i, sample in _samples(gen, start, count, progress, f'synthetic scenes, ADE20K layout, {folder}'):
            stem = f'ADE_{prefix}_{i + 1:08d}'
            _write_rgb(os.path.join(data_root, 'images', folder, stem + '.jpg'), sample.image)
            _write_png(os.path.join(data_root, 'annotations', folder, stem + '.png'), sample.seg + 1)
            lines.append(f'{stem} {sample.image_label}\n')
        _write_lines(os.path.join(data_root, f'image_labels_{folder}.txt'), lines)
    return data_root


def write_nyu(root: str | os.PathLike, *, num_train: int, num_test: int, config: SceneConfig | None = None,
              seed: int = 0, progress: bool = False, frames_per_scene: int = 50) -> str:
    """Write scenes in the NYU-Depth-v2 split-file layout (BTS / Monocular-Depth-Estimation-Toolbox).

    Layout under ``root``::

        train_0000/rgb_00000.jpg, train_0000/sync_depth_00000.png, ... (``frames_per_scene`` per folder)
        test_0000/rgb_00000.jpg, test_0000/sync_depth_00000.png, ...
        nyu_train.txt, nyu_test.txt
            lines "train_0000/rgb_00000.jpg train_0000/sync_depth_00000.png 259.4290"

    Depth PNGs are uint16 millimetres (depth = value / 1000, every pixel valid). Paths in the split
    files are relative to ``root`` without a leading slash; the focal is in pixels with 4 decimals.
    The images are ``config.image_size`` (not 480x640): switch the fixed Eigen crop off. Train
    scenes are generator indices ``0..num_train-1``, test scenes the next ``num_test``.

    Args:
        root: output folder (created if needed).
        num_train: number of training frames.
        num_test: number of test frames.
        config: scene knobs; ``None`` uses ``SceneConfig()``.
        seed: generator seed.
        progress: show a progress bar.
        frames_per_scene: frames per scene folder.

    Returns:
        ``root`` as a string (the ``data_root``).
    """
    _check_count('num_train', num_train)
    _check_count('num_test', num_test)
    if isinstance(frames_per_scene, bool) or not isinstance(frames_per_scene, int) or frames_per_scene < 1:
        raise ValueError(f'frames_per_scene must be a positive integer, got {frames_per_scene!r}')
    gen = SceneGenerator(config, seed=seed)
    root = os.fspath(root)
    for split, start, count in (('train', 0, num_train), ('test', num_train, num_test)):
        lines = []
        for i, sample in _samples(gen, start, count, progress, f'synthetic scenes, NYU layout, {split}'):
            scene = f'{split}_{i // frames_per_scene:04d}'
            rgb, depth = f'{scene}/rgb_{i:05d}.jpg', f'{scene}/sync_depth_{i:05d}.png'
            _write_rgb(os.path.join(root, rgb), sample.image)
            _write_png(os.path.join(root, depth), _encode_depth(sample.depth, 1000.0))
            lines.append(f'{rgb} {depth} {sample.focal:.4f}\n')
        _write_lines(os.path.join(root, f'nyu_{split}.txt'), lines)
    return root


def _encode_depth(depth: np.ndarray, scale: float) -> np.ndarray:
    """Metres to uint16 ``round(depth * scale)`` (0 stays 0 = invalid)."""
    return np.clip(np.round(depth * scale), 0, 65535).astype(np.uint16)


def _lidar_mask(sample: SceneSample, max_range: float, rng: np.random.Generator) -> np.ndarray:
    """Pixels hit by a simulated 64-beam LiDAR (HDL-64E-like: +2 to -24.8 degrees elevation).

    Beams are rows at ``cy - f tan(elevation)`` with a 1-pixel wobble. At low resolution, beams
    closer than 3 pixels are thinned out and each beam keeps 60% of the columns, so that GT stays
    sparse at any image size: about 6-12% of the pixels, all below a line just above the horizon.
    Returns at or beyond ``max_range`` (the sky / far wall) are dropped.
    """
    h, w = sample.depth.shape
    cy, f = sample.principal[1], sample.focal
    elevation = np.linspace(2.0, -24.8, 64)
    stride = max(1, math.ceil(3.0 / (f * math.tan(math.radians(elevation[0] - elevation[1])))))
    elevation = np.radians(elevation[::stride] + rng.uniform(-0.05, 0.05, len(elevation[::stride])))
    beams = len(elevation)
    wobble = rng.integers(-1, 2, size=(beams, w)) * (rng.random((beams, w)) < 0.3)
    rows = np.round(cy - f * np.tan(elevation)[:, None] + wobble).astype(np.int64)
    keep = (rng.random((beams, w)) < 0.6) & (rows >= 0) & (rows < h)
    mask = np.zeros((h, w), bool)
    mask[rows[keep], np.broadcast_to(np.arange(w), (beams, w))[keep]] = True
    return mask & (sample.depth < max_range)


def write_kitti(root: str | os.PathLike, *, num_train: int, num_test: int, config: SceneConfig | None = None,
                seed: int = 0, progress: bool = False, frames_per_drive: int = 100) -> str:
    """Write scenes in the KITTI Eigen-split layout (BTS / Monocular-Depth-Estimation-Toolbox).

    Layout under ``root``::

        input/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png
        gt_depth/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000000.png
        kitti_eigen_train.txt, kitti_eigen_test.txt   lines "<rgb under input/> <gt under gt_depth/> <focal>"

    Ground truth is uint16 ``round(metres * 256)`` with 0 = no measurement, and sparse like projected
    LiDAR (up to 64 beam rows from just above the horizon down, about 6-12% of the pixels). Drives hold
    ``frames_per_drive`` frames; test drives are numbered after the train drives. The default
    config is ``SceneConfig.outdoor()`` (176x608, 1-80 m), smaller than KITTI's 352x1216 KB crop:
    switch the KB crop off. Train frames are generator indices ``0..num_train-1``, test the next
    ``num_test``.

    Args:
        root: output folder (created if needed).
        num_train: number of training frames.
        num_test: number of test frames.
        config: scene knobs; ``None`` uses ``SceneConfig.outdoor()``.
        seed: generator seed (the LiDAR pattern is seeded from it too).
        progress: show a progress bar.
        frames_per_drive: frames per drive folder.

    Returns:
        ``root`` as a string (the ``data_root``; ``img_dir='input'``, ``ann_dir='gt_depth'``).
    """
    _check_count('num_train', num_train)
    _check_count('num_test', num_test)
    if isinstance(frames_per_drive, bool) or not isinstance(frames_per_drive, int) or frames_per_drive < 1:
        raise ValueError(f'frames_per_drive must be a positive integer, got {frames_per_drive!r}')
    config = config if config is not None else SceneConfig.outdoor()
    gen = SceneGenerator(config, seed=seed)
    root = os.fspath(root)
    first_test_drive = 1 + -(-num_train // frames_per_drive)
    splits = (('train', 0, num_train, 1), ('test', num_train, num_test, first_test_drive))
    for split, start, count, drive0 in splits:
        lines = []
        for i, sample in _samples(gen, start, count, progress, f'synthetic scenes, KITTI layout, {split}'):
            drive = f'2011_09_26_drive_{drive0 + i // frames_per_drive:04d}_sync'
            rgb = f'2011_09_26/{drive}/image_02/data/{i:010d}.png'
            gt = f'{drive}/proj_depth/groundtruth/image_02/{i:010d}.png'
            lidar = _lidar_mask(sample, config.depth_range[1], np.random.default_rng([seed, start + i, 1]))
            _write_rgb(os.path.join(root, 'input', rgb), sample.image)
            sparse = _encode_depth(np.where(lidar, sample.depth, 0), 256.0)
            _write_png(os.path.join(root, 'gt_depth', gt), sparse)
            lines.append(f'{rgb} {gt} {sample.focal:.4f}\n')
        _write_lines(os.path.join(root, f'kitti_eigen_{split}.txt'), lines)
    return root


__all__ = ['write_ade20k', 'write_nyu', 'write_kitti']


def ensure_synthetic_ade20k(data_root: str, *, num_train: int, num_val: int, seed: int = 0,
                            scene: Optional[dict] = None) -> str:
    """Generate the synthetic ADE20K-layout folder once; concurrent callers are safe.

    Returns:
        ``data_root/ADEChallengeData2016``.
    """
    target = osp.join(data_root, 'ADEChallengeData2016')
    return ensure_generated(
        target, lambda tmp: write_ade20k(tmp, num_train=num_train, num_val=num_val,
                                         config=SceneConfig(**(scene or {})), seed=seed,
                                         progress=True),
        f'{num_train} + {num_val} synthetic scenes')


def ensure_generated(target: str, write: Callable[[str], str], what: str) -> str:
    """Write a generated dataset folder once, atomically; concurrent callers are safe.

    Args:
        target: The finished folder. It counts as done when it holds a ``.complete`` marker.
        write: Writes the dataset under a temporary folder (its argument, a sibling of
            ``target``) and returns the folder that becomes ``target``.
        what: Description for the log line.

    Returns:
        ``target``.
    """
    if osp.isfile(osp.join(target, '.complete')):
        return target
    parent = osp.dirname(osp.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.synthetic-', dir=parent)
    logger.info('writing %s to %s', what, target)
    written = write(tmp)
    open(osp.join(written, '.complete'), 'w').close()
    try:
        os.rename(written, target)  # atomic; another process may have won the race
    except OSError:
        if not osp.isfile(osp.join(target, '.complete')):
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return target
