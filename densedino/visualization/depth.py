"""Depth pictures: colour-mapped depth, a labelled colour bar, and image | depth panels.

Metric depth is shown with near = warm colours and a colour bar in metres; relative models
(disparity, larger = nearer) use the same near = warm convention and a bar labelled "relative".
Pixels without a value (0 in ground truth, or a mask) are drawn black. Everything here is RGB,
uint8 and numpy except :class:`DepthLocalVisualizer`, which plugs the panels into mmseg's
visualisation hook (``tools/test.py --show-dir``).
"""
import functools
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..registry import VISUALIZERS

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT = (255, 255, 255)
_BACKGROUND = (32, 32, 32)


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


def _ticks(vmin: float, vmax: float, count: int = 5) -> List[float]:
    """Round tick values inside [vmin, vmax] (1-2-5 steps)."""
    span = vmax - vmin
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(vmin / step - 1e-9) * step
    return [first + i * step for i in range(int((vmax - first) / step + 1e-9) + 1)]


def draw_colorbar(height: int, vmin: float, vmax: float, *, relative: bool = False,
                  cmap: str = 'turbo', label: Optional[str] = None, width: int = 0) -> np.ndarray:
    """A vertical colour bar with tick labels, for the right of a depth panel.

    Args:
        height: Output height (the panel's).
        vmin, vmax: The range the depth was coloured with.
        relative: Label "relative" without numbers (disparity models) instead of metres.
        cmap: The colour map used for the depth.
        label: Title above the bar; default "depth (m)" or "relative".
        width: Output width; 0 picks one that fits the labels.

    Returns:
        (height, width, 3) uint8 RGB, top = far for depth (near at the bottom, as the map is
        warm near), top = near for disparity.
    """
    if height < 40:
        raise ValueError(f'a colour bar needs a height of at least 40 pixels, got {height}')
    label = label or ('relative' if relative else 'depth (m)')
    scale = max(0.35, min(0.6, height / 800))
    thick = 1
    (label_w, label_h), _ = cv2.getTextSize(label, _FONT, scale, thick)
    ticks = [] if relative else _ticks(vmin, vmax)
    digits = 0 if vmax - vmin >= 5 else (1 if vmax - vmin >= 0.5 else 2)
    texts = [f'{t:.{digits}f}' for t in ticks]
    text_w = max([cv2.getTextSize(s, _FONT, scale, thick)[0][0] for s in texts] or [0])
    bar_w = max(12, height // 25)
    width = width or max(label_w, bar_w + 6 + text_w) + 12
    out = np.full((height, width, 3), _BACKGROUND, np.uint8)
    cv2.putText(out, label, (6, label_h + 6), _FONT, scale, _TEXT, thick, cv2.LINE_AA)
    top, bottom = label_h + 16, height - 10
    if bottom - top < 10:
        return out
    # Row r shows value v(r): depth increases upwards; disparity increases upwards too (near top).
    fractions = np.linspace(1.0, 0.0, bottom - top)
    values = vmin + fractions * (vmax - vmin)
    column = colorize_depth(values[:, None], vmin, vmax, relative=relative, cmap=cmap,
                            valid=np.ones((len(values), 1), bool))
    out[top:bottom, 6:6 + bar_w] = column
    if relative:
        for text, frac in (('near', 1.0), ('far', 0.0)):
            y = top + int((1.0 - frac) * (bottom - top - 1))
            cv2.putText(out, text, (6 + bar_w + 4, min(max(y + 4, top + 8), bottom)), _FONT,
                        scale, _TEXT, thick, cv2.LINE_AA)
        return out
    for text, value in zip(texts, ticks):
        y = top + int(round((vmax - value) / (vmax - vmin) * (bottom - top - 1)))
        cv2.line(out, (6 + bar_w, y), (6 + bar_w + 3, y), _TEXT, 1)
        cv2.putText(out, text, (6 + bar_w + 5, y + 4), _FONT, scale, _TEXT, thick, cv2.LINE_AA)
    return out


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
        (H, W_total, 3) uint8 RGB.
    """
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
    return np.concatenate(tiles, axis=1)


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


def _seg_local_visualizer():
    from mmseg.visualization import SegLocalVisualizer
    return SegLocalVisualizer


@VISUALIZERS.register_module()
class DepthLocalVisualizer(_seg_local_visualizer()):
    """mmseg's visualiser with depth drawn as :func:`depth_panel` (image | GT | prediction | bar).

    Used by ``SegVisualizationHook`` (``tools/test.py --show-dir``). Ground truth and prediction
    share one range: ``vmin``/``vmax`` if given, else the frame's percentiles.

    Args:
        vmin, vmax: Fixed display range in metres (None: per image).
        relative: Disparity model.
        cmap: Colour map.
        name: Instance name (mmengine's visualisers are named singletons).
        **kwargs: ``SegLocalVisualizer`` arguments (``vis_backends``, ``save_dir`` ...).
    """

    def __init__(self, name: str = 'visualizer', *, vmin: Optional[float] = None,
                 vmax: Optional[float] = None, relative: bool = False, cmap: str = 'turbo',
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.vmin, self.vmax, self.relative, self.cmap = vmin, vmax, relative, cmap

    def add_datasample(self, name: str, image: np.ndarray, data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: Optional[str] = None, step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw image | GT | prediction | colour bar; save to the backends or ``out_file``."""
        if data_sample is None or 'pred_depth_map' not in data_sample:
            return super().add_datasample(name, image, data_sample, draw_gt, draw_pred, show,
                                          wait_time, out_file, step, with_labels)
        gt = (data_sample.gt_depth_map.data if draw_gt and 'gt_depth_map' in data_sample
              else None)
        pred = data_sample.pred_depth_map.data
        box = data_sample.metainfo.get('crop_box')
        if box is not None and image.shape[:2] != tuple(pred.shape[-2:]):
            y1, y2, x1, x2 = box  # the test pipeline cropped (KITTI's KB crop): cut the file too
            image = image[y1:y2, x1:x2]
        drawn = depth_panel(image, pred, vmin=self.vmin, vmax=self.vmax,
                            relative=self.relative, cmap=self.cmap, gt=gt)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        else:
            self.add_image(name, drawn, step)


def stack_rows(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack panels vertically (padded on the right to the widest), with a gap between them."""
    width = max(p.shape[1] for p in panels)
    rows = []
    for i, p in enumerate(panels):
        pad = np.full((p.shape[0], width - p.shape[1], 3), _BACKGROUND, np.uint8)
        rows.append(np.concatenate([p, pad], axis=1))
        if gap and i < len(panels) - 1:
            rows.append(np.full((gap, width, 3), _BACKGROUND, np.uint8))
    return np.concatenate(rows, axis=0)
