"""An unlabeled image-folder dataset for self-supervised pretraining, with optional k-NN labels."""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..datasets.errors import DatasetError
from ..registry import DATASETS
from ..images import read_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
Transform = Callable[[np.ndarray, np.random.Generator], dict]


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for sample ``index`` of ``epoch``, independent of worker and batch layout."""
    return int(np.random.SeedSequence([base_seed, epoch, index]).generate_state(1)[0])


def list_images(root: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Paths relative to ``root`` (with '/' separators) of the image files below it, sorted."""
    exts = tuple(e.lower() for e in extensions)
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        rel = os.path.relpath(folder, root)
        for name in files:
            if name.lower().endswith(exts) and not name.startswith('.'):
                found.append(name if rel == '.' else f'{rel}/{name}'.replace(os.sep, '/'))
    return sorted(found)


def read_labels_file(path: str) -> dict[str, int]:
    """Read ``"<key> <label>"`` lines (key: relative path or stem; blank lines skipped)."""
    labels = {}
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().rsplit(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise DatasetError(f'{path}:{number}: expected "<path or stem> <integer label>", '
                                   f'got {line.strip()!r}')
            labels[parts[0].replace('\\', '/')] = int(parts[1])
    return labels


def _label_for(rel: str, labels: dict[str, int]) -> int | None:
    """Look ``rel`` up as a relative path, then without extension, then as its file stem."""
    no_ext = os.path.splitext(rel)[0]
    for key in (rel, no_ext, no_ext.rsplit('/', 1)[-1]):
        if key in labels:
            return labels[key]
    return None


@DATASETS.register_module()
class UnlabeledImageFolder(Dataset):
    """Every image below a folder (recursively), augmented with a reproducible per-sample seed.

    Sample ``i`` of epoch ``e`` is augmented with a generator seeded by
    :func:`sample_seed` ``(seed, e, i)``, so the same crops come back in any dataloader worker and
    after a resume. Call :meth:`set_epoch` at the start of each epoch (with ``persistent_workers``
    the workers keep their own copy: re-create the iterator after changing the epoch).

    Unreadable images: with ``on_unreadable='raise'`` (default) reading one raises
    :class:`~densedino.datasets.DatasetError` naming the file; with ``'skip'`` a warning naming
    it is logged (once per file) and the next readable image in the list is returned instead.

    Labels (for k-NN monitoring): ``labels_file`` holds lines ``"<key> <integer label>"`` where
    the key is the path relative to ``root`` (``a/b.jpg``), that path without its extension, or
    the file stem - the format of ``image_labels_{training,validation}.txt`` written by
    :func:`densedino.datasets.write_ade20k` (use ``root=<data_root>/images/training``). Every
    image must have a label; extra lines are ignored.

    Args:
        root: the image folder.
        transform: ``transform(image, rng) -> dict``, e.g. a ``MultiCropAugmentation`` (or its
            config dict); ``None`` returns the uint8 (H, W, 3) RGB image as ``image``.
        labels_file: optional label file (see above).
        seed: base seed of the per-sample generators.
        extensions: file name endings counted as images (case-insensitive).
        on_unreadable: 'raise' or 'skip' (see above).

    Returns (``__getitem__``):
        The transform's dict plus ``index`` and ``seed`` (int), and ``label`` (int) with labels.
    """

    def __init__(self, root: str | os.PathLike, *, transform: Transform | None = None,
                 labels_file: str | os.PathLike | None = None, seed: int = 0,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 on_unreadable: str = 'raise') -> None:
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise DatasetError(f'image folder {self.root} does not exist')
        if on_unreadable not in ('raise', 'skip'):
            raise ValueError(f"on_unreadable must be 'raise' or 'skip', got {on_unreadable!r}")
        self.files = list_images(self.root, extensions)
        if not self.files:
            raise DatasetError(f'no images with extensions {tuple(extensions)} under {self.root}')
        self.transform = build_crop_transform(transform)
        self.seed = int(seed)
        self.epoch = 0
        self.on_unreadable = on_unreadable
        self.labels = None if labels_file is None else self._match_labels(os.fspath(labels_file))
        self._warned: set[str] = set()

    def _match_labels(self, path: str) -> list[int]:
        if not os.path.isfile(path):
            raise DatasetError(f'labels file {path} does not exist')
        table = read_labels_file(path)
        labels = [_label_for(rel, table) for rel in self.files]
        missing = [rel for rel, label in zip(self.files, labels) if label is None]
        if missing:
            raise DatasetError(f'{len(missing)} images under {self.root} have no label in {path}, '
                               f'e.g. {missing[0]}')
        return labels

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops :meth:`__getitem__` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> tuple[int, np.ndarray]:
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            path = os.path.join(self.root, self.files[i])
            try:
                return i, read_image(path)
            except (FileNotFoundError, ValueError) as err:
                if self.on_unreadable == 'raise':
                    raise DatasetError(str(err)) from None
            if path not in self._warned:
                self._warned.add(path)
                logger.warning('skipping unreadable image %s', path)
        raise DatasetError(f'no readable image under {self.root}')

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.files):
            raise IndexError(f'index {index} out of range for {len(self.files)} images')
        used, image = self._read(index)
        seed = sample_seed(self.seed, self.epoch, index)
        sample = ({'image': image} if self.transform is None
                  else dict(self.transform(image, np.random.default_rng(seed))))
        sample.update(index=index, seed=seed)
        if self.labels is not None:
            sample['label'] = self.labels[used]
        return sample


def build_crop_transform(transform: Transform | dict | None) -> Transform | None:
    """A transform, or a :class:`~.augment.MultiCropAugmentation` from a config dict."""
    if not isinstance(transform, dict):
        return transform
    from .augment import MultiCropAugmentation
    options = dict(transform)
    kind = options.pop('type', 'MultiCropAugmentation')
    if kind != 'MultiCropAugmentation':
        raise ValueError(f"transform type must be 'MultiCropAugmentation', got {kind!r}")
    return MultiCropAugmentation(**options)


@DATASETS.register_module()
class SyntheticUnlabeledImages(UnlabeledImageFolder):
    """The embedded synthetic scenes as an unlabeled folder, generated on first use.

    Iteration-based training never calls :meth:`set_epoch`, so the dataset can be ``passes``
    times longer: index ``i`` is image ``i % n`` augmented as in epoch ``i // n`` (fresh crops
    on every pass, still reproducible from the index).

    Args:
        data_root: folder holding (or receiving) ``ADEChallengeData2016``.
        split: 'training' or 'validation'.
        num_train: training scenes to generate if the folder is absent.
        num_val: validation scenes to generate if the folder is absent.
        passes: virtual passes over the images (>= 1).
        transform: a transform or a ``MultiCropAugmentation`` config dict.
        with_labels: attach the ``image_labels_<split>.txt`` labels (k-NN monitoring).
        **kwargs: :class:`UnlabeledImageFolder` options (``seed``, ...).
    """

    def __init__(self, data_root: str = 'data/synthetic', *, split: str = 'training',
                 num_train: int = 400, num_val: int = 100, passes: int = 1,
                 transform: Transform | dict | None = None, with_labels: bool = False,
                 **kwargs: Any) -> None:
        from ..datasets import ensure_synthetic_ade20k
        if split not in ('training', 'validation'):
            raise ValueError(f"split must be 'training' or 'validation', got {split!r}")
        if passes < 1:
            raise ValueError(f'passes must be >= 1, got {passes}')
        ade_root = ensure_synthetic_ade20k(data_root, num_train=num_train, num_val=num_val)
        labels = os.path.join(ade_root, f'image_labels_{split}.txt') if with_labels else None
        super().__init__(os.path.join(ade_root, 'images', split),
                         transform=build_crop_transform(transform), labels_file=labels, **kwargs)
        self.passes = passes

    def __len__(self) -> int:
        return len(self.files) * self.passes

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        n = len(self.files)
        self.epoch = index // n
        sample = super().__getitem__(index % n)
        sample['index'] = index
        return sample
