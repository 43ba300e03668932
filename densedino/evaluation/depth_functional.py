"""Monocular-depth metrics for one image: pure float64 arithmetic, no state, no logging.

The protocol follows the BTS / Monocular-Depth-Estimation-Toolbox evaluation that DINOv2 and
DINOv3 report: clamp the prediction to ``[min_depth, max_depth]``, keep pixels whose ground
truth lies strictly inside ``(min_depth, max_depth)`` and inside an optional benchmark crop,
compute each metric over those pixels. Relative (affine-invariant) predictions are optionally
aligned per image first (``align``, see :func:`align_depth`). Dataset-level numbers are the mean
of the per-image values (see :class:`densedino.evaluation.DenseDepthMetric`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .depth_align import check_align, disparity_to_depth, fit_scale_shift, median_scale

DEPTH_CROPS = ('nyu_eigen', 'kitti_garg', 'kitti_eigen')
DEPTH_METRIC_KEYS = ('d1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'silog',
                     'silog_mmseg')
#: The depth errors, where a smaller value is better (the d1-d3 accuracies and the segmentation
#: figures are better larger); the sweep metric and the benchmark figures rank by it.
LOWER_IS_BETTER = frozenset(DEPTH_METRIC_KEYS) - {'d1', 'd2', 'd3'}

# Fractions of the image height / width bounding the KITTI crops (Garg et al. 2016, Eigen et al.
# 2014), as written in the BTS / toolbox evaluation code.
_KITTI_COLS = (0.03594771, 0.96405229)
_KITTI_ROWS = {'kitti_garg': (0.40810811, 0.99189189), 'kitti_eigen': (0.3324324, 0.91351351)}
_NYU_SHAPE = (480, 640)
_NYU_BOX = (45, 471, 41, 601)  # top, bottom, left, right of the Eigen crop on 480x640 NYUv2


def check_crop(crop: str | None) -> None:
    """Raise a ``ValueError`` unless ``crop`` is None or one of :data:`DEPTH_CROPS`."""
    if crop is not None and crop not in DEPTH_CROPS:
        raise ValueError(f'unknown depth crop {crop!r}; valid crops are None, '
                         + ', '.join(repr(c) for c in DEPTH_CROPS))


def check_depth_range(min_depth: float, max_depth: float) -> None:
    """Raise a ``ValueError`` unless ``0 < min_depth < max_depth`` (log metrics need > 0)."""
    if not (isinstance(min_depth, (int, float)) and isinstance(max_depth, (int, float))
            and 0 < min_depth < max_depth):
        raise ValueError(f'depth range needs 0 < min_depth < max_depth, got min_depth={min_depth!r}'
                         f', max_depth={max_depth!r}')


def _crop_box(shape: tuple[int, int], crop: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a benchmark crop on an ``H x W`` ground-truth map."""
    height, width = shape
    if crop == 'nyu_eigen':
        if (height, width) != _NYU_SHAPE:
            raise ValueError(f"crop 'nyu_eigen' is defined for 480x640 NYUv2 ground truth only, "
                             f'got {height}x{width}')
        return _NYU_BOX
    rows = _KITTI_ROWS[crop]
    return (int(rows[0] * height), int(rows[1] * height), int(_KITTI_COLS[0] * width),
            int(_KITTI_COLS[1] * width))


def crop_mask(shape: Sequence[int], crop: str | None) -> np.ndarray:
    """Boolean mask of the pixels a benchmark crop keeps.

    Args:
        shape: ``(H, W)`` of the ground-truth map.
        crop: None (keep everything) or one of :data:`DEPTH_CROPS`:
            ``'nyu_eigen'`` rows 45:471, cols 41:601 (480x640 only);
            ``'kitti_garg'`` rows int(0.40810811 H):int(0.99189189 H),
            cols int(0.03594771 W):int(0.96405229 W);
            ``'kitti_eigen'`` rows int(0.3324324 H):int(0.91351351 H), same cols.

    Returns:
        ``(H, W)`` bool array, True inside the crop.

    Raises:
        ValueError: unknown crop, a shape that is not 2-D, or ``'nyu_eigen'`` on a size other
            than 480x640.
    """
    check_crop(crop)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f'crop_mask needs an (H, W) shape, got {shape}')
    if crop is None:
        return np.ones(shape, dtype=bool)
    top, bottom, left, right = _crop_box(shape, crop)
    mask = np.zeros(shape, dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def _as_float64_map(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """An ``(H, W)`` or ``(1, H, W)`` array / tensor as a float64 ``(H, W)`` numpy copy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to('cpu', torch.float64).numpy()
    x = np.array(x, dtype=np.float64)  # always a copy: callers' arrays are never modified
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    return x


def _nan_metrics() -> dict[str, float]:
    return {**{key: math.nan for key in DEPTH_METRIC_KEYS}, 'n_valid': 0}


def depth_metrics(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *,
                  min_depth: float, max_depth: float, crop: str | None = None,
                  align: str | None = None) -> dict[str, float]:
    """Standard monocular-depth metrics of one prediction against its ground truth.

    Steps (BTS / toolbox protocol): with ``align`` set, the prediction is first aligned to the
    ground truth (see :func:`align_depth`); the prediction is clamped to ``[min_depth,
    max_depth]`` (NaN and -inf become ``min_depth``, +inf becomes ``max_depth``); valid pixels are
    those with ``min_depth < gt < max_depth`` (so 0 = "no measurement" and NaN are excluded) inside
    ``crop``; every metric is computed over the valid pixels in float64. With
    ``e = ln(pred) - ln(gt)``:

    - ``d1``, ``d2``, ``d3``: fraction with ``max(gt / pred, pred / gt) < 1.25 ** k`` (strict).
    - ``abs_rel``: mean ``|gt - pred| / gt``; ``sq_rel``: mean ``(gt - pred) ** 2 / gt``.
    - ``rmse``: ``sqrt(mean((gt - pred) ** 2))`` in metres; ``rmse_log``: ``sqrt(mean(e ** 2))``.
    - ``log10``: mean ``|log10(gt) - log10(pred)|``.
    - ``silog``: ``100 * sqrt(mean(e ** 2) - mean(e) ** 2)``, the BTS /
      Monocular-Depth-Estimation-Toolbox / DINOv2 / DINOv3 convention (x100, full mean removed).
    - ``silog_mmseg``: ``sqrt(mean(e ** 2) - 0.5 * mean(e) ** 2)``, the convention of mmseg's
      ``DepthMetric`` and Depth-Anything (not x100, half the mean removed; the sign of ``e``
      does not matter to either formula).
    - ``n_valid``: the number of valid pixels (an int).

    Both silog variants are evaluated in the algebraically identical forms ``var(e)`` and
    ``var(e) + 0.5 * mean(e) ** 2``, which cannot go slightly negative by cancellation.

    Args:
        pred: predicted depth in metres (disparity with ``align='lstsq_disparity'``), ``(H, W)``
            or ``(1, H, W)``, numpy array or tensor.
        gt: ground-truth depth in metres, same size as ``pred``; values outside
            ``(min_depth, max_depth)`` mean "no measurement".
        min_depth: lower evaluation bound (> 0), e.g. 1e-3.
        max_depth: upper evaluation bound, e.g. 10 (NYUv2) or 80 (KITTI).
        crop: None or one of :data:`DEPTH_CROPS` (see :func:`crop_mask`).
        align: None (score the prediction as it is), ``'lstsq_disparity'`` or ``'median'``.

    Returns:
        The keys of :data:`DEPTH_METRIC_KEYS` as floats plus ``n_valid``. An image with no valid
        pixel returns NaN for every metric and ``n_valid == 0``.

    Raises:
        ValueError: ``pred`` and ``gt`` differ in size (the model, not the metric, resizes), a
            map that is not ``(H, W)`` / ``(1, H, W)``, a bad depth range, crop or alignment.
    """
    check_align(align)
    pred_np, gt_np, valid = _prepare(pred, gt, min_depth, max_depth, crop)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return _nan_metrics()
    if align is not None:
        pred_np = _aligned(pred_np, gt_np, valid, align, min_depth, max_depth)
    # as BTS eval: NaN -> min, +inf -> max, then clip (which also sends -inf to min)
    pred_np = np.clip(np.nan_to_num(pred_np, nan=min_depth, posinf=max_depth, neginf=min_depth),
                      min_depth, max_depth)
    return {**_pixel_metrics(pred_np[valid], gt_np[valid]), 'n_valid': n_valid}


def _prepare(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, min_depth: float,
             max_depth: float, crop: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked float64 ``(H, W)`` copies of both maps and the valid-pixel mask.

    Shared by the metrics and the alignment so that the pixels that fit a scale / shift are
    exactly the pixels that are scored.
    """
    check_depth_range(min_depth, max_depth)
    check_crop(crop)
    pred_np, gt_np = _as_float64_map(pred), _as_float64_map(gt)
    if pred_np.ndim != 2 or gt_np.ndim != 2:
        raise ValueError(f'depth maps must be (H, W) or (1, H, W), got prediction '
                         f'{tuple(pred.shape)} and ground truth {tuple(gt.shape)}')
    if pred_np.shape != gt_np.shape:
        raise ValueError(f'depth prediction of shape {tuple(pred.shape)} does not match ground '
                         f'truth of shape {tuple(gt.shape)}; resize the prediction to the ground '
                         'truth (H, W) before evaluation')
    valid = (gt_np > min_depth) & (gt_np < max_depth) & crop_mask(gt_np.shape, crop)
    return pred_np, gt_np, valid


def _fit_pixels(pred_np: np.ndarray, valid: np.ndarray, align: str) -> np.ndarray:
    """The valid pixels with a finite prediction: NaN / inf would poison a fit or a median."""
    usable = valid & np.isfinite(pred_np)
    if not usable.any():
        raise ValueError(f'align={align!r}: the prediction is not finite at any valid pixel')
    return usable


def _aligned(pred_np: np.ndarray, gt_np: np.ndarray, valid: np.ndarray, align: str,
             min_depth: float, max_depth: float) -> np.ndarray:
    """The whole prediction map aligned with the fit over ``valid`` (see :func:`align_depth`)."""
    usable = _fit_pixels(pred_np, valid, align)
    if align == 'median':
        return pred_np * median_scale(pred_np[usable], gt_np[usable])
    scale, shift = fit_scale_shift(pred_np[usable], 1.0 / gt_np[usable])
    return disparity_to_depth(scale * pred_np + shift, min_depth=min_depth, max_depth=max_depth)


def disparity_scale_shift(pred_disp: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor,
                          *, min_depth: float, max_depth: float,
                          crop: str | None = None) -> tuple[float, float]:
    """The ``(s, t)`` that ``align='lstsq_disparity'`` fits on one image.

    Least squares of ``s * pred_disp + t`` against ``1 / gt`` over the pixels that
    :func:`depth_metrics` scores (``min_depth < gt < max_depth`` inside ``crop``) where the
    prediction is finite, in float64 (:func:`densedino.evaluation.fit_scale_shift`).

    Raises:
        ValueError: no valid pixel with a finite prediction, or the checks of
            :func:`depth_metrics` (size, range, crop).
    """
    pred_np, gt_np, valid = _prepare(pred_disp, gt, min_depth, max_depth, crop)
    if not valid.any():
        raise ValueError('disparity_scale_shift: the ground truth has no valid pixel')
    usable = _fit_pixels(pred_np, valid, 'lstsq_disparity')
    return fit_scale_shift(pred_np[usable], 1.0 / gt_np[usable])


def align_depth(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *, align: str,
                min_depth: float, max_depth: float, crop: str | None = None) -> np.ndarray:
    """The prediction aligned to the ground truth per image, as a float64 ``(H, W)`` depth map.

    - ``'lstsq_disparity'`` (MiDaS / Depth-Anything relative protocol): ``pred`` is disparity
      (larger = nearer, any scale and shift); ``s, t`` minimise
      ``||s * pred + t - 1 / gt||^2`` over the valid pixels (:func:`disparity_scale_shift`), and
      the depth is ``1 / clip(s * pred + t, 1 / max_depth, 1 / min_depth)``, so every aligned
      depth lies in ``[min_depth, max_depth]`` (disparities <= 0 become ``max_depth``).
    - ``'median'`` ("scale-invariant", Monodepth2 / SfMLearner protocol): ``pred`` is depth,
      multiplied by ``median(gt) / median(pred)`` over the valid pixels; not clamped here
      (:func:`depth_metrics` clamps it like any prediction).

    The fit uses only the pixels that are scored (valid ground truth inside the crop, finite
    prediction), but the whole map is aligned, e.g. to be drawn.

    Raises:
        ValueError: unknown ``align`` (None is not an alignment here), no valid pixel, no finite
            prediction on them, a non-positive prediction median, or the checks of
            :func:`depth_metrics`.
    """
    if align is None:
        raise ValueError("align_depth needs align='lstsq_disparity' or 'median', got None")
    check_align(align)
    pred_np, gt_np, valid = _prepare(pred, gt, min_depth, max_depth, crop)
    if not valid.any():
        raise ValueError('align_depth: the ground truth has no valid pixel')
    return _aligned(pred_np, gt_np, valid, align, min_depth, max_depth)


def _pixel_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Metrics over 1-D float64 arrays of valid, positive depths."""
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    err_log = np.log(pred) - np.log(gt)
    mean_log, var_log = err_log.mean(), err_log.var()
    metrics = {f'd{k}': float((ratio < 1.25 ** k).mean()) for k in (1, 2, 3)}
    metrics.update(
        abs_rel=float(np.mean(np.abs(diff) / gt)),
        sq_rel=float(np.mean(diff ** 2 / gt)),
        rmse=float(np.sqrt(np.mean(diff ** 2))),
        rmse_log=float(np.sqrt(np.mean(err_log ** 2))),
        log10=float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        silog=float(100.0 * np.sqrt(var_log)),
        silog_mmseg=float(np.sqrt(var_log + 0.5 * mean_log ** 2)),
    )
    return metrics
