"""One figure style: readable fonts, colour bars with several labelled ticks, titled panels,
legends off the data, and flat ``tools/test.py --show-dir`` output.

matplotlib figures are checked through their artists (the tools return the Figure); OpenCV
panels through the geometry the drawing functions compute.
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import AxesImage
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

import densedino  # noqa: F401  (registries)
from densedino.visualization import (DEFAULT_DPI, MIN_FONT_PT, colorbar_layout, cv_font,
                                     depth_panel, draw_colorbar, flat_name, nice_ticks,
                                     titled_row)
from densedino.visualization.style import title_strip_height
from tools import plot_pretrain
from tools.visualize_features import build_parser, describe_model
from tools.visualize_features import main as feature_main

from .depth_fixtures import write_nyu_split
from .seg_fixtures import write_ade20k_folder

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = ['--overrides', 'depth=1', 'embed_dim=32', 'num_heads=2']
MIN_PIXELS = 18  # a 9 pt label at 150 dpi is 18.75 pixels (em)


def _boxes_overlap(a, b) -> bool:
    """Whether two (x0, y0, x1, y1) boxes (ends excluded) share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --------------------------------------------------------------------------------- ticks

@pytest.mark.parametrize('seed', range(3))
def test_nice_ticks_give_four_to_seven_round_labels_inside_the_range(seed):
    rng = np.random.default_rng(seed)
    for _ in range(2000):
        scale = 10 ** rng.uniform(-5, 4)
        lo = rng.uniform(-2, 2) * scale
        hi = lo + scale * 10 ** rng.uniform(-2, 1)
        ticks = nice_ticks(lo, hi)
        assert 4 <= len(ticks.values) <= 7, (lo, hi, ticks)
        assert all(lo - 1e-12 * scale <= v <= hi + 1e-12 * scale for v in ticks.values)
        assert len(set(ticks.labels)) == len(ticks.labels), ticks  # no two labels alike
        step = (ticks.values[1] - ticks.values[0]) / 10.0 ** ticks.exponent
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6, ticks


def test_nice_ticks_cases_that_used_to_give_two_ticks():
    assert nice_ticks(1.2, 3.24).labels == ['1.5', '2.0', '2.5', '3.0']
    assert nice_ticks(0.5, 8.0).labels == ['2', '4', '6', '8']
    small = nice_ticks(0.0031, 0.0052)
    assert small.exponent == -3 and small.labels[0] == '3.5'
    with pytest.raises(ValueError, match='vmax > vmin'):
        nice_ticks(1.0, 1.0)


# ------------------------------------------------------------------------- OpenCV panels

@pytest.mark.parametrize('height', [160, 240, 375, 480, 1024])
@pytest.mark.parametrize('value_range', [(1.2, 3.24), (0.05, 9.8), (3.0, 79.5), (0.6, 0.95)])
def test_depth_colorbar_ticks_are_many_and_clear_of_the_label(height, value_range):
    layout = colorbar_layout(height, *value_range)
    assert len(layout.ticks) >= 4, layout.ticks
    boxes = [box for _, _, box in layout.ticks]
    for box in boxes:
        assert not _boxes_overlap(box, layout.label_box), (box, layout.label_box)
        assert 0 <= box[1] and box[3] <= height and box[2] <= layout.width
    for upper, lower in zip(boxes, boxes[1:]):  # top to bottom, no two labels touching
        assert upper[3] < lower[1]
    rows = [row for _, row, _ in layout.ticks]
    assert all(layout.bar_box[1] <= r < layout.bar_box[3] for r in rows)
    lo, hi = value_range
    for text, row, _ in layout.ticks:  # each label sits at its value's row (top = far)
        fraction = (hi - float(text)) / (hi - lo)
        expected = layout.bar_box[1] + fraction * (layout.bar_box[3] - layout.bar_box[1] - 1)
        assert abs(row - expected) <= 1


def test_small_colorbars_never_overlap_and_draw_what_the_layout_says():
    for height in (40, 48, 64, 90, 120):
        layout = colorbar_layout(height, 1.2, 3.24)
        boxes = [box for _, _, box in layout.ticks]
        assert boxes and not any(_boxes_overlap(b, layout.label_box) for b in boxes)
        assert all(a[3] < b[1] for a, b in zip(boxes, boxes[1:]))
    bar = draw_colorbar(240, 1.2, 3.24)
    layout = colorbar_layout(240, 1.2, 3.24)
    assert bar.shape == (240, layout.width, 3)
    x0, y0, x1, y1 = layout.label_box
    assert (bar[y0:y1, x0:x1] < 128).any()  # the label is drawn where the layout put it
    relative = colorbar_layout(240, 0.1, 1.0, relative=True)
    assert [t for t, _, _ in relative.ticks] == ['near', 'far'] and relative.label == 'relative'


def test_opencv_text_follows_the_panel_height_like_the_matplotlib_sizes():
    small, large = cv_font(100), cv_font(1000)
    assert small.scale == pytest.approx(0.4)  # never below the legible minimum
    assert large.scale > 2 * small.scale
    capital = large.size('A')[1]
    assert capital / 1000 == pytest.approx(0.035, abs=0.004)


def test_titled_row_titles_each_tile_and_leaves_thumbnails_bare():
    tiles = [np.zeros((200, 150, 3), np.uint8), np.zeros((200, 120, 3), np.uint8)]
    row = titled_row(tiles, ['ground truth', 'prediction'], 'a_long_image_name.jpg')
    strip = title_strip_height(200, 2)
    assert row.shape[0] == 200 + strip and (row[:strip] < 128).any()
    assert row.shape[1] == 150 + 120 + 2  # the gap between tiles
    thumbs = [t[:48] for t in tiles]
    assert titled_row(thumbs, ['ground truth', 'prediction']).shape[0] == 48
    with pytest.raises(ValueError, match='one title per tile'):
        titled_row(tiles, ['one'])


def test_depth_panel_keeps_the_image_height_for_videos():
    image = np.zeros((96, 128, 3), np.uint8)
    depth = np.linspace(1, 5, 96 * 128, dtype=np.float32).reshape(96, 128)
    assert depth_panel(image, depth).shape[0] == 96


def test_flat_names_are_the_stem_unless_two_images_share_it():
    taken = {}
    for path in ('a/drive_1/data/0005.png', 'a/drive_2/data/0005.png', 'x/ADE_1.jpg',
                 'b/drive_2/data/0005.png', '0005.png'):
        name = flat_name(path, taken)
        assert name not in taken
        taken[name] = path
    assert list(taken) == ['0005', 'drive_2_0005', 'ADE_1', 'drive_2_0005_2', '0005_2']
    assert flat_name('a/drive_2/data/0005.png', taken) == 'drive_2_0005'  # drawn again


# ------------------------------------------------------------------- matplotlib figures

def _texts(fig):
    """Every visible, non-empty text the figure draws (titles, labels, ticks, legends)."""
    FigureCanvasAgg(fig).draw()
    out = []
    for text in fig.findobj(lambda a: hasattr(a, 'get_text') and hasattr(a, 'get_fontsize')):
        axes = getattr(text, 'axes', None)
        if not (text.get_visible() and text.get_text().strip()):
            continue
        if axes is None or axes.axison or text is axes.title:  # off axes draw their title only
            out.append(text)
    return out


def _assert_readable(fig):
    texts = _texts(fig)
    assert texts
    for text in texts:
        size = text.get_fontsize()
        assert size >= MIN_FONT_PT, (text.get_text(), size)
        assert size * DEFAULT_DPI / 72 >= MIN_PIXELS


def _write_png(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return str(path)


def _feature_figure(tmp_path, mode, *extra):
    images = [_write_png(tmp_path / 'a.png', 40, 56), _write_png(tmp_path / 'b.png', 42, 70, 1)]
    backbone = 'dinov3_vits16' if mode == 'similarity' else 'dinov2_vits14'
    args = build_parser(mode).parse_args([*images, '--backbone', backbone, '--size', '0',
                                          '--out', str(tmp_path / f'{mode}.png'), *TINY, *extra])
    return feature_main(args)


@pytest.mark.parametrize('mode,extra', [('attention', ['--threshold', '0.6', '--max-heads', '2']),
                                        ('similarity', ['--query', '10', '12'])])
def test_every_map_has_a_colour_bar_with_labelled_ticks(tmp_path, mode, extra):
    fig = _feature_figure(tmp_path, mode, *extra)
    maps = [im for ax in fig.axes for im in ax.get_children()
            if isinstance(im, AxesImage) and im.get_array().ndim == 2]
    assert len(maps) == (2 * 3 if mode == 'attention' else 2)  # mean + 2 heads, or similarity
    for image in maps:
        assert image.colorbar is not None
        labels = [t.get_text() for t in image.colorbar.ax.get_yticklabels() if t.get_text()]
        assert len(labels) >= 4, labels
        assert image.colorbar.ax.get_ylabel()  # what the colour means
    legend, = fig.legends  # the outline / query mark is explained, below the grid
    text = legend.get_texts()[0].get_text()
    assert ('60%' in text) if mode == 'attention' else (text == 'query patch')
    columns = 4 if mode == 'attention' else 2  # the first row's panels come first
    assert all(ax.get_title() for ax in fig.axes[:columns])
    _assert_readable(fig)


def test_titles_describe_the_model_with_its_overrides(tmp_path):
    fig = _feature_figure(tmp_path, 'pca')
    title = fig.get_suptitle()
    assert 'dinov2_vits14 (depth=1, embed_dim=32, num_heads=2)' in title
    assert 'RANDOM WEIGHTS' in title
    _assert_readable(fig)
    named = argparse.Namespace(backbone='dinov2_vits14', overrides={'depth': 4},
                               checkpoint='/runs/x/teacher_final.pth')
    assert describe_model(named) == 'dinov2_vits14 (depth=4), teacher_final.pth'


def test_knn_legend_covers_no_dashed_line(tmp_path):
    series = {'loss': [(10, 3.0), (20, 2.0), (30, 1.5)],
              'knn/top1_k10': [(0, 30.0), (15, 45.0), (30, 60.0)],
              'knn/top1_k20': [(0, 32.0), (15, 44.0), (30, 57.0)]}
    fig = plot_pretrain.draw(series)
    _assert_readable(fig)
    ax = fig.axes[1]
    legend = ax.get_legend()
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries == ['k=10', 'k=20', 'at initialisation']
    assert legend.legend_handles[-1].get_linestyle() == '--'  # the entry looks like the lines
    box = legend.get_window_extent()
    frame = ax.get_window_extent()
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == '--']
    assert len(dashed) == 2
    for line in dashed:
        y = ax.transData.transform((0, line.get_ydata()[0]))[1]
        inside_x = box.x0 < frame.x1 and frame.x0 < box.x1
        assert not (inside_x and box.y0 <= y <= box.y1), (box, y)


# ------------------------------------------------------------------------ --show-dir

def _save_untrained(cfg: Config, path) -> str:
    """A checkpoint of the config's model as initialised (panels need no trained weights)."""
    from densedino.registry import MODELS
    with DefaultScope.overwrite_default_scope('densedino'):
        model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def _small_loaders(cfg: Config, data_root: str) -> None:
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, 1
        dl.dataset.data_root = data_root
    cfg.log_level = 'WARNING'


def _run_test_tool(cfg_path, ckpt, show, work) -> str:
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', str(cfg_path), ckpt, '--show-dir', str(show),
         '--work-dir', str(work)], cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_show_dir_writes_titled_seg_panels_one_per_image(tmp_path):
    size = (160, 208)
    root = write_ade20k_folder(str(tmp_path / 'ade'), num_train=1, num_val=3, size=size)
    cfg = Config.fromfile(osp.join(REPO, 'configs/seg/ade20k_linear.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False,
                              arch_overrides=dict(depth=1, embed_dim=32, num_heads=2))
    cfg.model.test_cfg = ConfigDict(mode='whole')
    _small_loaders(cfg, root)
    cfg.dump(str(tmp_path / 'seg.py'))
    show = tmp_path / 'vis'
    out = _run_test_tool(tmp_path / 'seg.py', _save_untrained(cfg, tmp_path / 'm.pth'), show,
                         tmp_path / 'work')
    stems = [f'ADE_val_{i:08d}' for i in (1, 2, 3)]
    assert sorted(os.listdir(show)) == [s + '.png' for s in stems]  # flat: no vis_data/
    assert f'wrote 3 panels to {show}' in out
    panel = cv2.imread(str(show / 'ADE_val_00000001.png'))[..., ::-1]
    strip = title_strip_height(size[0], 2)
    assert panel.shape[0] == size[0] + strip  # titles above
    assert panel.shape[1] > 2 * size[1]  # ground truth | prediction | legend
    # ground truth tile: the dataset's class colours at 50 % over the image
    from densedino.registry import DATASETS
    with DefaultScope.overwrite_default_scope('densedino'):
        dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    palette = np.asarray(dataset.metainfo['palette'], np.float64)
    image = cv2.imread(osp.join(root, 'images/validation', stems[0] + '.jpg'))[..., ::-1]
    label = cv2.imread(osp.join(root, 'annotations/validation', stems[0] + '.png'), 0)
    y, x = np.argwhere(label > 0)[0]
    expected = 0.5 * image[y, x] + 0.5 * palette[label[y, x] - 1]  # reduce_zero_label
    np.testing.assert_allclose(panel[strip + y, x], expected, atol=3)


def test_show_dir_writes_titled_depth_panels(tmp_path):
    size = (160, 208)
    root = write_nyu_split(str(tmp_path / 'nyu'), num_train=1, num_test=2, size=size)
    cfg = Config.fromfile(osp.join(REPO, 'configs/depth/nyu_linear.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False, out_indices='last',
                              arch_overrides=dict(depth=1, embed_dim=32, num_heads=2))
    _small_loaders(cfg, root)
    cfg.test_evaluator.crop = None  # the Eigen crop is defined for 480 x 640 only
    cfg.dump(str(tmp_path / 'depth.py'))
    show = tmp_path / 'panels'
    out = _run_test_tool(tmp_path / 'depth.py', _save_untrained(cfg, tmp_path / 'm.pth'), show,
                         tmp_path / 'work')
    assert sorted(os.listdir(show)) == ['rgb_00000.png', 'rgb_00001.png']
    assert re.search(rf'wrote 2 panels to {re.escape(str(show))}', out)
    panel = cv2.imread(str(show / 'rgb_00000.png'))
    assert panel.shape[0] == size[0] + title_strip_height(size[0], 2)
    assert panel.shape[1] > 3 * size[1]  # image | ground truth | prediction | colour bar
