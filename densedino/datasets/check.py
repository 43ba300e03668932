"""Dataset checks: every file of a config's datasets, before training instead of hours into it.

A bad file otherwise surfaces only when its sample is drawn, inside a DataLoader worker. Two modes:

- quick (``full=False``, run at training start-up): every listed file exists; image and annotation
  sizes and PNG bit depths come from the file headers without decoding pixels
  (:mod:`.file_headers`);
  label size == image size, depth size == image size, depth PNGs one 16-bit channel; the model's
  ``num_classes`` against the dataset's classes.
- full (``full=True``, ``tools/check_dataset.py``): decodes every file in a thread pool and also
  finds truncated or corrupt images (PIL's decoder: ``cv2.imread`` returns a truncated JPEG as a
  silently partial image), label values outside the classes after the dataset's label mapping,
  and depth maps with no valid pixel; it counts the pixels of every class.

Annotations are loaded by the transforms training uses (:class:`~.seg.LoadAnnotations`,
:class:`~.depth_transforms.LoadDepthAnnotation`), so the checks and their messages are the ones a
training run would hit. Every bad file is reported in one pass, each with a one-line reason that
names it. Files are local paths.
"""
from __future__ import annotations

import copy
import logging
import math
import os.path as osp
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope

from ..progress import progress_iter
from ..registry import DATASETS
from .depth_transforms import LoadDepthAnnotation, check_depth_format
from .errors import DatasetError
from .file_headers import decode_image, read_header
from .seg import IGNORE_INDEX, LoadAnnotations, check_same_size

logger = logging.getLogger(__name__)

SPLITS = ('train', 'val', 'test')
_LOADERS = {'train': 'train_dataloader', 'val': 'val_dataloader', 'test': 'test_dataloader'}
_SHOWN = 3  # bad files named in the one-line error


@dataclass
class SplitStats:
    """What was checked in one split.

    Attributes:
        dataset: The dataset's class name.
        kind: 'seg', 'depth' or 'image' (images only: pretraining datasets).
        num_samples: Samples listed.
        classes: Class names (segmentation), else empty.
        histogram: ``(num_classes,)`` int64 pixels per class after the label mapping (full mode,
            segmentation), else None.
        ignored: Pixels of the ignore index 255 (full mode, segmentation).
    """
    dataset: str
    kind: str
    num_samples: int
    classes: tuple[str, ...] = ()
    histogram: np.ndarray | None = None
    ignored: int = 0


@dataclass
class DatasetReport:
    """The result of :func:`check_config`.

    Attributes:
        config: The config file checked.
        full: Whether pixels were decoded (full mode) or only headers read (quick mode).
        problems: ``(path, reason)`` pairs; each reason is one line that names the path.
        splits: Per-split statistics, by split name.
    """
    config: str
    full: bool
    problems: list[tuple[str, str]] = field(default_factory=list)
    splits: dict[str, SplitStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names of the first segmentation split (empty for depth / image datasets)."""
        return next((s.classes for s in self.splits.values() if s.classes), ())

    @property
    def num_classes(self) -> int:
        """``len(classes)``."""
        return len(self.classes)

    @property
    def histogram(self) -> dict[str, int]:
        """Pixels per class name, summed over the splits (full mode; empty in quick mode)."""
        counts = [s.histogram for s in self.splits.values()
                  if s.histogram is not None and s.classes == self.classes]
        if not counts:
            return {}
        return dict(zip(self.classes, (int(c) for c in np.sum(counts, axis=0))))

    def bad_files(self) -> list[str]:
        """The distinct paths with a problem, in the order found."""
        return list(dict.fromkeys(path for path, _ in self.problems))

    def problem_lines(self) -> list[str]:
        """One line per problem, starting with its path unless the reason names it already."""
        return [reason if path in reason else f'{path}: {reason}' for path, reason in self.problems]

    def summary(self) -> str:
        """One line: the mode, samples per split, classes and the number of bad files."""
        mode = 'full check' if self.full else 'quick check'
        sizes = ', '.join(f'{name} {s.num_samples}' for name, s in self.splits.items())
        sizes = f'{sizes} samples' if sizes else 'no dataset'
        classes = f', {self.num_classes} classes' if self.num_classes else ''
        verdict = 'no problems' if self.ok else _count(len(self.problems), 'problem')
        return f'{self.config} ({mode}): {sizes}{classes}: {verdict}'

    def raise_if_bad(self) -> None:
        """Raise one line naming the first bad files and their count, if there is any.

        Raises:
            DatasetError: some file or setting is bad.
        """
        if self.ok:
            return
        lines = self.problem_lines()
        shown = '; '.join(lines[:_SHOWN]) + ('; ...' if len(lines) > _SHOWN else '')
        count = _count(len(self.problems), 'problem')
        raise DatasetError(f'{count} in {self.config}: {shown} (run tools/check_dataset.py '
                           f'{self.config} for the full list)')


def _count(n: int, noun: str) -> str:
    return f'{n} {noun}' + ('' if n == 1 else 's')


@dataclass
class _Split:
    """One split's dataset, listed: data infos plus what checking them needs."""
    dataset: str
    kind: str
    infos: list[dict]
    classes: tuple[str, ...]
    loader: Callable[[dict], dict] | None
    depth_range: tuple[float, float]


class _Outcome(NamedTuple):
    problems: list[tuple[str, str]]
    counts: np.ndarray | None = None  # (256,) pixels per mapped label value


def check_config(cfg: Config, splits: str | Sequence[str] = SPLITS, *, full: bool = True,
                 workers: int = 2, progress: bool = True) -> DatasetReport:
    """Check every file of the datasets of ``cfg``'s dataloaders; see the module docstring.

    Args:
        cfg: An mmengine config (``Config.fromfile`` after ``import densedino``).
        splits: Any of 'train', 'val', 'test' (``cfg.<split>_dataloader``); absent splits and a
            split whose dataset equals an earlier one's (``test_dataloader = val_dataloader``)
            are skipped.
        full: Decode every file (else headers only).
        workers: Threads reading files.
        progress: Show a progress bar per split.

    Returns:
        The report; a dataset that cannot even be listed (missing folder or split file) is one
        problem naming the config.

    Raises:
        ValueError: unknown split name or ``workers < 1``.
    """
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [s for s in names if s not in SPLITS]
    if unknown or not names:
        raise ValueError(f'splits must be some of {SPLITS}, got {splits!r}')
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f'workers must be a positive integer, got {workers!r}')
    report = DatasetReport(config=cfg.filename or '<config>', full=full)
    seen = []
    for name in names:
        dataset_cfg = (cfg.get(_LOADERS[name]) or {}).get('dataset')
        if not dataset_cfg or dataset_cfg in seen:
            continue
        seen.append(dataset_cfg)
        try:
            split = _list_split(cfg, dataset_cfg)
        except (DatasetError, OSError) as e:
            report.problems.append((report.config, f'{name} dataset: {e}'))
            continue
        report.splits[name] = _check_split(name, split, full, workers, progress, report.problems)
        report.problems.extend(_num_classes_problems(cfg, split, report.config))
    report.problems = list(dict.fromkeys(report.problems))
    return report


def startup_check(cfg: Config, full: bool = False) -> None:
    """The check training runs before it starts: quick (or full) mode on the train and val splits.

    Args:
        cfg: The training config.
        full: Decode every file instead of reading headers.

    Raises:
        DatasetError: one line naming the first bad files and their count.
    """
    start = time.perf_counter()
    report = check_config(cfg, ('train', 'val'), full=full, progress=False)
    report.raise_if_bad()
    logger.info('%s (%.1f s)', report.summary(), time.perf_counter() - start)


# ----------------------------------------------------------------------------- listing


def _build_dataset(dataset_cfg: dict) -> Any:
    """The dataset without its pipeline, and without its own file checks where possible."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    with DefaultScope.overwrite_default_scope('densedino'):
        kind = dataset_cfg['type']
        cls = kind if isinstance(kind, type) else DATASETS.get(kind)
        if isinstance(cls, type) and issubclass(cls, BaseDataset):
            dataset_cfg.update(lazy_init=True, pipeline=[])
        return DATASETS.build(dataset_cfg)


def _data_infos(dataset: Any) -> list[dict]:
    """Every sample's data info, listing all of them even when some files are missing."""
    if hasattr(dataset, 'files') and hasattr(dataset, 'root'):  # unlabeled image folders
        return [{'img_path': osp.join(dataset.root, name)} for name in dataset.files]
    if hasattr(dataset, '_list_samples'):  # densedino's datasets: the listing their checks run on
        return dataset._list_samples()
    dataset.full_init()
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _list_split(cfg: Config, dataset_cfg: dict) -> _Split:
    dataset = _build_dataset(dataset_cfg)
    infos = _data_infos(dataset)
    if (cfg.get('model') or {}).get('type') == 'DinoSSLModel':
        kind = 'image'
        infos = [{'img_path': info['img_path']} for info in infos]
    elif any('depth_map_path' in info for info in infos):
        kind = 'depth'
    elif any('seg_map_path' in info for info in infos):
        kind = 'seg'
    else:
        kind = 'image'
    classes = tuple(dataset.metainfo['classes']) if kind == 'seg' else ()
    for info in infos:
        if kind == 'seg':
            info.setdefault('num_classes', len(classes))
    loader = _annotation_loader(dataset_cfg, kind)
    return _Split(type(dataset).__name__, kind, infos, classes, loader, _depth_range(cfg))


def _annotation_loader(dataset_cfg: dict, kind: str) -> Callable[[dict], dict] | None:
    """The densedino loading transform with the file options of the dataset's pipeline."""
    if kind == 'seg':
        name, cls, keys = 'LoadAnnotations', LoadAnnotations, ('imdecode_backend', 'backend_args')
    elif kind == 'depth':
        name, cls = 'LoadDepthAnnotation', LoadDepthAnnotation
        keys = ('depth_scale', 'backend_args')
    else:
        return None
    steps = [t for t in dataset_cfg.get('pipeline') or [] if isinstance(t, dict)]
    found = next((t for t in steps if t.get('type') == name), {})
    return cls(**{k: found[k] for k in keys if k in found})


def _depth_range(cfg: Config) -> tuple[float, float]:
    """``(min_depth, max_depth)`` of the config's depth metric (or head), else ``(0, inf)``."""
    candidates = []
    for key in ('val_evaluator', 'test_evaluator'):
        value = cfg.get(key)
        candidates += value if isinstance(value, (list, tuple)) else [value]
    candidates = [c for c in candidates
                  if isinstance(c, dict) and c.get('type') == 'DenseDepthMetric']
    candidates.append((cfg.get('model') or {}).get('decode_head'))
    for c in candidates:
        if isinstance(c, dict) and None not in (c.get('min_depth'), c.get('max_depth')):
            return float(c['min_depth']), float(c['max_depth'])
    return 0.0, math.inf


def _num_classes_problems(cfg: Config, split: _Split, config: str) -> list[tuple[str, str]]:
    """The model's heads against the dataset's classes (segmentation only)."""
    if split.kind != 'seg':
        return []
    model, problems = cfg.get('model') or {}, []
    names = ', '.join(split.classes[:4]) + (', ...' if len(split.classes) > 4 else '')
    for key in ('decode_head', 'auxiliary_head'):
        heads = model.get(key)
        for head in heads if isinstance(heads, (list, tuple)) else [heads]:
            n = head.get('num_classes') if isinstance(head, dict) else None
            if n is not None and n != len(split.classes):
                problems.append((config, f'model.{key}.num_classes={n} but the dataset of {config} '
                                         f'({split.dataset}) has {len(split.classes)} classes '
                                         f'({names}); set model.{key}.num_classes='
                                         f'{len(split.classes)} or fix the dataset'))
    return problems


# ----------------------------------------------------------------------------- per-file checks


def _check_split(name: str, split: _Split, full: bool, workers: int, progress: bool,
                 problems: list[tuple[str, str]]) -> SplitStats:
    """Check every sample of ``split`` in a thread pool; append problems, return statistics."""
    check = partial(_check_full if full else _check_quick, split)
    counts = np.zeros(256, np.int64)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = pool.map(check, split.infos)
        desc = f'{name}: {split.dataset}'
        for outcome in progress_iter(outcomes, len(split.infos), progress, desc):
            problems.extend(outcome.problems)
            if outcome.counts is not None:
                counts += outcome.counts
    stats = SplitStats(split.dataset, split.kind, len(split.infos), split.classes)
    if full and split.kind == 'seg':
        stats.histogram = counts[:len(split.classes)].copy()
        stats.ignored = int(counts[IGNORE_INDEX])
    return stats


def _annotation(info: dict, kind: str) -> tuple[str | None, str]:
    """``(path or None, 'label' / 'depth')`` of a sample's annotation."""
    if kind == 'seg':
        return info.get('seg_map_path'), 'label'
    if kind == 'depth':
        return info.get('depth_map_path'), 'depth'
    return None, ''


def _check_quick(split: _Split, info: dict) -> _Outcome:
    """Existence, sizes and depth bit depth from the file headers."""
    problems = []
    img_path, image = info['img_path'], None
    try:
        image = read_header(img_path, orient=True)
    except DatasetError as e:
        problems.append((img_path, str(e)))
    path, what = _annotation(info, split.kind)
    if path is None:
        return _Outcome(problems)
    try:
        header = read_header(path, what=what)
        if split.kind == 'depth':
            check_depth_format(path, header.channels, header.dtype)
        if image is not None:
            check_same_size(what, path, header.shape, img_path, image.shape)
    except DatasetError as e:
        problems.append((path, str(e)))
    return _Outcome(problems)


def _check_full(split: _Split, info: dict) -> _Outcome:
    """Decode the image and load the annotation with the training transform."""
    problems = []
    img_path, img_shape = info['img_path'], None
    try:
        img_shape = decode_image(img_path)
    except DatasetError as e:
        problems.append((img_path, str(e)))
    path, what = _annotation(info, split.kind)
    if path is None:
        return _Outcome(problems)
    if not osp.isfile(path):
        return _Outcome(problems + [(path, f'{what} file {path} is missing')])
    results = dict(info, seg_fields=[])
    if img_shape is not None:
        results['ori_shape'] = img_shape
    try:
        results = split.loader(results)
    except DatasetError as e:
        return _Outcome(problems + [(path, str(e))])
    if split.kind == 'seg':
        return _Outcome(problems, np.bincount(results['gt_seg_map'].ravel(), minlength=256))
    lo, hi = split.depth_range
    depth = results['gt_depth_map']
    if not ((depth > lo) & (depth < hi)).any():
        problems.append((path, f'depth file {path} has no valid pixel: every value / depth_scale '
                               f'{results["depth_scale"]:g} is outside ({lo:g}, {hi:g}) m '
                               f'(max {float(depth.max()):g} m); fix the file or drop the sample'))
    return _Outcome(problems)


__all__ = ['SPLITS', 'DatasetReport', 'SplitStats', 'check_config', 'startup_check']
