"""The ``tools/test.py --show-dir`` pictures: titled panels, one ``<image name>.png`` each.

mmseg's ``SegVisualizationHook`` hands every test image to the runner's visualiser. mmseg's own
``SegLocalVisualizer`` writes ``DIR/vis_data/vis_image/test_<name>.jpg_0.png`` through its
storage backends, with class names drawn on the image and the colours at 80 %. These
visualisers draw what :func:`densedino.visualization.draw_overlay` draws for the demo (colours
at 50 %, a legend of the classes present) and depth panels, under titles, and write them
straight into ``out_dir`` as ``<image stem>.png``; ``tools/test.py`` sets ``out_dir`` to
``--show-dir`` and reports :attr:`written`. Without ``out_dir`` they go to the backends as
mmseg's do.
"""
import os
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dist import master_only
from mmseg.visualization import SegLocalVisualizer

from ..registry import VISUALIZERS
from .depth import depth_tiles
from .overlay import blend_labels, classes_present, default_palette, draw_legend
from .style import titled_row, write_rgb


def flat_name(image_path: str, taken: Mapping[str, str]) -> str:
    """The file name (no extension) of an image's panel in a flat folder: its stem; if another
    image of the run took that (``taken``: name -> image path; KITTI frames of two drives),
    the innermost folder where the two paths differ, then the stem (``drive_2_0005``),
    numbered if that is taken too."""
    parts = [p for p in osp.splitext(image_path)[0].replace('\\', '/').split('/') if p]
    name = parts[-1]
    for candidate, source in taken.items():  # the same image again: its panel is replaced
        if source == image_path:
            return candidate
    if name not in taken:
        return name
    other = [p for p in osp.splitext(taken[name])[0].replace('\\', '/').split('/') if p]
    folders, other_folders = parts[-2::-1], other[-2::-1]  # innermost first
    differing = next((a for a, b in zip(folders, other_folders) if a != b), None)
    base = f'{differing}_{name}' if differing else name
    candidate, k = base, 2
    while candidate in taken:  # a third image with the name: number it
        candidate, k = f'{base}_{k}', k + 1
    return candidate


class _PanelFiles:
    """Where a drawn panel goes: ``out_file``, else ``out_dir/<stem>.png``, else the backends."""

    out_dir: Optional[str] = None
    max_panels: Optional[int] = None  # stop drawing after this many (None: every image)
    written: List[str]  # files written so far

    def _full(self) -> bool:
        """``max_panels`` panels are written: the remaining images are not drawn."""
        return self.max_panels is not None and len(self.written) >= self.max_panels
    _sources: Dict[str, str]  # their names -> the images' paths (for :func:`flat_name`)

    def _emit(self, name: str, drawn: np.ndarray, data_sample, show: bool, wait_time: float,
              out_file: Optional[str], step: int) -> None:
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is None and self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
            source = _image_name(name, data_sample)
            stem = flat_name(source, self._sources)
            self._sources[stem] = source
            out_file = osp.join(self.out_dir, stem + '.png')
        if out_file is not None:
            write_rgb(out_file, drawn)
            if out_file not in self.written:
                self.written.append(out_file)
        else:
            self.add_image(name, drawn, step)


def _image_name(name: str, data_sample) -> str:
    """The image file behind a hook's window name (``test_<file>``)."""
    path = None if data_sample is None else data_sample.metainfo.get('img_path')
    if path:
        return path
    for prefix in ('test_', 'val_'):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _labels(pixel_data, shape: Sequence[int]) -> np.ndarray:
    """(H, W) integer labels of a ``PixelData``, resized (nearest) to ``shape`` if needed."""
    labels = pixel_data.data[0].detach().cpu().numpy().astype(np.int64)
    if labels.shape != tuple(shape):
        labels = cv2.resize(labels.astype(np.int32), (shape[1], shape[0]),
                            interpolation=cv2.INTER_NEAREST).astype(np.int64)
    return labels


@VISUALIZERS.register_module()
class SegPanelVisualizer(_PanelFiles, SegLocalVisualizer):
    """Ground truth | prediction overlays and a legend of the classes in either, titled.

    Args:
        name: Instance name (mmengine's visualisers are named singletons).
        out_dir: Folder for ``<image stem>.png`` files (None: the storage backends).
        alpha: Weight of the class colours (0.5: the image stays readable under them).
        max_panels: Draw the first ``max_panels`` images only (None: all).
        **kwargs: ``SegLocalVisualizer`` arguments (``vis_backends``, ``save_dir`` ...).
    """

    def __init__(self, name: str = 'visualizer', *, out_dir: Optional[str] = None,
                 alpha: float = 0.5, max_panels: Optional[int] = None, **kwargs) -> None:
        super().__init__(name=name, alpha=alpha, **kwargs)
        self.out_dir, self.written, self._sources = out_dir, [], {}
        self.max_panels = max_panels

    @master_only
    def add_datasample(self, name: str, image: np.ndarray, data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: Optional[str] = None, step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw the titled panel; ``with_labels`` is ignored (the legend names the classes)."""
        if self._full():
            return
        maps = {}
        if data_sample is not None and draw_gt and 'gt_sem_seg' in data_sample:
            maps['ground truth'] = _labels(data_sample.gt_sem_seg, image.shape[:2])
        if data_sample is not None and draw_pred and 'pred_sem_seg' in data_sample:
            maps['prediction'] = _labels(data_sample.pred_sem_seg, image.shape[:2])
        if not maps:
            return super().add_datasample(name, image, data_sample, draw_gt, draw_pred, show,
                                          wait_time, out_file, step, with_labels)
        drawn = self.draw_panel(image, maps, osp.basename(_image_name(name, data_sample)))
        self._emit(name, drawn, data_sample, show, wait_time, out_file, step)

    def draw_panel(self, image: np.ndarray, maps: dict, header: str = '') -> np.ndarray:
        """``{title: (H, W) labels}`` -> titled overlays of ``image`` plus one legend."""
        classes = list(self.dataset_meta['classes'])
        palette = self.dataset_meta.get('palette')
        palette = default_palette(len(classes)) if palette is None else palette
        image = np.ascontiguousarray(image, dtype=np.uint8)
        ignore = 255
        tiles = [blend_labels(image, np.where(m < len(classes), m, ignore), palette,
                              opacity=self.alpha, ignore_index=ignore) for m in maps.values()]
        ids = classes_present(np.concatenate([m.ravel() for m in maps.values()]),
                              ignore_index=ignore)
        ids = [i for i in ids if i < len(classes)]
        titles = list(maps)
        if ids:
            tiles.append(draw_legend([classes[i] for i in ids], [palette[i] for i in ids],
                                     image.shape[0]))
            titles.append('')
        return titled_row(tiles, titles, header)


def _depth_tiles(image: np.ndarray, data_sample, draw_gt: bool, vmin: Optional[float],
                 vmax: Optional[float], relative: bool, cmap: str
                 ) -> Tuple[List[np.ndarray], List[str]]:
    """(tiles, titles) of image | ground truth | prediction | colour bar for one sample."""
    gt = (data_sample.gt_depth_map.data if draw_gt and 'gt_depth_map' in data_sample else None)
    pred = data_sample.pred_depth_map.data
    box = data_sample.metainfo.get('crop_box')
    if box is not None and image.shape[:2] != tuple(pred.shape[-2:]):
        y1, y2, x1, x2 = box  # the test pipeline cropped (KITTI's KB crop): cut the file too
        image = image[y1:y2, x1:x2]
    tiles = depth_tiles(image, pred, vmin=vmin, vmax=vmax, relative=relative, cmap=cmap, gt=gt)
    titles = ['image'] + (['ground truth'] if gt is not None else []) + ['prediction']
    return tiles, titles + [''] * (len(tiles) - len(titles))


@VISUALIZERS.register_module()
class DepthLocalVisualizer(_PanelFiles, SegLocalVisualizer):
    """Depth panels (image | GT | prediction | colour bar, titled) for ``SegVisualizationHook``.

    Ground truth and prediction share one range: ``vmin``/``vmax`` if given, else the frame's
    percentiles. Samples without a depth prediction are drawn as mmseg draws them.

    Args:
        name: Instance name (mmengine's visualisers are named singletons).
        vmin, vmax: Fixed display range in metres (None: per image).
        relative: Disparity model.
        cmap: Colour map.
        out_dir: Folder for ``<image stem>.png`` files (None: the storage backends).
        max_panels: Draw the first ``max_panels`` images only (None: all).
        **kwargs: ``SegLocalVisualizer`` arguments (``vis_backends``, ``save_dir`` ...).
    """

    def __init__(self, name: str = 'visualizer', *, vmin: Optional[float] = None,
                 vmax: Optional[float] = None, relative: bool = False, cmap: str = 'turbo',
                 out_dir: Optional[str] = None, max_panels: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.vmin, self.vmax, self.relative, self.cmap = vmin, vmax, relative, cmap
        self.out_dir, self.written, self._sources = out_dir, [], {}
        self.max_panels = max_panels

    @master_only
    def add_datasample(self, name: str, image: np.ndarray, data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: Optional[str] = None, step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw image | GT | prediction | colour bar, titled; write it (see the module)."""
        if self._full():
            return
        if data_sample is None or 'pred_depth_map' not in data_sample:
            return super().add_datasample(name, image, data_sample, draw_gt, draw_pred, show,
                                          wait_time, out_file, step, with_labels)
        tiles, titles = _depth_tiles(image, data_sample, draw_gt, self.vmin, self.vmax,
                                     self.relative, self.cmap)
        header = osp.basename(_image_name(name, data_sample))
        self._emit(name, titled_row(tiles, titles, header), data_sample, show, wait_time,
                   out_file, step)
