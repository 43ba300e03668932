"""Per-image alignment of a prediction to the ground truth before the depth metrics.

Relative models (Depth-Anything-V2 relative, MiDaS) predict disparity only up to an unknown scale
and shift, so their outputs are scored after a per-image least-squares fit of that scale and shift
in disparity space (the MiDaS / Depth-Anything protocol); metric models can be scored
"scale-invariantly" after median scaling (the Monodepth2 / SfMLearner protocol). The functions
here work on the 1-D float64 arrays of the valid pixels only, so that the pixels that fit the
alignment are exactly the pixels the metrics are computed on; masking, clamping and the choice of
protocol live in :func:`densedino.evaluation.depth_metrics`.
"""
from __future__ import annotations

import numpy as np

ALIGN_MODES = (None, 'lstsq_disparity', 'median')


def check_align(align: str | None) -> None:
    """Raise a one-line ``ValueError`` unless ``align`` is one of :data:`ALIGN_MODES`."""
    if align not in ALIGN_MODES:
        raise ValueError(f'unknown depth alignment align={align!r}; valid values are '
                         + ', '.join(repr(a) for a in ALIGN_MODES))


def fit_scale_shift(pred_disp: np.ndarray, target_disp: np.ndarray) -> tuple[float, float]:
    """Least-squares ``s, t`` minimising ``sum((s * pred_disp + t - target_disp) ** 2)``.

    The closed form of the 2x2 normal equations, written with centred sums
    (``s = cov(x, y) / var(x)``, ``t = mean(y) - s * mean(x)``): the same solution as the
    uncentred system, but without the cancellation that the raw sums of squares suffer when the
    disparities share a large offset, so a known scale and shift is recovered to ~1e-15.
    A prediction that is constant over the pixels (``var(x) == 0``, the system is singular)
    carries no information on the scale: ``s = 0``, ``t = mean(y)``, the best constant.

    Args:
        pred_disp: predicted disparity at the valid pixels, 1-D, finite.
        target_disp: ``1 / gt`` at the same pixels, 1-D.

    Returns:
        ``(s, t)`` as Python floats (float64 arithmetic).

    Raises:
        ValueError: the arrays differ in length or are empty.
    """
    x = np.asarray(pred_disp, dtype=np.float64).ravel()
    y = np.asarray(target_disp, dtype=np.float64).ravel()
    if x.size != y.size or x.size == 0:
        raise ValueError(f'fit_scale_shift needs two non-empty arrays of one length, got {x.size} '
                         f'and {y.size} values')
    x_mean, y_mean = x.mean(), y.mean()
    xc = x - x_mean
    var = float(np.dot(xc, xc))
    scale = float(np.dot(xc, y - y_mean)) / var if var > 0 else 0.0
    return scale, float(y_mean - scale * x_mean)


def disparity_to_depth(disp: np.ndarray, *, min_depth: float, max_depth: float) -> np.ndarray:
    """``1 / clip(disp, 1 / max_depth, 1 / min_depth)``: depth inside the evaluation range.

    The aligned disparity can be <= 0 (far pixels after a negative shift), where ``1 / disp`` has
    no meaning; clamping it to the range's disparities first (as Depth-Anything's and MiDaS'
    evaluations clamp the aligned disparity) maps those to ``max_depth`` instead. NaN stays NaN
    (``depth_metrics`` then sends it to ``min_depth``, as for any NaN prediction).
    """
    return 1.0 / np.clip(disp, 1.0 / max_depth, 1.0 / min_depth)


def median_scale(pred: np.ndarray, gt: np.ndarray) -> float:
    """``median(gt) / median(pred)`` over the valid pixels (1-D arrays of one length).

    Raises:
        ValueError: (one line) the prediction's median is not a positive finite number, where a
            scale cannot be fitted (e.g. an all-zero prediction).
    """
    pred_median = float(np.median(pred))
    if not (np.isfinite(pred_median) and pred_median > 0):
        raise ValueError(f"align='median' needs a positive prediction median over the valid "
                         f'pixels, got {pred_median!r}')
    return float(np.median(gt)) / pred_median
