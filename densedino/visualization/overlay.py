"""Segmentation overlays: an image, a label map, class names and a palette -> an RGB picture.

The output has the image's height. The label colours are blended onto the image, and a legend
panel listing the classes present (largest area first, a colour swatch and the name each) is
appended on the right; its width depends on the names and on how many columns the classes need
to fit the height. With ``legend=False`` the output has the image's size exactly.

Everything here is RGB, uint8 and numpy; nothing depends on a model.
"""
import math
from typing import List, Optional, Sequence

import cv2
import numpy as np

from .style import PAPER, CvFont, cv_font

Palette = Sequence[Sequence[int]]

IGNORE_INDEX = 255


def default_palette(num_classes: int, seed: int = 42) -> List[List[int]]:
    """The palette mmseg's datasets give a class list that comes without one.

    mmseg's ``BaseSegDataset`` draws it with NumPy's legacy generator seeded with 42
    (``randint(0, 255, (num_classes, 3))``); drawing it the same way (from a private
    ``RandomState``, leaving the global one alone) gives every class the colour that
    ``tools/test.py --show-dir`` (:class:`densedino.visualization.SegPanelVisualizer`, fed the
    dataset's palette) draws it in.

    Args:
        num_classes: Number of colours.
        seed: Random seed; 42 is mmseg's.

    Returns:
        ``num_classes`` ``[r, g, b]`` lists with values in ``[0, 255)``.
    """
    if num_classes < 0:
        raise ValueError(f'num_classes must be >= 0, got {num_classes}')
    return np.random.RandomState(seed).randint(0, 255, size=(num_classes, 3)).tolist()


def draw_overlay(image: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                 palette: Optional[Palette] = None, *, opacity: float = 0.5,
                 ignore_index: int = IGNORE_INDEX, legend: bool = True) -> np.ndarray:
    """Blend class colours onto an image and append a legend of the classes present.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        labels: ``(H, W)`` integer class indices into ``classes``; ``ignore_index`` pixels are left
            uncoloured and kept out of the legend.
        classes: Class names.
        palette: One RGB colour per class, normally the dataset's (``model.dataset_meta
            ['palette']``); ``default_palette(len(classes))`` (mmseg's colours for a class list
            without a palette) if None.
        opacity: Weight of the class colour, in ``[0, 1]`` (0: the image, 1: the colours only).
        ignore_index: Label value that marks unlabelled pixels.
        legend: Whether to append the legend panel on the right.

    Returns:
        ``(H, W + L, 3)`` uint8 RGB image; ``L`` (see :func:`legend_width`) is 0 when
        ``legend`` is False, and the left ``W`` columns are the blended image.
    """
    palette = default_palette(len(classes)) if palette is None else palette
    _check_inputs(image, labels, classes, palette, opacity, ignore_index)
    blended = blend_labels(image, labels, palette, opacity=opacity, ignore_index=ignore_index)
    if not legend:
        return blended
    ids = classes_present(labels, ignore_index=ignore_index)
    panel = draw_legend([classes[i] for i in ids], [palette[i] for i in ids], image.shape[0])
    return np.concatenate([blended, panel], axis=1)


def blend_labels(image: np.ndarray, labels: np.ndarray, palette: Palette, *,
                 opacity: float = 0.5, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``(1 - opacity) * image + opacity * colour`` on labelled pixels; others unchanged.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        labels: ``(H, W)`` integer class indices (every value but ``ignore_index`` is < the
            palette length).
        palette: RGB colour per class.
        opacity: Weight of the class colour.
        ignore_index: Label value left uncoloured.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    colours = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
    valid = labels != ignore_index
    out = image.astype(np.float32)
    out[valid] = (1.0 - opacity) * out[valid] + opacity * colours[labels[valid]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def classes_present(labels: np.ndarray, *, ignore_index: int = IGNORE_INDEX) -> List[int]:
    """Class indices found in ``labels``, largest area first (ties: lower index first)."""
    ids, counts = np.unique(labels[labels != ignore_index], return_counts=True)
    order = sorted(range(len(ids)), key=lambda k: (-counts[k], ids[k]))
    return [int(ids[k]) for k in order]


def draw_legend(names: Sequence[str], colours: Palette, height: int) -> np.ndarray:
    """A white panel of ``height`` rows listing ``names`` with colour swatches, in columns.

    The font scales with ``height`` (the style's, as titles and colour bars); names that do not
    fit one column continue in the next.

    Args:
        names: Entries, top to bottom then left to right.
        colours: RGB colour per entry.
        height: Panel height in pixels (the image height).

    Returns:
        ``(height, legend_width(names, height), 3)`` uint8 RGB panel.
    """
    layout = _Layout.for_height(height)
    rows = layout.rows_per_column(height)
    width = legend_width(names, height)
    panel = np.full((height, width, 3), PAPER, np.uint8)
    column_width = layout.column_width(names)
    for k, (name, colour) in enumerate(zip(names, colours)):
        x = layout.margin + (k // rows) * column_width
        y = layout.margin + (k % rows) * layout.row_height
        layout.draw_entry(panel, name, colour, x, y)
    return panel


def legend_width(names: Sequence[str], height: int) -> int:
    """Width in pixels of the legend panel :func:`draw_legend` makes (0 for no names)."""
    if not names:
        return 0
    layout = _Layout.for_height(height)
    columns = math.ceil(len(names) / layout.rows_per_column(height))
    return layout.margin + columns * layout.column_width(names)


class _Layout:
    """Font and spacing of a legend for one panel height (the font of
    :func:`densedino.visualization.style.cv_font`, as titles and colour bars have)."""

    def __init__(self, font: CvFont) -> None:
        self.font = font
        self.text_height = font.line_height
        self.row_height = self.text_height + max(2, int(round(6 * font.scale)))
        self.swatch = self.text_height
        self.margin = max(3, int(round(8 * font.scale)))

    @classmethod
    def for_height(cls, height: int) -> '_Layout':
        """The layout of a legend next to a panel ``height`` pixels high."""
        return cls(cv_font(height))

    def rows_per_column(self, height: int) -> int:
        return max(1, (height - 2 * self.margin) // self.row_height)

    def column_width(self, names: Sequence[str]) -> int:
        text = max((self.font.size(n)[0] for n in names), default=0)
        return self.swatch + self.margin + text + self.margin

    def draw_entry(self, panel: np.ndarray, name: str, colour: Sequence[int], x: int,
                   y: int) -> None:
        """Swatch (with a dark outline) and name, top-left corner at ``(x, y)``."""
        s = self.swatch
        cv2.rectangle(panel, (x, y), (x + s - 1, y + s - 1), tuple(int(c) for c in colour), -1)
        cv2.rectangle(panel, (x, y), (x + s - 1, y + s - 1), (64, 64, 64), 1)
        _, height, depth = self.font.size(name)
        self.font.put(panel, name, x + s + self.margin, y + self.text_height - depth - height)


def _check_inputs(image: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                  palette: Palette, opacity: float, ignore_index: int) -> None:
    """ValueErrors, showing the bad value, for inputs ``draw_overlay`` cannot use."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be an (H, W, 3) uint8 RGB array, got shape '
                         f'{image.shape} dtype {image.dtype}')
    if labels.shape != image.shape[:2] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'labels must be an integer array of the image size '
                         f'{image.shape[:2]}, got shape {labels.shape} dtype {labels.dtype}')
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f'opacity must be in [0, 1], got {opacity}')
    if len(palette) < len(classes):
        raise ValueError(f'palette has {len(palette)} colours for {len(classes)} classes')
    values = np.unique(labels[labels != ignore_index])
    bad = values[(values < 0) | (values >= len(classes))]
    if bad.size:
        raise ValueError(f'labels hold values {bad[:5].tolist()} outside the {len(classes)} '
                         f'classes (and {ignore_index} = ignore)')
