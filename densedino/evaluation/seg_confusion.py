"""``SegConfusionMetric``: the confusion matrix behind mmseg's ``IoUMetric``, kept for figures.

The matrix ``C`` is ``num_classes x num_classes``: **rows are ground-truth classes, columns
predicted classes**, and ``C[g, p]`` counts the pixels labelled ``g`` and predicted ``p``. It
counts exactly the pixels mmseg's ``IoUMetric`` counts (ground truth ``!= ignore_index``), so the
figures derived from it equal mmseg's: intersection ``I = diag(C)``, predicted area ``P`` = column
sums, labelled area ``L`` = row sums, ``IoU = I / (P + L - I)``, ``Acc = I / L`` and
``aAcc = sum(I) / sum(L)`` (:func:`iou_from_confusion`).
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import METRICS

#: Files :class:`SegConfusionMetric` writes into its ``output_dir``.
CONFUSION_FILE, PER_CLASS_IOU_FILE = 'confusion.npy', 'per_class_iou.json'


class ConfusionScores(NamedTuple):
    """Per-class IoU and accuracy and the overall pixel accuracy, all in percent (as mmseg
    reports them). ``iou[k]`` is NaN when class ``k`` is in neither ground truth nor prediction,
    ``acc[k]`` NaN when it is not in the ground truth, ``aacc`` NaN when no pixel was counted."""
    iou: np.ndarray
    acc: np.ndarray
    aacc: float


def iou_from_confusion(confusion: np.ndarray) -> ConfusionScores:
    """IoU and accuracy per class, and aAcc, of a confusion matrix (rows: ground truth).

    Args:
        confusion: ``(K, K)`` pixel counts, ``confusion[gt, pred]``.

    Returns:
        ``(iou, acc, aacc)`` in percent (a :class:`ConfusionScores`): ``iou = I / (P + L - I)``
        and ``acc = I / L`` per class (NaN where the denominator is 0), ``aacc = sum(I) /
        sum(L)``, with ``I`` the diagonal, ``P`` the column sums and ``L`` the row sums, as
        mmseg's ``IoUMetric`` computes them.

    Raises:
        ValueError: ``confusion`` is not a square 2-D matrix.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f'a confusion matrix must be square (K, K), got shape {confusion.shape}')
    intersect = np.diag(confusion)
    label, pred = confusion.sum(axis=1), confusion.sum(axis=0)
    union = label + pred - intersect
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, 100.0 * intersect / union, np.nan)
        acc = np.where(label > 0, 100.0 * intersect / label, np.nan)
    total = label.sum()
    aacc = float(100.0 * intersect.sum() / total) if total > 0 else math.nan
    return ConfusionScores(iou, acc, aacc)


def nan_mean(values: np.ndarray) -> float:
    """Mean of the finite values (mmseg's ``nanmean``); NaN, without a warning, if none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


@METRICS.register_module()
class SegConfusionMetric(BaseMetric):
    """Pixel confusion matrix of a segmentation evaluation, for per-class figures.

    It runs next to mmseg's ``IoUMetric`` in the same evaluator (which reports the headline mIoU)
    and reports nothing itself: :meth:`compute_metrics` returns an empty dict and keeps the
    summed matrix in ``self.confusion`` (``int64``, rows ground truth, columns prediction, see
    the module's docstring) and the class names in ``self.class_names``. With ``output_dir`` it
    also writes ``confusion.npy`` and ``per_class_iou.json`` there (class name -> IoU in percent,
    ``null`` for a class in neither ground truth nor prediction, plus ``"mIoU"`` (mean over the
    other classes) and ``"aAcc"``), each atomically, from rank 0 (where mmengine computes).

    Each image's matrix is stored sparsely (its non-zero cells), so gathering across ranks stays
    small for 150 classes, and the padded duplicates of a distributed sampler are dropped by
    mmengine as for any per-image result.

    Args:
        ignore_index: ground-truth value of pixels that are not counted.
        output_dir: folder for the two files; None writes nothing.
        collect_device: 'cpu' or 'gpu', where results are gathered across ranks.
        prefix: prefix of the reported keys (there are none; kept for mmengine).
    """

    default_prefix: str | None = ''

    def __init__(self, ignore_index: int = 255, output_dir: str | None = None,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = int(ignore_index)
        self.output_dir = output_dir
        self.confusion: np.ndarray | None = None
        self.class_names: list[str] = []

    @property
    def num_classes(self) -> int:
        """``len(dataset_meta['classes'])``; a one-line error when the metainfo is missing."""
        meta = self.dataset_meta or {}
        if not meta.get('classes'):
            raise ValueError('SegConfusionMetric needs dataset_meta with "classes" (set by the '
                             'evaluator from the dataset, or metric.dataset_meta = '
                             'dict(classes=...))')
        return len(meta['classes'])

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store each image's confusion matrix as ``(flat cell indices, counts)``.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: ``SegDataSample.to_dict()`` outputs with ``pred_sem_seg['data']`` and
                ``gt_sem_seg['data']``, label maps of shape ``(1, H, W)`` or ``(H, W)``.

        Raises:
            ValueError: (one line) a ground-truth label other than ``ignore_index``, or a
                prediction at a counted pixel, outside ``[0, num_classes)``; maps of different
                sizes.
        """
        k = self.num_classes
        for sample in data_samples:
            pred = _label_map(sample, 'pred_sem_seg')
            gt = _label_map(sample, 'gt_sem_seg')
            if pred.shape != gt.shape:
                raise ValueError(f'SegConfusionMetric: {_image_name(sample)}: prediction '
                                 f'{pred.shape} and ground truth {gt.shape} differ in size')
            counted = gt != self.ignore_index
            gt, pred = gt[counted], pred[counted]
            _check_range(gt, k, 'ground-truth label', sample, self.ignore_index)
            _check_range(pred, k, 'prediction', sample, self.ignore_index)
            cells = np.bincount(gt * k + pred, minlength=k * k)
            nonzero = np.flatnonzero(cells)
            self.results.append((nonzero.astype(np.int32), cells[nonzero].astype(np.int64)))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Sum the images' matrices into ``self.confusion`` and write the files if asked.

        Args:
            results: the ``(cells, counts)`` pairs stored by :meth:`process`, from all ranks.

        Returns:
            An empty dict: the reported figures are ``IoUMetric``'s.
        """
        k = self.num_classes
        confusion = np.zeros(k * k, dtype=np.int64)
        for cells, counts in results:
            np.add.at(confusion, cells, counts)
        self.confusion = confusion.reshape(k, k)
        self.class_names = [str(name) for name in self.dataset_meta['classes']]
        if self.output_dir:
            self._write(self.output_dir)
            print_log(f'SegConfusionMetric: confusion matrix of {len(results)} images and '
                      f'per-class IoU written to {self.output_dir}', logger='current')
        return {}

    def per_class_iou(self) -> dict[str, float | None]:
        """``per_class_iou.json``'s content: class name -> IoU (%) or None, ``mIoU``, ``aAcc``."""
        if self.confusion is None:
            raise RuntimeError('SegConfusionMetric.per_class_iou() before compute_metrics()')
        scores = iou_from_confusion(self.confusion)
        table: dict[str, float | None] = {
            name: _finite_or_none(value) for name, value in zip(self.class_names, scores.iou)}
        table['mIoU'] = _finite_or_none(nan_mean(scores.iou))
        table['aAcc'] = _finite_or_none(scores.aacc)
        return table

    def _write(self, folder: str) -> None:
        """Write ``confusion.npy`` and ``per_class_iou.json`` into ``folder`` atomically."""
        # engine pulls in the models package: import it only when files are written
        from ..engine.files import write_atomic, write_text_atomic

        os.makedirs(folder, exist_ok=True)

        def _save(tmp: str) -> None:
            with open(tmp, 'wb') as f:  # a file object: np.save adds no '.npy' to the name
                np.save(f, self.confusion)

        write_atomic(osp.join(folder, CONFUSION_FILE), _save)
        write_text_atomic(osp.join(folder, PER_CLASS_IOU_FILE),
                          json.dumps(self.per_class_iou(), indent=2) + '\n')


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _image_name(sample: Mapping) -> str:
    return str(sample.get('img_path', '<image without img_path>'))


def _label_map(sample: Mapping, key: str) -> np.ndarray:
    """``sample[key]['data']`` (a dict or ``PixelData``) as an int64 numpy array, ``(1, H, W)``
    maps as ``(H, W)``."""
    if key not in sample:
        raise KeyError(f'{_image_name(sample)}: data sample has no {key!r} (keys: '
                       f'{", ".join(sorted(sample))}); SegConfusionMetric needs pred_sem_seg '
                       'and gt_sem_seg')
    entry = sample[key]
    data = entry['data'] if isinstance(entry, Mapping) else entry.data
    if hasattr(data, 'detach'):
        data = data.detach().cpu().numpy()
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    return data.astype(np.int64, copy=False)


def _check_range(values: np.ndarray, k: int, what: str, sample: Mapping, ignore: int) -> None:
    """Raise a one-line ValueError naming the first value outside ``[0, k)``."""
    if values.size and (values.min() < 0 or values.max() >= k):
        bad = values[(values < 0) | (values >= k)][0]
        raise ValueError(f'SegConfusionMetric: {_image_name(sample)}: {what} {int(bad)} outside '
                         f'[0, num_classes={k}) (ignore_index={ignore})')
