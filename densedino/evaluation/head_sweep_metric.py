"""Every head of a head sweep scored in one evaluation pass, and the best one named.

A head sweep's predictions carry each live head's result in ``head_preds`` (``{name:
PixelData}``; ``densedino.models.head_sweep``). :class:`HeadSweepMetric` runs one instance of
the wrapped metric (mmseg's ``IoUMetric``, ``DenseDepthMetric`` ...) per head on that head's
predictions, reports each figure as ``<head>/<metric>`` and, under the plain names, the figures
of the best head by ``rank_by`` (so ``save_best='mIoU'`` keeps the best head's best
checkpoint), and logs a table of all heads with the best marked.
"""
from __future__ import annotations

import logging
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..progress import logger_level
from ..registry import METRICS
from .depth_functional import LOWER_IS_BETTER

HEAD_PREDS = 'head_preds'  # the field HeadSweepMixin.predict fills
PRED_FIELDS = ('pred_sem_seg', 'pred_depth_map')


@METRICS.register_module()
class HeadSweepMetric(BaseMetric):
    """One ``metric`` per head of a head sweep, in one pass.

    Args:
        metric: Config of the metric every head is scored with (its ``output_dir``, if any,
            gets one sub-folder per head).
        rank_by: The figure the best head is chosen by (default: ``'mIoU'`` for segmentation,
            ``'rmse'`` for depth, from the predictions' kind); lower is better for
            :data:`LOWER_IS_BETTER`, higher for the rest.
        collect_device, prefix: As ``BaseMetric``.

    Raises:
        ValueError: predictions without ``head_preds`` (not a head sweep's), or ``rank_by``
            not among the wrapped metric's figures.
    """

    def __init__(self, metric: dict, rank_by: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(metric, dict) or 'type' not in metric:
            raise ValueError(f'HeadSweepMetric metric must be a metric config with a type, got '
                             f'{metric!r}')
        self.metric_cfg, self.rank_by = dict(metric), rank_by
        self._metrics: Dict[str, BaseMetric] = {}
        self.best: Optional[str] = None
        self.scores: Dict[str, Dict[str, float]] = {}

    def _metric(self, head: str) -> BaseMetric:
        if head not in self._metrics:
            cfg = dict(self.metric_cfg)
            if cfg.get('output_dir'):
                cfg['output_dir'] = osp.join(cfg['output_dir'], head)
            metric = METRICS.build(cfg)
            metric.dataset_meta = self.dataset_meta
            self._metrics[head] = metric
        return self._metrics[head]

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Hand each head's predictions to its metric; keep one ``{head: result}`` per image
        (mmengine trims the results to the dataset's size after gathering them)."""
        for sample in data_samples:
            preds = sample.get(HEAD_PREDS)
            if preds is None:
                raise ValueError("HeadSweepMetric: the predictions have no 'head_preds'; it "
                                 'scores a head sweep (HeadSweepSegmentor / '
                                 'HeadSweepDepthEstimator), use the plain metric otherwise')
            field = next((f for f in PRED_FIELDS if f in sample), PRED_FIELDS[0])
            per_head = {}
            for head, pred in preds.items():
                metric = self._metric(head)
                one = dict(sample)
                one.pop(HEAD_PREDS)
                one[field] = pred.to_dict() if hasattr(pred, 'to_dict') else pred
                metric.process(data_batch, [one])
                per_head[head] = metric.results.pop()
                metric.results.clear()
            self.results.append(per_head)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """``<head>/<figure>`` for every head, the best head's figures under the plain names."""
        by_head: Dict[str, list] = {}
        for per_head in results:
            for head, result in per_head.items():
                by_head.setdefault(head, []).append(result)
        # the wrapped metric's own tables, once per head, would drown the summary
        with logger_level(MMLogger.get_current_instance(), logging.WARNING):
            self.scores = {head: self._metric(head).compute_metrics(items)
                           for head, items in by_head.items()}
        if not self.scores:
            return {}
        key = self._rank_key()
        lower = key in LOWER_IS_BETTER
        finite = {h: s[key] for h, s in self.scores.items() if math.isfinite(s[key])}
        self.best = (min if lower else max)(finite, key=finite.get) if finite else None
        out = {f'{head}/{k}': v for head, s in self.scores.items() for k, v in s.items()}
        if self.best is not None:
            out.update(self.scores[self.best])
        self._log_table(key)
        return out

    def _rank_key(self) -> str:
        figures = next(iter(self.scores.values()))
        key = self.rank_by or ('mIoU' if 'mIoU' in figures else 'rmse')
        if key not in figures:
            raise ValueError(f'HeadSweepMetric rank_by={key!r} is not a figure of '
                             f'{self.metric_cfg["type"]}: {", ".join(figures)}')
        return key

    def _log_table(self, key: str) -> None:
        from prettytable import PrettyTable
        figures = list(next(iter(self.scores.values())))
        table = PrettyTable(['head', *figures, 'best'])
        for head, s in self.scores.items():
            table.add_row([head, *(f'{s[f]:.4g}' for f in figures),
                           '*' if head == self.best else ''])
        way = 'lowest' if key in LOWER_IS_BETTER else 'highest'
        best = (f'best head: {self.best} ({key} {self.scores[self.best][key]:.4g}, the {way})'
                if self.best else f'no head has a finite {key}')
        MMLogger.get_current_instance().info(f'head sweep, {len(self.scores)} heads:\n{table}\n'
                                             f'{best}')

