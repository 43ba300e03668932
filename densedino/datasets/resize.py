"""``ResizeShortSideToMultiple``: Depth-Anything-V2's test-time resize (short side to a size, both
sides multiples of the patch size, aspect ratio kept). Distinct from mmseg's ``ResizeToMultiple``
(each side rounded up to a divisor), which keeps its name in densedino's scope.

mmcv's ``Resize`` can keep the aspect ratio or snap to a divisor, not both in one step with
Depth-Anything's rounding, so this transform does it. The rule is Depth-Anything-V2's
``Resize(keep_aspect_ratio=True, ensure_multiple_of=14, resize_method='lower_bound')``: one scale
``max(short_side / H, short_side / W)`` for both sides, each side rounded to the nearest multiple
(rounded up instead when that falls below ``short_side``). transformers' DPT image processor
differs for images smaller than ``short_side`` on both sides: it scales as little as possible and
brings the *long* side to the target.
"""
from __future__ import annotations

import math

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from ..registry import TRANSFORMS

INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')


def _to_multiple(value: float, multiple: int, min_value: int) -> int:
    """Nearest multiple of ``multiple`` (half to even, as numpy), rounded up if below
    ``min_value``."""
    out = round(value / multiple) * multiple
    if out < min_value:
        out = math.ceil(value / multiple) * multiple
    return int(out)


def resize_to_multiple_size(height: int, width: int, short_side: int, multiple: int
                            ) -> tuple[int, int]:
    """Output (height, width) of :class:`ResizeShortSideToMultiple` for an image of ``height x width``."""
    scale = max(short_side / height, short_side / width)
    return (_to_multiple(scale * height, multiple, short_side),
            _to_multiple(scale * width, multiple, short_side))


@TRANSFORMS.register_module()
class ResizeShortSideToMultiple(BaseTransform):
    """Resize the image so its short side is ``short_side`` and both sides are multiples of
    ``multiple``, keeping the aspect ratio (Depth-Anything-V2 evaluation and inference).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``, every key in ``seg_fields``
    (nearest). Added keys: ``scale_factor`` (w_scale, h_scale), ``keep_ratio``.

    Place it before annotation loading in a test pipeline so that the ground truth keeps its
    original size (predictions are resized back to it); where the annotation must be loaded
    first (KITTI's ``KBCrop`` cuts image and depth together), ``resize_annotations=False``
    leaves the seg fields at their size instead.

    Args:
        short_side: Target of the short side (518 for Depth-Anything-V2).
        multiple: Both output sides are multiples of it (the patch size, 14).
        interpolation: Image interpolation (Depth-Anything-V2: 'bicubic', OpenCV's INTER_CUBIC).
        to_float32: Resize a float32 copy of the image (as Depth-Anything-V2, which resizes the
            RGB image scaled to [0, 1]): no rounding or clipping of bicubic overshoot to uint8.
        resize_annotations: Resize the seg fields too (nearest); False keeps them at their size,
            the frame the evaluation scores in (``ori_shape``, where predictions return).
    """

    def __init__(self, short_side: int = 518, multiple: int = 14,
                 interpolation: str = 'bicubic', to_float32: bool = True,
                 resize_annotations: bool = True) -> None:
        super().__init__()
        if short_side <= 0 or multiple <= 0:
            raise ValueError(f'short_side and multiple must be positive, got short_side='
                             f'{short_side}, multiple={multiple}')
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of {INTERPOLATIONS}, got '
                             f'{interpolation!r}')
        self.short_side, self.multiple = short_side, multiple
        self.interpolation, self.to_float32 = interpolation, to_float32
        self.resize_annotations = resize_annotations

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        new_h, new_w = resize_to_multiple_size(h, w, self.short_side, self.multiple)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = mmcv.imresize(img, (new_w, new_h), interpolation=self.interpolation)
        for key in results.get('seg_fields', []) if self.resize_annotations else ():
            if key in results:
                results[key] = mmcv.imresize(results[key], (new_w, new_h),
                                             interpolation='nearest')
        results['img_shape'] = (new_h, new_w)
        results['scale_factor'] = (new_w / w, new_h / h)
        results['keep_ratio'] = True
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(short_side={self.short_side}, multiple={self.multiple}, '
                f'interpolation={self.interpolation!r}, to_float32={self.to_float32})')
