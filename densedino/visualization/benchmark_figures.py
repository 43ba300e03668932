"""Benchmark-suite figures: ours vs the papers per metric, the worst classes' IoU, and where
their pixels go (a row-normalised confusion matrix).

Each function draws one matplotlib figure in the shared style (:mod:`.style`: fonts from
:func:`matplotlib_style`, ``DEFAULT_DPI``, labelled colour bar), renders it with Agg (pyplot and
the caller's backend are left alone), writes it as a PNG and returns the path. Per-class figures
show the ``worst`` classes only, so they stay legible for ADE20K's 150 classes; long class and
entry names are shortened with '...'.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..evaluation.depth_functional import LOWER_IS_BETTER
from ..evaluation.seg_confusion import iou_from_confusion, nan_mean
from .style import DEFAULT_DPI, FONT_PT, MIN_FONT_PT, add_colorbar, matplotlib_style

#: Metrics where a larger value is better (segmentation in %, depth thresholds as fractions).
HIGHER_IS_BETTER = frozenset({'mIoU', 'aAcc', 'mAcc', 'mDice', 'mFscore', 'd1', 'd2', 'd3'})
UNITS = {'mIoU': '%', 'aAcc': '%', 'mAcc': '%', 'mDice': '%', 'mFscore': '%', 'rmse': 'm'}
OURS_COLOUR, PAPER_COLOUR, MEAN_COLOUR = 'tab:blue', '0.7', 'tab:red'
NAME_CHARS = 30  # longer class / entry names are shortened
BAR_INCHES = 0.26  # height per bar row of the bar charts
CELL_INCHES = 0.42  # side of one confusion-matrix cell (room for '100' at 9 pt)


def metric_axis_label(metric: str) -> str:
    """``'mIoU (%), higher is better'``, ``'rmse (m), lower is better'``; an unknown metric
    gets its name only. A prefix (``'nyu/rmse'``) is kept in the text but not in the lookup."""
    base = metric.rsplit('/', 1)[-1]
    unit = f' ({UNITS[base]})' if base in UNITS else ''
    if base in HIGHER_IS_BETTER:
        return f'{metric}{unit}, higher is better'
    if base in LOWER_IS_BETTER:
        return f'{metric}{unit}, lower is better'
    return f'{metric}{unit}'


def plot_suite_bars(rows: Sequence[Mapping], path: str, title: str | None = None) -> str:
    """Ours vs the paper's value for every suite entry, one panel per metric.

    Each panel has one row of two horizontal bars per entry (ours in colour, the paper's in
    grey), labelled with their values, in the order the entries come; its axis says whether
    higher or lower is better. An entry whose ``ours`` is None (skipped or failed) gets no bar:
    its ``status`` (``'no result'`` without one) is written in italics where the bar would be.
    A missing ``paper`` value leaves the grey bar out.

    Args:
        rows: ``dict(name=str, metric=str, ours=float | None, paper=float | None)``, optionally
            with ``status``.
        path: the PNG to write (folders are created).
        title: the figure's title; None for none.

    Returns:
        ``path``.

    Raises:
        ValueError: ``rows`` is empty.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(str(row['metric']), []).append(row)
    if not groups:
        raise ValueError('plot_suite_bars needs at least one row')
    heights = [2 * BAR_INCHES * len(entries) + 0.9 for entries in groups.values()]
    with matplotlib.rc_context(matplotlib_style()):
        fig = Figure(figsize=(7.5, sum(heights) + 0.8), layout='constrained')
        axes = fig.subplots(len(groups), 1, squeeze=False,
                            gridspec_kw=dict(height_ratios=heights))[:, 0]
        for ax, (metric, entries) in zip(axes, groups.items()):
            _metric_panel(ax, metric, entries)
        fig.legend(handles=[Patch(color=OURS_COLOUR, label='ours'),
                            Patch(color=PAPER_COLOUR, label='paper')],
                   loc='outside lower center', ncols=2)
        if title:
            fig.suptitle(title)
        return _save(fig, path)


def _metric_panel(ax, metric: str, entries: Sequence[Mapping]) -> None:
    """One metric's panel of :func:`plot_suite_bars`."""
    y, height = np.arange(len(entries), dtype=float), 0.4
    values = [float(e[k]) for e in entries for k in ('ours', 'paper') if _finite(e.get(k))]
    for offset, key, colour in ((-height / 2, 'ours', OURS_COLOUR),
                                (height / 2, 'paper', PAPER_COLOUR)):
        shown = [i for i, entry in enumerate(entries) if _finite(entry.get(key))]
        if not shown:
            continue
        vals = [float(entries[i][key]) for i in shown]
        bars = ax.barh(y[shown] + offset, vals, height=height, color=colour)
        ax.bar_label(bars, labels=[_value_text(v) for v in vals], padding=2,
                     fontsize=FONT_PT['tick'])
    for i, entry in enumerate(entries):
        if not _finite(entry.get('ours')):
            ax.text(0, y[i] - height / 2, ' ' + str(entry.get('status') or 'no result'),
                    va='center', ha='left', style='italic', color='0.3', fontsize=MIN_FONT_PT)
    low, high = min(values + [0.0]), max(values + [0.0])
    span = (high - low) or 1.0
    ax.set_xlim(low - (0.18 * span if low < 0 else 0), high + 0.18 * span)
    ax.set_yticks(y, [_short(e.get('name', '?')) for e in entries])
    ax.set_ylim(len(entries) - 0.5, -0.5)  # first entry on top
    ax.set_xlabel(metric_axis_label(metric))


def plot_per_class_iou(class_names: Sequence[str], iou: Sequence[float], path: str,
                       worst: int = 20, title: str | None = None) -> str:
    """The ``worst`` lowest per-class IoUs as horizontal bars, lowest on top, with the mIoU.

    Classes with a NaN IoU (in neither ground truth nor prediction) are left out, of the bars
    and of the mIoU (a dashed vertical line: the mean over all the other classes, as mmseg's).

    Args:
        class_names: the dataset's classes.
        iou: per-class IoU in percent, one per class (e.g. ``iou_from_confusion(c).iou``).
        path: the PNG to write (folders are created).
        worst: how many classes to show (all when there are fewer).
        title: the figure's title; None: says how many classes are shown.

    Returns:
        ``path``.

    Raises:
        ValueError: lengths differ, ``worst < 1``, or no class has an IoU.
    """
    import matplotlib
    from matplotlib.figure import Figure

    iou = np.asarray(iou, dtype=np.float64)
    if iou.shape != (len(class_names),):
        raise ValueError(f'plot_per_class_iou: {len(class_names)} class names but IoU of shape '
                         f'{iou.shape}')
    order = worst_classes(iou, worst)
    if not order.size:
        raise ValueError('plot_per_class_iou: no class has an IoU (all NaN)')
    scored, miou = int(np.isfinite(iou).sum()), nan_mean(iou)
    with matplotlib.rc_context(matplotlib_style()):
        fig = Figure(figsize=(6.5, BAR_INCHES * len(order) + 1.6), layout='constrained')
        ax = fig.subplots()
        y = np.arange(len(order))
        bars = ax.barh(y, iou[order], height=0.7, color=OURS_COLOUR)
        ax.bar_label(bars, labels=[f'{v:.1f}' for v in iou[order]], padding=2,
                     fontsize=FONT_PT['tick'])
        line = ax.axvline(miou, color=MEAN_COLOUR, ls='--', label=f'mIoU {miou:.1f} '
                          f'(all {scored} classes)')
        ax.set_yticks(y, [_short(class_names[i]) for i in order])
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_xlim(0, 112)
        ax.set_xticks(range(0, 101, 20))
        ax.set_xlabel('IoU (%), higher is better')
        fig.legend(handles=[line], loc='outside lower center')
        fig.suptitle(title or f'{len(order)} lowest-IoU classes of {scored}')
        return _save(fig, path)


def worst_classes(iou: np.ndarray, worst: int) -> np.ndarray:
    """Indices of the ``worst`` classes with the lowest finite IoU, lowest first (ties: lower
    index first)."""
    if worst < 1:
        raise ValueError(f'worst must be >= 1, got {worst}')
    iou = np.asarray(iou, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(iou))
    return finite[np.argsort(iou[finite], kind='stable')][:worst]


class ConfusionRows(NamedTuple):
    """What :func:`plot_confusion` draws: ``percent[i, j]`` is the share (%) of the pixels of
    ground-truth class ``classes[i]`` predicted as ``classes[j]``; the last column is the share
    predicted as any class not in ``classes``. Each row sums to 100."""
    percent: np.ndarray
    classes: np.ndarray


def confusion_rows(confusion: np.ndarray, iou: np.ndarray | None = None,
                   worst: int = 15) -> ConfusionRows:
    """The row-normalised confusion of the ``worst`` classes by IoU, plus an 'other' column.

    Only classes with ground-truth pixels can be rows (a row is a share of them); among those
    the ``worst`` lowest IoUs are taken, lowest first.

    Args:
        confusion: ``(K, K)`` pixel counts, rows ground truth, columns prediction.
        iou: per-class IoU used for the ranking; None computes it from ``confusion``.
        worst: how many classes (rows) at most.

    Returns:
        A :class:`ConfusionRows` with ``percent`` of shape ``(n, n + 1)``, ``n <= worst``.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    scores = iou_from_confusion(counts)  # also checks the shape
    iou = scores.iou if iou is None else np.asarray(iou, dtype=np.float64)
    label = counts.sum(axis=1)
    ranked = np.where(label > 0, iou, np.nan)
    classes = worst_classes(ranked, worst)
    block = counts[np.ix_(classes, classes)]
    other = label[classes] - block.sum(axis=1)
    percent = 100.0 * np.concatenate([block, other[:, None]], axis=1) / label[classes][:, None]
    return ConfusionRows(percent, classes)


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: str,
                   worst: int = 15, title: str | None = None) -> str:
    """Where the pixels of the ``worst`` classes go: :func:`confusion_rows` as a heat map.

    Rows are the lowest-IoU ground-truth classes (lowest on top, their IoU next to the name),
    columns the same classes then 'other'; each cell shows its percentage (rounded, blank below
    0.5) and the colour bar is in percent of the ground-truth class's pixels.

    Args:
        confusion: ``(K, K)`` pixel counts, rows ground truth, columns prediction.
        class_names: the K class names.
        path: the PNG to write (folders are created).
        worst: how many classes to show.
        title: the figure's title; None: says how many classes are shown.

    Returns:
        ``path``.

    Raises:
        ValueError: the names do not match the matrix, or no class has ground-truth pixels.
    """
    import matplotlib
    from matplotlib.figure import Figure

    counts = np.asarray(confusion)
    if counts.ndim != 2 or counts.shape[0] != len(class_names):
        raise ValueError(f'plot_confusion: {len(class_names)} class names for a confusion matrix '
                         f'of shape {counts.shape}')
    iou = iou_from_confusion(counts).iou
    drawn = confusion_rows(counts, iou, worst)
    n = len(drawn.classes)
    if not n:
        raise ValueError('plot_confusion: no class has ground-truth pixels')
    names = [_short(class_names[c]) for c in drawn.classes]
    with matplotlib.rc_context(matplotlib_style()):
        fig = Figure(figsize=(CELL_INCHES * (n + 1) + 4.2, CELL_INCHES * n + 2.8),
                     layout='constrained')
        ax = fig.subplots()
        image = ax.imshow(drawn.percent, cmap='Blues', vmin=0, vmax=100, aspect='equal')
        _annotate_cells(ax, drawn.percent)
        ax.set_xticks(range(n + 1), names + ['other'], rotation=45, ha='right',
                      rotation_mode='anchor')
        ax.set_yticks(range(n), [f'{name} ({iou[c]:.1f})' for name, c in zip(names, drawn.classes)])
        ax.set_xlabel('predicted class')
        ax.set_ylabel('ground-truth class (IoU %)')
        add_colorbar(ax, image, "% of the ground-truth class's pixels")
        fig.suptitle(title or f'confusion of the {n} lowest-IoU classes (of {len(class_names)})')
        return _save(fig, path)


def _annotate_cells(ax, percent: np.ndarray) -> None:
    """Write each cell's rounded percentage (white on dark cells), none below 0.5."""
    for (i, j), value in np.ndenumerate(percent):
        if value >= 0.5:
            ax.text(j, i, f'{value:.0f}', ha='center', va='center', fontsize=MIN_FONT_PT,
                    color='white' if value > 60 else 'black')


def _save(fig, path: str) -> str:
    """Render ``fig`` with Agg into the PNG ``path`` (folders created, cropped to what is drawn);
    returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    FigureCanvasAgg(fig)
    # 'tight': long tick labels next to a fixed-aspect heat map stay inside the picture
    fig.savefig(path, dpi=DEFAULT_DPI, bbox_inches='tight', pad_inches=0.1)
    return path


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def _value_text(value: float) -> str:
    """1 decimal from 10 up (44.3), 2 from 1 (2.57), else 3 (0.312)."""
    size = abs(value)
    return f'{value:.{1 if size >= 10 else 2 if size >= 1 else 3}f}'


def _short(name) -> str:
    name = str(name)
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 3] + '...'
