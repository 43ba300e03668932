"""Depth transforms: load a 16-bit depth PNG as metres, the NYU and KITTI benchmark crops, rotation, colour.

The depth map lives in ``results['gt_depth_map']`` (float32 ``(H, W)`` metres, 0 = no measurement)
and is listed in ``results['seg_fields']``, so mmseg's geometric transforms move it with the image:
``RandomFlip``, ``RandomCrop`` and ``Resize`` (nearest neighbour for seg fields) of
``mmseg.datasets.transforms`` loop over ``seg_fields``; in the ``densedino`` scope those names
resolve to mmseg's classes. ``PackSegInputs`` packs it as ``data_samples.gt_depth_map`` (PixelData
``(1, H, W)``). The transforms here also treat every entry of ``seg_fields``, with nearest neighbour.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from ..registry import TRANSFORMS
from .errors import DatasetError
from .seg import check_same_size

DEPTH_KEY = 'gt_depth_map'
NYU_SHAPE = (480, 640)
NYU_BOX = (45, 472, 43, 608)  # rows 45:472, cols 43:608 (427x565), the crop of DINOv3 / the toolbox


def _shape_str(shape: tuple[int, ...]) -> str:
    return f'{shape[0]}x{shape[1]}'


def check_depth_format(path: str, channels: int, dtype: np.dtype) -> None:
    """Raise unless a depth file decodes to one integer channel of more than 8 bits (uint16 PNG).

    Args:
        path: The depth file, for the message.
        channels: Channels of the decoded array (``cv2.IMREAD_UNCHANGED``).
        dtype: Its dtype.

    Raises:
        DatasetError: several channels, a float dtype, or 8 bits (the message names the file).
    """
    dtype = np.dtype(dtype)
    if channels != 1:
        raise DatasetError(f'depth file {path} has {channels} channels; depth must be one channel')
    if dtype.kind not in 'ui':
        raise DatasetError(f'depth file {path} has dtype {dtype}; depth must be integer (uint16 PNG)')
    if dtype.itemsize == 1:
        raise DatasetError(f'depth file {path} is 8-bit; depth must be 16-bit (uint16 PNG)')


def _check_pair(name: str, value: tuple[float, float] | None, low: float) -> tuple[float, float] | None:
    """Return ``value`` as a float pair ``lo <= hi`` with ``lo >= low`` (or ``None``), else raise."""
    if value is None:
        return None
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok or not low <= value[0] <= value[1]:
        raise ValueError(f'{name} must be two numbers lo <= hi with lo >= {low}, got {value!r}')
    return float(value[0]), float(value[1])


def _check_prob(prob: float) -> float:
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
        raise ValueError(f'prob must be a number in [0, 1], got {prob!r}')
    return float(prob)


def _seg_keys(results: dict) -> list[str]:
    return [k for k in results.get('seg_fields', []) if results.get(k) is not None]


def _crop(results: dict, box: tuple[int, int, int, int], name: str) -> dict:
    """Crop ``img`` and every seg field to rows ``box[0]:box[1]``, cols ``box[2]:box[3]``.

    Sets ``ori_shape`` to the cropped size (so the model returns predictions at the ground
    truth's cropped size) and ``crop_box`` to the box. Load the depth before cropping.
    """
    y1, y2, x1, x2 = box
    shape = results['img'].shape[:2]
    for key in _seg_keys(results):
        if results[key].shape[:2] != shape:
            raise DatasetError(f'{name}: {key} is {_shape_str(results[key].shape)} but the image is '
                               f'{_shape_str(shape)} ({results.get("img_path")})')
        results[key] = results[key][y1:y2, x1:x2].copy()
    results['img'] = results['img'][y1:y2, x1:x2].copy()
    results['img_shape'] = results['img'].shape[:2]
    # The crop defines the frame predictions are returned and scored in (the ground truth is
    # cropped too), and drawings cut the same box out of the image file.
    results['ori_shape'] = results['img'].shape[:2]
    results['crop_box'] = (int(y1), int(y2), int(x1), int(x2))
    return results


@TRANSFORMS.register_module()
class LoadDepthAnnotation(BaseTransform):
    """Load a 16-bit depth PNG as float32 metres into ``results['gt_depth_map']``.

    Shadows mmseg's transform of the same name in the ``densedino`` scope (different arguments:
    the scale is a divisor and comes from the data info). The PNG is read with
    ``cv2.IMREAD_UNCHANGED`` and must be one integer channel of more than 8 bits (uint16);
    ``gt_depth_map = value / depth_scale`` (float32, 0 stays 0 = no measurement) and ``'gt_depth_map'``
    is appended to ``seg_fields``. When the image was loaded before (``LoadImageFromFile``), the depth
    map must have the image's original size (``ori_shape``, so a ``Resize`` placed before this
    transform leaves the depth map at full resolution, mmseg's test-time convention); ``ori_shape``
    alone (no ``img``) is checked too.

    ``depth_map_path=None`` (a KITTI test line without GT) loads nothing: the sample gets no
    ``gt_depth_map`` and serves predictions only.

    Required keys: ``depth_map_path``, ``depth_scale`` (unless given here). Added: ``gt_depth_map``,
    ``depth_scale``. Modified: ``seg_fields``.

    Args:
        depth_scale: Divisor overriding the data info's ``depth_scale`` (1000 for NYU mm, 256 for KITTI).
        backend_args: mmengine file backend arguments.

    Raises:
        DatasetError: missing, unreadable or corrupt file, not single-channel 16-bit, or a size
            different from the image's (the message names the files).
    """

    def __init__(self, depth_scale: float | None = None, backend_args: dict | None = None) -> None:
        super().__init__()
        number = isinstance(depth_scale, (int, float)) and not isinstance(depth_scale, bool)
        if depth_scale is not None and not (number and math.isfinite(depth_scale) and depth_scale > 0):
            raise ValueError(f'depth_scale must be a positive number or None, got {depth_scale!r}')
        self.depth_scale = None if depth_scale is None else float(depth_scale)
        self.backend_args = dict(backend_args) if backend_args else None

    def _read(self, path: str) -> np.ndarray:
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise DatasetError(f'depth file {path} does not exist') from None
        depth = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if depth is None:
            raise DatasetError(f'cannot decode depth file {path} (corrupt or not an image)')
        check_depth_format(path, 1 if depth.ndim == 2 else depth.shape[2], depth.dtype)
        return depth

    def transform(self, results: dict) -> dict:
        """Load ``results['depth_map_path']``; see the class docstring."""
        if 'depth_map_path' not in results:
            raise DatasetError('no depth_map_path in the data info (use a depth dataset)')
        path = results['depth_map_path']
        if path is None:
            return results
        scale = self.depth_scale if self.depth_scale is not None else results.get('depth_scale')
        if scale is None:
            raise DatasetError(f'no depth_scale for {path}: set it in the dataset or in LoadDepthAnnotation')
        depth = self._read(path)
        img_shape = results.get('ori_shape')
        if img_shape is None and 'img' in results:
            img_shape = results['img'].shape[:2]
        if img_shape is not None:
            check_same_size('depth', path, depth.shape, results.get('img_path'), img_shape)
        results[DEPTH_KEY] = depth.astype(np.float32) / np.float32(scale)
        results['depth_scale'] = float(scale)
        fields = results.setdefault('seg_fields', [])
        if DEPTH_KEY not in fields:
            fields.append(DEPTH_KEY)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(depth_scale={self.depth_scale}, backend_args={self.backend_args})'


@TRANSFORMS.register_module()
class NYUCrop(BaseTransform):
    """The fixed NYU crop: rows 45:472, cols 43:608 of a 480x640 image (427x565), on img and seg fields.

    The crop DINOv3's NYU depth training (and the Monocular-Depth-Estimation-Toolbox) applies
    before the random crop, removing the white border of the projected depth. Updates ``img_shape``.

    Raises:
        DatasetError: the image is not 480x640 (the message names it).
    """

    def transform(self, results: dict) -> dict:
        """Crop ``img`` and every seg field to the NYU box."""
        shape = results['img'].shape[:2]
        if tuple(shape) != NYU_SHAPE:
            raise DatasetError(f'NYUCrop needs 480x640 images, got {_shape_str(shape)} for '
                               f'{results.get("img_path")}')
        return _crop(results, NYU_BOX, 'NYUCrop')

    def __repr__(self) -> str:
        y1, y2, x1, x2 = NYU_BOX
        return f'{type(self).__name__}(rows={y1}:{y2}, cols={x1}:{x2})'


@TRANSFORMS.register_module()
class KBCrop(BaseTransform):
    """The KITTI benchmark crop: the bottom ``height`` rows and the centred ``width`` columns.

    ``top = H - height``, ``left = (W - width) // 2``; applied to img and every seg field; updates
    ``img_shape``. On KITTI's 375x1242 frames: rows 23:375, cols 13:1229.

    Args:
        height: Rows kept (352 on KITTI).
        width: Columns kept (1216 on KITTI).

    Raises:
        DatasetError: the image is smaller than ``height x width`` (the message names it).
    """

    def __init__(self, height: int = 352, width: int = 1216) -> None:
        super().__init__()
        for name, value in (('height', height), ('width', width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')
        self.height, self.width = height, width

    def transform(self, results: dict) -> dict:
        """Crop ``img`` and every seg field to the KB box."""
        h, w = results['img'].shape[:2]
        if h < self.height or w < self.width:
            raise DatasetError(f'KBCrop needs images of at least {self.height}x{self.width}, got {h}x{w} '
                               f'for {results.get("img_path")}')
        top, left = h - self.height, (w - self.width) // 2
        return _crop(results, (top, h, left, left + self.width), 'KBCrop')

    def __repr__(self) -> str:
        return f'{type(self).__name__}(height={self.height}, width={self.width})'


@TRANSFORMS.register_module()
class RandomDepthRotate(BaseTransform):
    """Rotate image and seg fields about the image centre by an angle uniform in ``[-max_angle, max_angle]``.

    Applied with probability ``prob``. The image is interpolated bilinearly; seg fields with nearest
    neighbour, so an invalid (0) depth never blends into valid ones. Pixels rotated in from outside
    get ``img_border_value`` in the image, 0 (no measurement) in ``gt_depth_map`` and
    ``seg_border_value`` in other seg fields. Sets ``results['rotate_angle']`` (degrees, 0 when skipped).

    Why not mmseg's ``RandomRotate``: for a given angle it rotates the same way (bilinear image,
    nearest seg fields), but it pads every seg field with one ``seg_pad_val``, so a pipeline that
    carries a depth map and a label map cannot fill the depth with 0 (no measurement) and the
    labels with 255 (ignore). Its random draws also differ from this transform's, and the seeded
    depth runs and tests were measured with these.

    Args:
        max_angle: Largest rotation in degrees (DINOv3's NYU recipe: 2.5).
        prob: Probability of rotating.
        img_border_value: Image fill value.
        seg_border_value: Fill value of seg fields other than ``gt_depth_map`` (255 = ignore).
    """

    def __init__(self, max_angle: float = 2.5, prob: float = 0.5, img_border_value: float = 0,
                 seg_border_value: int = 255) -> None:
        super().__init__()
        if isinstance(max_angle, bool) or not isinstance(max_angle, (int, float)) or not 0 <= max_angle <= 180:
            raise ValueError(f'max_angle must be a number of degrees in [0, 180], got {max_angle!r}')
        for name, value in (('img_border_value', img_border_value), ('seg_border_value', seg_border_value)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f'{name} must be a number, got {value!r}')
        self.max_angle, self.prob = float(max_angle), _check_prob(prob)
        self.img_border_value, self.seg_border_value = img_border_value, seg_border_value

    def _angle(self) -> float:
        if self.prob == 0 or np.random.rand() >= self.prob:
            return 0.0
        return float(np.random.uniform(-self.max_angle, self.max_angle))

    def transform(self, results: dict) -> dict:
        """Rotate ``img`` and every seg field by the same random angle."""
        angle = self._angle()
        results['rotate_angle'] = angle
        if angle == 0:
            return results
        h, w = results['img'].shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
        results['img'] = self._warp(results['img'], matrix, cv2.INTER_LINEAR, self.img_border_value)
        for key in _seg_keys(results):
            border = 0 if key == DEPTH_KEY else self.seg_border_value
            results[key] = self._warp(results[key], matrix, cv2.INTER_NEAREST, border)
        return results

    @staticmethod
    def _warp(array: np.ndarray, matrix: np.ndarray, interpolation: int, border: float) -> np.ndarray:
        h, w = array.shape[:2]
        channels = array.shape[2] if array.ndim == 3 else 1
        return cv2.warpAffine(array, matrix, (w, h), flags=interpolation, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(border,) * min(channels, 4))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_angle={self.max_angle}, prob={self.prob}, '
                f'img_border_value={self.img_border_value}, seg_border_value={self.seg_border_value})')


@TRANSFORMS.register_module()
class DepthColorJitter(BaseTransform):
    """Photometric augmentation of depth training: gamma, brightness and per-channel colour factors.

    With probability ``prob`` (BTS: 0.5), on the image scaled to [0, 1], in BTS's order:
    ``img ** gamma``, ``* brightness``, ``* color[c]`` per channel, clipped to [0, 1]. Each factor is
    uniform in its range; a range of ``None`` skips that step. DINOv3's NYU recipe uses brightness
    0.75-1.25 only; BTS adds gamma 0.9-1.1 and colour 0.9-1.1 (brightness 0.9-1.1 on KITTI). A uint8
    image stays uint8 (rounded); a float image is taken as 0-255 and stays float32. Depth is untouched.
    Sets nothing else.

    Args:
        brightness: Range of the brightness factor.
        gamma: Range of the gamma exponent, or ``None``.
        color: Range of the per-channel colour factors, or ``None``.
        prob: Probability of applying the jitter.
    """

    def __init__(self, brightness: tuple[float, float] | None = (0.75, 1.25),
                 gamma: tuple[float, float] | None = None, color: tuple[float, float] | None = None,
                 prob: float = 0.5) -> None:
        super().__init__()
        self.brightness = _check_pair('brightness', brightness, 0.0)
        self.gamma = _check_pair('gamma', gamma, 1e-3)
        self.color = _check_pair('color', color, 0.0)
        self.prob = _check_prob(prob)

    def transform(self, results: dict) -> dict:
        """Jitter ``results['img']`` (``(H, W, C)``) with probability ``prob``."""
        if self.prob == 0 or np.random.rand() >= self.prob:
            return results
        img = results['img']
        out = img.astype(np.float32) / 255.0
        if self.gamma is not None:
            out = out ** np.float32(np.random.uniform(*self.gamma))
        if self.brightness is not None:
            out = out * np.float32(np.random.uniform(*self.brightness))
        if self.color is not None:
            channels = out.shape[2] if out.ndim == 3 else 1
            factors = np.random.uniform(*self.color, size=channels).astype(np.float32)
            out = out * (factors if out.ndim == 3 else factors[0])
        out = np.clip(out, 0.0, 1.0) * 255.0
        results['img'] = np.round(out).astype(np.uint8) if img.dtype == np.uint8 else out.astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness={self.brightness}, gamma={self.gamma}, '
                f'color={self.color}, prob={self.prob})')


__all__ = ['DepthColorJitter', 'KBCrop', 'LoadDepthAnnotation', 'NYUCrop', 'RandomDepthRotate',
           'check_depth_format']
