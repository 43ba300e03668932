"""Depth pictures: colour-mapped depth, a labelled colour bar, and image | depth panels.

Metric depth is shown with near = warm colours and a colour bar in metres; relative models
(disparity, larger = nearer) use the same near = warm convention and a bar labelled "relative".
Pixels without a value (0 in ground truth, or a mask) are drawn black. Everything here is RGB,
uint8 and numpy; fonts, ticks and colours follow :mod:`densedino.visualization.style`.
:class:`densedino.visualization.visualizers.DepthLocalVisualizer` plugs the panels into mmseg's
visualisation hook (``tools/test.py --show-dir``).
"""
import functools
from typing import List, NamedTuple, Optional, Tuple

import cv2
import numpy as np

from .style import INK, PAPER, TICK_MIN, CvFont, cv_font, nice_ticks

Box4 = Tuple[int, int, int, int]


@functools.lru_cache(maxsize=16)
def _lut(cmap: str) -> np.ndarray:
    """A (256, 3) uint8 RGB lookup table of a matplotlib colour map (cached, read-only)."""
    from matplotlib import colormaps
    if cmap not in colormaps:
        raise ValueError(f'unknown matplotlib colour map {cmap!r}')
    table = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    table.flags.writeable = False
    return table


def _as_numpy(depth) -> np.ndarray:
    if hasattr(depth, 'detach'):
        depth = depth.detach().float().cpu().numpy()
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.ndim != 2:
        raise ValueError(f'a depth map must be (H, W) or (1, H, W), got shape {depth.shape}')
    return depth


def depth_range(depth, valid: Optional[np.ndarray] = None,
                percentiles: Tuple[float, float] = (2.0, 98.0)) -> Tuple[float, float]:
    """A display range: the given percentiles of the valid (finite, > 0 unless masked) values."""
    depth = _as_numpy(depth)
    mask = np.isfinite(depth) & (depth > 0) if valid is None else np.asarray(valid, bool)
    values = depth[mask]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, percentiles)
    return float(lo), float(max(hi, lo + 1e-6))


def colorize_depth(depth, vmin: float, vmax: float, *, relative: bool = False,
                   cmap: str = 'turbo', valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Colour-map a depth (or disparity) map; near is warm in both cases.

    Args:
        depth: (H, W) or (1, H, W) array or tensor.
        vmin, vmax: Display range (values outside are clipped).
        relative: The map is disparity (larger = nearer) rather than depth.
        cmap: matplotlib colour map whose high end is warm ('turbo', 'magma', 'Spectral_r' ...).
        valid: Pixels to draw; default every finite value > 0 for depth (0 = no measurement),
            every finite value for disparity. Others are black.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    depth = _as_numpy(depth)
    if not vmax > vmin:
        raise ValueError(f'need vmax > vmin, got vmin={vmin}, vmax={vmax}')
    t = (np.clip(depth, vmin, vmax) - vmin) / (vmax - vmin)
    if not relative:
        t = 1.0 - t  # near (small depth) -> high end of the map
    index = np.nan_to_num(t * 255.0, nan=0.0).round().astype(np.int64)
    rgb = _lut(cmap)[index]
    if valid is None:
        valid = np.isfinite(depth) & ((depth > 0) | relative)
    rgb[~np.asarray(valid, bool)] = 0
    return rgb


class ColorbarLayout(NamedTuple):
    """Where :func:`draw_colorbar` puts each element; boxes are (x0, y0, x1, y1), ends excluded.

    Attributes:
        width: Width of the bar's panel.
        font: Its font (:func:`densedino.visualization.style.cv_font` of the height).
        label, label_box: The title above the bar and its box (descenders included).
        bar_box: The colour ramp.
        ticks: (text, row of the tick mark, text box) per tick, top to bottom.
    """
    width: int
    font: CvFont
    label: str
    label_box: Box4
    bar_box: Box4
    ticks: List[Tuple[str, int, Box4]]


def colorbar_layout(height: int, vmin: float, vmax: float, *, relative: bool = False,
                    label: Optional[str] = None, width: int = 0) -> ColorbarLayout:
    """Geometry of the colour bar: label on top, ramp below it, ticks on the ramp's right.

    The ramp starts half a tick label below the label's descenders, so the top tick label
    cannot touch it; ticks are :func:`nice_ticks` (4 to 7), fewer only where the ramp is too
    short for them to stand a label apart. Disparity bars say 'near' and 'far' instead.
    """
    font = cv_font(height)
    margin = max(4, font.line_height // 3)
    label_bottom = margin + font.line_height  # room for capitals and descenders
    text_h = font.size('0')[1]
    top = label_bottom + margin + (text_h + 1) // 2
    bottom = max(top + 1, height - margin - (text_h + 1) // 2)
    bar = (margin, top, margin + max(12, height // 25), bottom)
    label = label or ('relative' if relative else 'depth (m)')
    if relative:
        texts, fractions = ['near', 'far'], [0.0, 1.0]
    else:
        texts, fractions, exponent = _fitting_ticks(vmin, vmax, bottom - top,
                                                    text_h + margin // 2)
        label += f' x1e{exponent}' if exponent else ''
    label_box = (margin, margin, margin + font.size(label)[0], label_bottom)
    ticks = []
    for text, fraction in zip(texts, fractions):
        row = top + int(round(fraction * (bottom - top - 1)))
        x0, y0 = bar[2] + margin + 1, row - text_h // 2
        ticks.append((text, row, (x0, y0, x0 + font.size(text)[0], y0 + text_h)))
    needed = max([label_box[2]] + [box[2] for _, _, box in ticks]) + margin
    return ColorbarLayout(width or needed, font, label, label_box, bar, ticks)


def _fitting_ticks(vmin: float, vmax: float, length: int, spacing: int
                   ) -> Tuple[List[str], List[float], int]:
    """Tick labels, their fractions down a ramp of ``length`` rows (top = ``vmax``), at least
    ``spacing`` rows apart (+1 for rounding), and the labels' power of ten (:class:`Ticks`).

    The most ticks :func:`nice_ticks` gives that still fit: 4 or more on a ramp of ordinary
    height, fewer (a wider round step) on a thumbnail's."""
    for minimum in range(TICK_MIN, 0, -1):
        ticks = nice_ticks(vmin, vmax, minimum=minimum)
        values = ticks.values
        if len(values) < 2 or (values[1] - values[0]) / (vmax - vmin) * (length - 1) >= spacing + 1:
            break
    else:
        ticks = ticks._replace(values=values[-1:], labels=ticks.labels[-1:])
    pairs = list(zip(ticks.labels, ticks.values))[::-1]  # top (largest) first
    return ([t for t, _ in pairs], [(vmax - v) / (vmax - vmin) for _, v in pairs],
            ticks.exponent)


def draw_colorbar(height: int, vmin: float, vmax: float, *, relative: bool = False,
                  cmap: str = 'turbo', label: Optional[str] = None, width: int = 0) -> np.ndarray:
    """A vertical colour bar with tick labels, for the right of a depth panel.

    Args:
        height: Output height (the panel's).
        vmin, vmax: The range the depth was coloured with.
        relative: Label "relative", with "near" and "far" instead of numbers (disparity).
        cmap: The colour map used for the depth.
        label: Title above the bar; default "depth (m)" or "relative".
        width: Output width; 0 picks one that fits the labels.

    Returns:
        (height, width, 3) uint8 RGB, black on white; top = far for depth (near at the bottom,
        as the map is warm near), top = near for disparity. Layout: :func:`colorbar_layout`.
    """
    if height < 40:
        raise ValueError(f'a colour bar needs a height of at least 40 pixels, got {height}')
    if not vmax > vmin:
        raise ValueError(f'need vmax > vmin, got vmin={vmin}, vmax={vmax}')
    layout = colorbar_layout(height, vmin, vmax, relative=relative, label=label, width=width)
    font = layout.font
    out = np.full((height, layout.width, 3), PAPER, np.uint8)
    font.put(out, layout.label, layout.label_box[0], layout.label_box[1])
    x0, top, x1, bottom = layout.bar_box
    # Row r shows value v(r): depth increases upwards; disparity increases upwards too (near top).
    values = vmin + np.linspace(1.0, 0.0, bottom - top) * (vmax - vmin)
    out[top:bottom, x0:x1] = colorize_depth(values[:, None], vmin, vmax, relative=relative,
                                            cmap=cmap, valid=np.ones((len(values), 1), bool))
    cv2.rectangle(out, (x0 - 1, top - 1), (x1, bottom), INK, 1)
    for text, row, box in layout.ticks:
        cv2.line(out, (x1, row), (box[0] - 2, row), INK, 1)
        font.put(out, text, box[0], box[1])
    return out


def depth_tiles(image: Optional[np.ndarray], depth, *, vmin: Optional[float] = None,
                vmax: Optional[float] = None, relative: bool = False, cmap: str = 'turbo',
                gt=None, colorbar: bool = True) -> List[np.ndarray]:
    """The tiles of :func:`depth_panel`, separate (for titles above each, as the ``--show-dir``
    panels have): [image,] [ground truth,] prediction[, colour bar], all at one height."""
    depth = _as_numpy(depth)
    height, width = (image.shape[:2] if image is not None else depth.shape)
    if depth.shape != (height, width):
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    if vmin is None or vmax is None:
        lo, hi = depth_range(depth, valid=np.isfinite(depth))
        if gt is not None:
            glo, ghi = depth_range(gt)
            lo, hi = min(lo, glo), max(hi, ghi)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    tiles = [] if image is None else [np.ascontiguousarray(image, dtype=np.uint8)]
    if gt is not None:
        g = _as_numpy(gt)
        if g.shape != (height, width):
            g = cv2.resize(g, (width, height), interpolation=cv2.INTER_NEAREST)
        tiles.append(colorize_depth(g, vmin, vmax, relative=relative, cmap=cmap))
    tiles.append(colorize_depth(depth, vmin, vmax, relative=relative, cmap=cmap,
                                valid=np.isfinite(depth)))
    if colorbar and height >= 40:
        tiles.append(draw_colorbar(height, vmin, vmax, relative=relative, cmap=cmap))
    return tiles


def depth_panel(image: Optional[np.ndarray], depth, *, vmin: Optional[float] = None,
                vmax: Optional[float] = None, relative: bool = False, cmap: str = 'turbo',
                gt=None, colorbar: bool = True) -> np.ndarray:
    """Image | [ground truth |] prediction | colour bar, side by side at the image's height.

    Args:
        image: (H, W, 3) uint8 RGB, or None to draw the depth alone.
        depth: Predicted depth / disparity, (H, W); resized (nearest) to the image if it differs.
        vmin, vmax: Display range; default the 2-98th percentiles of the prediction (and of
            the ground truth's measured pixels when given).
        relative: Disparity model (no metres on the bar).
        cmap: Colour map.
        gt: Optional (H, W) ground truth (0 = no measurement), drawn with the same range.
        colorbar: Append the colour bar (left out for panels under 40 pixels tall).

    Returns:
        (H, W_total, 3) uint8 RGB: the tiles of :func:`depth_tiles`, touching (a video frame;
        :func:`densedino.visualization.style.titled_row` spaces and titles them).
    """
    return np.concatenate(depth_tiles(image, depth, vmin=vmin, vmax=vmax, relative=relative,
                                      cmap=cmap, gt=gt, colorbar=colorbar), axis=1)


class RangeSmoother:
    """An exponentially smoothed display range, so a video's colours do not flicker.

    Args:
        momentum: Weight of the previous range (0 = no smoothing).
        percentiles: Percentiles of each frame's values that define its range.
    """

    def __init__(self, momentum: float = 0.9,
                 percentiles: Tuple[float, float] = (2.0, 98.0)) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        self.momentum = momentum
        self.percentiles = percentiles
        self.range: Optional[Tuple[float, float]] = None

    def update(self, depth) -> Tuple[float, float]:
        """Fold one frame's range in; returns the smoothed (vmin, vmax)."""
        d = _as_numpy(depth)
        lo, hi = depth_range(d, valid=np.isfinite(d), percentiles=self.percentiles)
        if self.range is None:
            self.range = (lo, hi)
        else:
            m = self.momentum
            self.range = (m * self.range[0] + (1 - m) * lo, m * self.range[1] + (1 - m) * hi)
        return self.range
