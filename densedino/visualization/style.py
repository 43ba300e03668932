"""One figure style for every picture densedino draws, with matplotlib or with OpenCV.

The feature figures and the pretraining curves are matplotlib figures; depth panels, overlays and
the ``tools/test.py --show-dir`` panels are OpenCV arrays (a video writer or a window takes them
as they are). Both kinds end up side by side in a paper, so they share one set of decisions,
made here once:

- **Resolution.** ``DEFAULT_DPI = 150``: a 2.2 inch panel is 330 pixels, so a 9 pt label is
  19 pixels high, readable on a screen and sharp in print.
- **Fonts** are in points, for panels of ``PANEL_INCHES`` (sizes scale with a figure's panel
  size through :func:`matplotlib_style`); nothing is smaller than ``MIN_FONT_PT``. OpenCV text
  (no points there) has the same size relative to its panel: a cap height of
  ``CV_TEXT_FRACTION`` of the panel's height, never below the smallest legible Hershey size.
- **Colour bars** get 4 to 7 ticks at round 1-2-5 steps, labelled with as many decimals as the
  step needs (:func:`nice_ticks`, used by both kinds), and a label with the unit.
- **Titles** name each panel; an OpenCV row of panels gets a strip above it (:func:`titled_row`).
- **Legends** sit outside the axes or where matplotlib finds no data (``loc='best'``).
- **Colours.** Black text on white, as on a page.
"""
import math
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np

DEFAULT_DPI = 150
PANEL_INCHES = 2.2
MIN_FONT_PT = 9.0
# points at PANEL_INCHES: panel titles, axis labels, ticks and legends, the figure's title
FONT_PT = {'title': 11.0, 'label': 10.0, 'tick': 9.0, 'legend': 9.0, 'figure': 12.0}
TICK_MIN = 4  # ticks a colour bar gets (nice_ticks gives 4 to 7)
CV_TEXT_FRACTION = 0.035  # cap height / panel height of a 9 pt label on a 2.2 inch panel: 0.04
CV_MIN_SCALE = 0.4  # Hershey simplex at 0.4: 11 pixel capitals, the smallest that reads well
PAPER = (255, 255, 255)
INK = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Ticks(NamedTuple):
    """Tick positions and their labels (same length); the labels are of ``value / 10 **
    exponent`` (0 unless the values are all tiny or huge: then the axis label says x10^e)."""
    values: List[float]
    labels: List[str]
    exponent: int = 0


def nice_ticks(vmin: float, vmax: float, *, minimum: int = TICK_MIN) -> Ticks:
    """Round ticks inside ``[vmin, vmax]``: the widest 1-2-5 step that gives ``minimum`` ticks.

    A fixed step count leaves as few as 2 ticks in the range; taking the widest step that
    leaves ``minimum`` gives 4 to 7 (default). Where the 2-step would give more than 7
    (3 ticks at 0.5, 9 at 0.2), 2.5 is used instead. Labels carry the decimals the step
    needs (0.5 -> one, 0.25 -> two, 20 -> none).

    Raises:
        ValueError: the range is empty or not finite.
    """
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
        raise ValueError(f'ticks need a finite range with vmax > vmin, got [{vmin}, {vmax}]')
    largest = max(abs(vmin), abs(vmax))
    if largest < 1e-2 or largest >= 1e5:  # labels like 0.00425: count in 10^e units instead
        exponent = math.floor(math.log10(largest))
        unit = 10.0 ** exponent
        scaled = nice_ticks(vmin / unit, vmax / unit, minimum=minimum)
        return Ticks([v * unit for v in scaled.values], scaled.labels, exponent)
    top = math.floor(math.log10(vmax - vmin))
    for exponent in range(top, top - 4, -1):
        for mantissa in (5, 2, 1):
            ticks = _multiples(vmin, vmax, mantissa, exponent)
            if len(ticks.values) < minimum:
                continue
            if mantissa == 2 and len(ticks.values) > 2 * minimum - 1:
                wider = _multiples(vmin, vmax, 2.5, exponent)
                ticks = wider if len(wider.values) >= minimum else ticks
            return ticks
    raise AssertionError('unreachable: a step of span / 1000 always gives enough ticks')


def _multiples(vmin: float, vmax: float, mantissa: float, exponent: int) -> Ticks:
    """The multiples of ``mantissa * 10 ** exponent`` in ``[vmin, vmax]``, labelled."""
    step = mantissa * 10.0 ** exponent
    decimals = max(0, -exponent + (mantissa == 2.5))
    first, last = math.ceil(vmin / step - 1e-9), math.floor(vmax / step + 1e-9)
    values = [round(k * step, decimals + 1) for k in range(first, last + 1)]
    return Ticks(values, [f'{v:.{decimals}f}' for v in values])


# ---------------------------------------------------------------------------- matplotlib

def matplotlib_style(panel_inches: float = PANEL_INCHES) -> Dict[str, Any]:
    """rcParams for ``matplotlib.rc_context``: fonts scaled to the panel size (at least
    ``MIN_FONT_PT``), ``DEFAULT_DPI``, legends where they cover no data."""
    scale = panel_inches / PANEL_INCHES
    pt = {k: max(MIN_FONT_PT, round(v * scale, 1)) for k, v in FONT_PT.items()}
    return {'figure.dpi': DEFAULT_DPI, 'savefig.dpi': DEFAULT_DPI, 'font.size': pt['label'],
            'axes.titlesize': pt['title'], 'axes.labelsize': pt['label'],
            'xtick.labelsize': pt['tick'], 'ytick.labelsize': pt['tick'],
            'legend.fontsize': pt['legend'], 'legend.title_fontsize': pt['legend'],
            'figure.titlesize': pt['figure'], 'legend.loc': 'best', 'legend.framealpha': 0.9,
            'axes.titlepad': 4.0}


def add_colorbar(ax, image, label: str = ''):
    """A colour bar right of ``ax`` for ``image`` (an ``AxesImage``), with :func:`nice_ticks`
    over its colour limits and ``label`` (quantity and unit) along it; returns the Colorbar."""
    vmin, vmax = image.get_clim()
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    if vmax > vmin:
        ticks = nice_ticks(float(vmin), float(vmax))
        bar.set_ticks(ticks.values, labels=ticks.labels)
        if ticks.exponent:
            label = f'{label} ' + r'($\times 10^{%d}$)' % ticks.exponent
    if label:
        bar.set_label(label)
    return bar


# -------------------------------------------------------------------------------- OpenCV

class CvFont(NamedTuple):
    """A Hershey font size: ``scale`` and stroke ``thickness``."""
    scale: float
    thickness: int

    def size(self, text: str) -> Tuple[int, int, int]:
        """(width, height above the baseline, depth below it) of ``text`` in pixels."""
        (w, h), baseline = cv2.getTextSize(text, _FONT, self.scale, self.thickness)
        return w, h, baseline

    @property
    def line_height(self) -> int:
        """Pixels from the top of a capital to the bottom of a descender."""
        _, h, baseline = self.size('Ag')
        return h + baseline

    def put(self, image: np.ndarray, text: str, x: int, top: int,
            colour: Tuple[int, int, int] = INK) -> None:
        """Draw ``text`` with its top-left corner (capital height) at ``(x, top)``, in place."""
        _, h, _ = self.size(text)
        cv2.putText(image, text, (int(x), int(top) + h), _FONT, self.scale, colour,
                    self.thickness, cv2.LINE_AA)

    def fit(self, text: str, width: int) -> str:
        """``text``, shortened with '...' to fit ``width`` pixels (whole if it fits)."""
        if self.size(text)[0] <= width:
            return text
        while text and self.size(text + '...')[0] > width:
            text = text[:-1]
        return text + '...' if text else ''


def cv_font(height: int) -> CvFont:
    """The font of a panel ``height`` pixels high: capitals ``CV_TEXT_FRACTION`` of it."""
    capital = cv2.getTextSize('A', _FONT, 1.0, 1)[0][1]
    scale = max(CV_MIN_SCALE, CV_TEXT_FRACTION * height / capital)
    return CvFont(round(scale, 3), max(1, int(round(scale * 1.5))))  # thin up to scale 1


def panel_gap(height: int) -> int:
    """White space between panels of a row (pixels)."""
    return max(2, height // 80)


def title_strip_height(height: int, lines: int) -> int:
    """Height of :func:`titled_row`'s strip of ``lines`` lines over panels ``height`` high."""
    font = cv_font(height)
    return lines * font.line_height + (lines + 1) * max(2, font.line_height // 4)


def titled_row(tiles: Sequence[np.ndarray], titles: Sequence[str], header: str = '') -> np.ndarray:
    """Panels of one height side by side on white, each titled above, under a ``header`` line.

    The strip is left out for thumbnails, where it would take more than a quarter of the
    panels' height (the words would dwarf the pictures); the panels are then drawn bare.

    Args:
        tiles: (H, W_i, 3) uint8 RGB panels of the same height.
        titles: One per tile ('' for none), centred above it, shortened to its width.
        header: A line above the titles (e.g. the image's name), left-aligned; '' for none.

    Returns:
        (H + strip, sum W_i + gaps, 3) uint8 RGB.
    """
    height = tiles[0].shape[0]
    if any(t.shape[0] != height for t in tiles) or len(titles) != len(tiles):
        raise ValueError('titled_row needs one title per tile and tiles of one height, got '
                         f'{[t.shape[:2] for t in tiles]} and {len(titles)} titles')
    gap = panel_gap(height)
    row = _join(tiles, gap, axis=1)
    lines = (1 if header else 0) + (1 if any(titles) else 0)
    strip = title_strip_height(height, lines) if lines else 0
    if not lines or strip * 4 > height:
        return row
    font, pad = cv_font(height), max(2, cv_font(height).line_height // 4)
    out = np.full((strip + height, row.shape[1], 3), PAPER, np.uint8)
    out[strip:] = row
    y = pad
    if header:
        font.put(out, font.fit(header, row.shape[1] - 2 * pad), pad, y)
        y += font.line_height + pad
    x = 0
    for tile, title in zip(tiles, titles):
        text = font.fit(title, tile.shape[1])
        font.put(out, text, x + (tile.shape[1] - font.size(text)[0]) // 2, y)
        x += tile.shape[1] + gap
    return out


def stack_rows(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack panels vertically (padded on the right to the widest), white between them."""
    width = max(p.shape[1] for p in panels)
    padded = [np.concatenate([p, np.full((p.shape[0], width - p.shape[1], 3), PAPER, np.uint8)],
                             axis=1) for p in panels]
    return _join(padded, gap, axis=0)


def _join(arrays: Sequence[np.ndarray], gap: int, axis: int) -> np.ndarray:
    """Concatenate along ``axis`` with ``gap`` white pixels between consecutive arrays."""
    parts: List[np.ndarray] = []
    for i, a in enumerate(arrays):
        if i and gap:
            shape = list(a.shape)
            shape[axis] = gap
            parts.append(np.full(shape, PAPER, np.uint8))
        parts.append(np.ascontiguousarray(a, dtype=np.uint8))
    return np.concatenate(parts, axis=axis)


def write_rgb(path: str, rgb: np.ndarray) -> None:
    """Write an RGB array with OpenCV (which writes BGR); an error names the file."""
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f'cannot write {path}')
