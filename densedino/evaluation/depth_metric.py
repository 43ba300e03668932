"""``DenseDepthMetric``: dataset-level depth evaluation on mmengine's ``BaseMetric``."""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from prettytable import PrettyTable

from ..registry import METRICS
from .depth_align import check_align
from .depth_functional import (
    DEPTH_METRIC_KEYS,
    check_crop,
    check_depth_range,
    depth_metrics,
)

logger = logging.getLogger(__name__)
# Metainfo key of the model's (min_depth, max_depth) on each prediction, set by
# densedino.models.DinoDepthEstimator (evaluation does not import models).
DEPTH_RANGE_KEY = 'depth_range'
#: Set by DinoDepthEstimator on a relative head's predictions (disparity, not depth).
RELATIVE_KEY = 'relative_disparity'


@METRICS.register_module()
class DenseDepthMetric(BaseMetric):
    """Per-image depth metrics averaged over the images that have ground truth.

    Each image is scored with :func:`densedino.evaluation.depth_metrics` (prediction clamped to
    ``[min_depth, max_depth]``, valid pixels ``min_depth < gt < max_depth`` inside ``crop``), and
    the reported value of each metric is the mean over images with at least one valid pixel,
    which is the official NYUv2 / KITTI protocol (not a mean over pooled pixels). An image whose
    ground truth has no valid pixel is left out, with a warning naming its file (once per image
    and metric object), and counted in the log; when no image with ground truth has a valid pixel
    the evaluation raises instead of reporting NaN. Images without ground truth at all
    (predictions only) are skipped silently. ``silog`` is the toolbox / DINOv3 x100 convention,
    ``silog_mmseg`` the mmseg / Depth-Anything one (see ``depth_metrics``).

    The evaluation range is the model's by default: ``DinoDepthEstimator`` attaches its head's
    ``(min_depth, max_depth)`` to every prediction (metainfo ``depth_range``), so the configs state
    the range once, in ``model.decode_head``, and an override of it (``--cfg-options
    model.decode_head.max_depth=20``) moves the evaluation with it. Bounds given here replace the
    model's, e.g. to score a 20 m model on NYUv2's 10 m; they must lie inside the model's range
    (a model clamped at 10 m cannot be scored up to 80 m), else a one-line error names both.

    ``align`` scores predictions known only up to a transform (see
    :func:`densedino.evaluation.align_depth`), fitted per image on the scored pixels:
    ``'lstsq_disparity'`` takes the prediction as DISPARITY (a relative head's output, e.g.
    Depth-Anything-V2 relative), fits scale and shift to ``1 / gt`` by least squares and scores
    ``1 / clip(s * pred + t, 1 / max_depth, 1 / min_depth)``; ``'median'`` takes it as depth and
    scales it by ``median(gt) / median(pred)``. Relative models attach no ``depth_range``, so with
    ``align`` the evaluator gives ``min_depth`` and ``max_depth``; a prediction without a range and
    an evaluator without one stops with a one-line error that names ``align='lstsq_disparity'``
    (with a range given, a prediction without ``depth_range`` is scored as metric depth, as for any
    model other than ``DinoDepthEstimator``). ``'lstsq_disparity'`` on a metric model's prediction
    (it carries ``depth_range``: its output is depth, not disparity) is refused; with ``'median'``
    the evaluator's range may reach beyond the model's, since the prediction is rescaled anyway.

    Args:
        min_depth: lower evaluation bound in metres (> 0), e.g. 1e-3; None: the model's.
        max_depth: upper evaluation bound in metres, e.g. 10 (NYUv2) or 80 (KITTI); None: the
            model's. Give both or neither.
        crop: None or one of ``DEPTH_CROPS`` ('nyu_eigen', 'kitti_garg', 'kitti_eigen').
        align: None (score predictions as metric depth), 'lstsq_disparity' (relative models) or
            'median' (scale-invariant scoring of metric depth).
        metrics: names to report, a subset of ``DEPTH_METRIC_KEYS``; None reports all.
        collect_device: 'cpu' or 'gpu', where results are gathered across ranks.
        prefix: prefix of the reported keys, e.g. 'nyu' gives 'nyu/d1'.
        output_dir: also write each prediction as a uint16 PNG ``round(depth * output_scale)``
            (``tools/test.py --out``), at the image's path relative to ``data_root`` (KITTI's
            frame names repeat across drives), or named after the image when it is not under
            ``data_root``. Images without ground truth are written too.
        data_root: the dataset's root, for the output paths.
        output_scale: PNG value per metre; 256 is KITTI's benchmark format (4 mm steps up to
            256 m), 1000 NYU's millimetres (up to 65 m).
    """

    # '' (not None): keys stay unprefixed like mmseg's metrics, without BaseMetric's warning
    default_prefix: str | None = ''

    def __init__(self, *, min_depth: float | None = None, max_depth: float | None = None,
                 crop: str | None = None, align: str | None = None,
                 metrics: str | Sequence[str] | None = None,
                 collect_device: str = 'cpu', prefix: str | None = None,
                 output_dir: str | None = None, output_scale: float = 256.0,
                 data_root: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not output_scale > 0:
            raise ValueError(f'DenseDepthMetric output_scale must be > 0, got {output_scale}')
        self.output_dir, self.output_scale = output_dir, float(output_scale)
        self.data_root = data_root
        if (min_depth is None) != (max_depth is None):
            raise ValueError('DenseDepthMetric: give both min_depth and max_depth, or neither '
                             f'(to evaluate in the model\'s range), got min_depth={min_depth!r}, '
                             f'max_depth={max_depth!r}')
        if min_depth is not None:
            check_depth_range(min_depth, max_depth)
            min_depth, max_depth = float(min_depth), float(max_depth)
        check_crop(crop)
        try:
            check_align(align)
        except ValueError as err:
            raise ValueError(f'DenseDepthMetric: {err}') from None
        self.min_depth, self.max_depth, self.crop = min_depth, max_depth, crop
        self.align = align
        # the range the last image was scored in (the configured one, or the model's)
        self._used_range: tuple[float, float] | None = None
        self.metrics = self._check_metric_names(metrics)
        self._warned: set[str] = set()

    @staticmethod
    def _check_metric_names(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
        if metrics is None:
            return DEPTH_METRIC_KEYS
        names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        unknown = [name for name in names if name not in DEPTH_METRIC_KEYS]
        if unknown or not names:
            raise ValueError(f'DenseDepthMetric metrics={metrics!r}: unknown or empty; choose '
                             f'from {", ".join(DEPTH_METRIC_KEYS)}')
        return names

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Score each sample and store ``{metric: float, 'n_valid': int, 'has_gt': 0 or 1}``.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: ``SegDataSample.to_dict()`` outputs, with ``pred_depth_map['data']``
                and ``gt_depth_map['data']`` of shape ``(1, H, W)`` in metres (gt 0 = no
                measurement).

        Raises:
            KeyError: a sample lacks ``pred_depth_map``. Samples without ``gt_depth_map`` are
            counted as skipped.
            ValueError: prediction and ground truth differ in size.
        """
        for sample in data_samples:
            pred = _depth_map(sample, 'pred_depth_map')
            if self.output_dir:
                self._write(sample, pred)
            if 'gt_depth_map' not in sample:  # e.g. KITTI lines without GT: predictions only
                self.results.append({**{k: math.nan for k in self.metrics}, 'n_valid': 0,
                                     'has_gt': 0})
                continue
            gt = _depth_map(sample, 'gt_depth_map')
            lo, hi = self._used_range = self._range_for(sample)
            try:
                scores = depth_metrics(pred, gt, min_depth=lo, max_depth=hi, crop=self.crop,
                                       align=self.align)
            except ValueError as err:
                raise ValueError(f'{_image_name(sample)}: {err}') from None
            if scores['n_valid'] == 0:
                self._warn_no_valid_pixel(sample)
            self.results.append({**{k: scores[k] for k in self.metrics},
                                 'n_valid': scores['n_valid'], 'has_gt': 1})

    def _range_for(self, sample: Mapping) -> tuple[float, float]:
        """The configured range, else the model's (``depth_range``), checked against each other.

        Raises:
            ValueError: (one line) no range anywhere (naming ``align='lstsq_disparity'``, as a
                relative model is the usual cause), a configured one outside the model's, or
                ``align='lstsq_disparity'`` on a metric model's prediction.
        """
        model_range = sample.get(DEPTH_RANGE_KEY)
        if sample.get(RELATIVE_KEY) and self.align != 'lstsq_disparity':
            raise ValueError(f'DenseDepthMetric: {_image_name(sample)} comes from a relative model '
                             "(its output is disparity up to scale and shift): set "
                             "align='lstsq_disparity' and the evaluator's min_depth / max_depth")
        if model_range is not None and self.align == 'lstsq_disparity':
            raise ValueError(f"DenseDepthMetric align='lstsq_disparity' takes predictions as "
                             f'disparity, but {_image_name(sample)} comes from a metric model '
                             f'(depth_range {model_range[0]:g}-{model_range[1]:g} m): use '
                             "align='median' or None")
        if self.min_depth is None:
            if model_range is None:
                raise ValueError(self._no_range_message(sample))
            lo, hi = (float(v) for v in model_range)
            check_depth_range(lo, hi)
            return lo, hi
        if model_range is not None and self.align is None and not (
                model_range[0] <= self.min_depth < self.max_depth <= model_range[1]):
            raise ValueError(f'DenseDepthMetric evaluates {self.min_depth:g}-{self.max_depth:g} m '
                             f'but the model predicts {model_range[0]:g}-{model_range[1]:g} m '
                             '(model.decode_head.min_depth / max_depth): drop the evaluator\'s '
                             'min_depth / max_depth to evaluate in the model\'s range')
        return self.min_depth, self.max_depth

    def _no_range_message(self, sample: Mapping) -> str:
        """The one-line error for a prediction without ``depth_range`` and no configured range."""
        if self.align is None:
            return (f'DenseDepthMetric: {_image_name(sample)} carries no depth range (a relative '
                    'model, whose output is disparity, or a model other than DinoDepthEstimator): '
                    'give the evaluator min_depth and max_depth, and for a relative model set '
                    "align='lstsq_disparity'")
        return (f'DenseDepthMetric align={self.align!r} needs the evaluator\'s min_depth and '
                f'max_depth: {_image_name(sample)} carries no depth range (a relative model)')

    def _range_text(self) -> str:
        lo, hi = self._used_range or (self.min_depth, self.max_depth)
        if lo is None:
            return f"the model's depth range inside crop {self.crop}"
        return f'{lo:g} m < gt < {hi:g} m inside crop {self.crop}'

    def _warn_no_valid_pixel(self, sample: Mapping) -> None:
        name = str(sample.get('depth_map_path') or _image_name(sample))
        if name not in self._warned:
            self._warned.add(name)
            logger.warning('DenseDepthMetric: ground truth %s has no valid pixel (%s); the image '
                           'is left out of the metrics (check the file and depth_scale)',
                           name, self._range_text())

    def _write(self, sample: Mapping, pred: Any) -> None:
        import os

        import cv2
        import numpy as np
        depth = pred.detach().float().cpu().numpy() if hasattr(pred, 'detach') else pred
        depth = np.asarray(depth, dtype=np.float64).reshape(np.shape(depth)[-2:])
        png = np.clip(np.round(depth * self.output_scale), 0, 65535).astype(np.uint16)
        image = _image_name(sample)
        rel = os.path.basename(image)
        if self.data_root:
            candidate = os.path.relpath(os.path.abspath(image), os.path.abspath(self.data_root))
            if not candidate.startswith('..'):
                rel = candidate
        path = os.path.join(self.output_dir, os.path.splitext(rel)[0] + '.png')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not cv2.imwrite(path, png):
            raise OSError(f'cannot write prediction {path}')

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Mean of each metric over the images with at least one valid pixel.

        Args:
            results: the per-image dicts stored by :meth:`process`, gathered from all ranks.

        Returns:
            ``{name: mean}`` for the configured metric names; NaN values only when no image has
            ground truth at all (predictions only, e.g. KITTI test lines without it).

        Raises:
            ValueError: images with ground truth were evaluated but none has a valid pixel
                (all-zero depth maps, a wrong ``depth_scale`` or range).
        """
        scored = [r for r in results if r['n_valid'] > 0]
        with_gt = sum(r.get('has_gt', 1) for r in results)
        if with_gt and not scored:
            raise ValueError(f'DenseDepthMetric: none of the {with_gt} images with ground truth '
                             f'has a valid pixel ({self._range_text()}); the depth maps are all '
                             'zero or out of range: check them (tools/check_dataset.py CONFIG), '
                             'their depth_scale and min_depth / max_depth')
        print_log(f'DenseDepthMetric: {len(scored)} images evaluated, '
                  f'{len(results) - len(scored)} skipped ({with_gt - len(scored)} without a valid '
                  f'pixel: {self._range_text()}; {len(results) - with_gt} without ground truth)'
                  + (f', aligned per image: {self.align}' if self.align else ''),
                  logger='current')
        means = {k: math.fsum(r[k] for r in scored) / len(scored) if scored else math.nan
                 for k in self.metrics}
        print_log('\n' + _table(means), logger='current')
        return means


def _image_name(sample: Mapping) -> str:
    return str(sample.get('img_path', '<image without img_path>'))


def _depth_map(sample: Mapping, key: str) -> Any:
    """``sample[key]['data']``, accepting a dict or a ``PixelData`` under ``key``."""
    if key not in sample:
        raise KeyError(f'{_image_name(sample)}: data sample has no {key!r} (keys: '
                       f'{", ".join(sorted(sample))}); DenseDepthMetric needs pred_depth_map '
                       'and gt_depth_map')
    entry = sample[key]
    return entry['data'] if isinstance(entry, Mapping) else entry.data


def _table(values: dict[str, float]) -> str:
    """The metrics as a one-row table (5 decimals), drawn as mmseg's IoUMetric draws its own."""
    table = PrettyTable(field_names=list(values))
    table.add_row([f'{value:.5f}' for value in values.values()])
    table.align = 'r'
    return table.get_string()
