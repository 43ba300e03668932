"""Tests for densedino.datasets.synthetic (the procedural scene generator) and synthetic_writers."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from densedino.datasets import (SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, SceneConfig, SceneGenerator,
                                write_ade20k, write_kitti, write_nyu)

SMALL = SceneConfig(image_size=(96, 128))
K = len(SYNTHETIC_CLASSES)


@pytest.fixture(scope='module')
def samples():
    gen = SceneGenerator(SMALL, seed=3)
    return [gen.sample(i) for i in range(50)]


def read(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    array = cv2.imread(str(path), flags)
    assert array is not None, path
    return array


# ----------------------------------------------------------------------------- generator

def test_classes_and_palette():
    assert SYNTHETIC_CLASSES[0] == 'background' and 7 <= K - 1 <= 10
    assert len(set(SYNTHETIC_CLASSES)) == K
    assert len(SYNTHETIC_PALETTE) == K and all(len(c) == 3 and all(0 <= v <= 255 for v in c)
                                               for c in SYNTHETIC_PALETTE)


def test_determinism_is_per_index_and_order_free():
    a, b = SceneGenerator(SMALL, seed=7), SceneGenerator(SMALL, seed=7)
    first = a.sample(5)
    b.sample(9)  # other calls in between must not matter
    second = b[5]
    for name in ('image', 'seg', 'depth', 'instances'):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.image_label == second.image_label and first.objects == second.objects
    assert not np.array_equal(a.sample(6).image, first.image)
    assert not np.array_equal(SceneGenerator(SMALL, seed=8).sample(5).image, first.image)


def test_shapes_dtypes_and_ranges(samples):
    h, w = SMALL.image_size
    lo, hi = SMALL.depth_range
    for s in samples[:10]:
        assert s.image.shape == (h, w, 3) and s.image.dtype == np.uint8
        assert s.seg.shape == (h, w) and s.seg.dtype == np.uint8 and s.seg.max() < K
        assert s.depth.shape == (h, w) and s.depth.dtype == np.float32
        assert np.all(s.depth >= lo) and np.all(s.depth <= hi) and np.all(np.isfinite(s.depth))
        assert s.focal == pytest.approx(SMALL.focal_px) and s.principal[0] == w / 2
        assert s.image.std() > 10  # neither flat nor blank


def test_default_size_is_non_square_and_outdoor_is_wide():
    assert SceneGenerator().sample(0).image.shape == (240, 320, 3)
    cfg = SceneConfig.outdoor(image_size=(64, 224))
    s = SceneGenerator(cfg).sample(0)
    assert s.image.shape == (64, 224, 3) and s.depth.max() <= 80.0
    assert s.focal == pytest.approx(721.5377 / 1242 * 224)


def test_every_class_appears(samples):
    seen = np.zeros(K, bool)
    for s in samples:
        seen[np.unique(s.seg)] = True
    assert seen.all(), [c for c, ok in zip(SYNTHETIC_CLASSES, seen) if not ok]
    labels = np.bincount([s.image_label for s in samples], minlength=K)
    assert labels[0] == 0 and (labels[1:] > 0).sum() >= K - 2  # image labels spread over the classes


def test_image_label_is_most_frequent_object_class(samples):
    for s in samples:
        counts = np.bincount(s.seg.ravel(), minlength=K)[1:]
        assert s.image_label == int(counts.argmax()) + 1


def test_occlusion_happens_and_instances_match(samples):
    occluded = 0
    for s in samples[:20]:
        visible = np.bincount(s.instances.ravel(), minlength=len(s.objects) + 1)[1:]
        assert [o.visible for o in s.objects] == visible.tolist()
        assert all(o.visible <= o.area for o in s.objects)
        for i, o in enumerate(s.objects):
            assert np.all(s.seg[s.instances == i + 1] == o.class_id)
        assert [o.depth for o in s.objects] == sorted((o.depth for o in s.objects), reverse=True)
        occluded += sum(0 < o.visible < o.area for o in s.objects)
    assert occluded >= 5


def test_depth_consistent_with_seg(samples):
    """Within an image row, objects stand in front of the floor/wall behind them."""
    nearer = []
    for s in samples[:20]:
        for row_seg, row_depth in zip(s.seg, s.depth):
            fg = row_seg > 0
            if 3 < fg.sum() < fg.size - 3:
                nearer.append(row_depth[fg].mean() < row_depth[~fg].mean())
    assert len(nearer) > 200 and np.mean(nearer) > 0.95
    # the floor gets nearer towards the bottom of the image
    s = samples[0]
    bg_rows = [row_depth[row_seg == 0].mean() for row_seg, row_depth in zip(s.seg, s.depth)
               if (row_seg == 0).any()]
    assert bg_rows[-1] < bg_rows[len(bg_rows) // 2]


@pytest.mark.parametrize('bad', [dict(image_size=(8, 64)), dict(image_size=(64, 64.5)),
                                 dict(num_objects=(3, 1)), dict(depth_range=(0.0, 10.0)),
                                 dict(depth_range=(5.0, 5.0)), dict(object_depth=(0.1, 5.0)),
                                 dict(focal=-1.0), dict(noise_std=-1), dict(horizon=(0.5, 0.99))])
def test_bad_config_raises_with_value(bad):
    name, value = next(iter(bad.items()))
    with pytest.raises(ValueError, match=name):
        SceneConfig(**bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='-1'):
        SceneGenerator(seed=-1)
    with pytest.raises(ValueError, match='index'):
        SceneGenerator().sample(-3)
    with pytest.raises(ValueError, match='num_train'):
        write_ade20k('/nonexistent', num_train=-1, num_val=0)


def test_switches_flatten_the_picture():
    plain = SceneConfig(image_size=(64, 96), textures=False, lighting=False, noise_std=0.0, blur_sigma=0.0)
    s = SceneGenerator(plain).sample(1)
    for k in np.unique(s.instances)[1:]:  # one flat colour per object without texture and light
        assert len(np.unique(s.image[s.instances == k], axis=0)) == 1


# ----------------------------------------------------------------------------- learnability

def pixel_features(image: np.ndarray) -> np.ndarray:
    """Colour and local texture statistics per pixel, ``(H * W, 11)``."""
    rgb = image.astype(np.float32) / 255
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32) / 255
    hue, sat = hsv[..., 0] * 2 * np.pi, hsv[..., 1]
    gray = rgb.mean(-1)
    local_std = np.sqrt(np.maximum(cv2.blur(gray * gray, (7, 7)) - cv2.blur(gray, (7, 7)) ** 2, 0))
    gx = cv2.blur(np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)), (7, 7))
    gy = cv2.blur(np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1)), (7, 7))
    planes = [*np.moveaxis(cv2.blur(rgb, (5, 5)), -1, 0), sat * np.cos(hue), sat * np.sin(hue), sat,
              local_std, gx, gy, gray]
    return np.stack(planes, -1).reshape(-1, len(planes))


def test_classes_are_learnable_but_not_trivial():
    """A Gaussian (QDA) pixel classifier fit on 20 scenes beats the majority class on 10 others."""
    gen = SceneGenerator(SMALL, seed=11)
    train = [gen.sample(i) for i in range(20)]
    test = [gen.sample(i) for i in range(100, 110)]
    x = np.concatenate([pixel_features(s.image) for s in train])
    y = np.concatenate([s.seg.ravel() for s in train])
    models = []
    for k in range(K):
        xk = x[y == k]
        cov = np.cov(xk.T) + 1e-4 * np.eye(x.shape[1])
        models.append((xk.mean(0), np.linalg.inv(cov), np.linalg.slogdet(cov)[1], np.log(len(xk) / len(x))))
    xt = np.concatenate([pixel_features(s.image) for s in test])
    yt = np.concatenate([s.seg.ravel() for s in test])
    scores = [prior - 0.5 * logdet - 0.5 * np.einsum('nd,de,ne->n', xt - mu, icov, xt - mu)
              for mu, icov, logdet, prior in models]
    pred = np.argmax(np.stack(scores, 1), 1)
    accuracy, majority = (pred == yt).mean(), (yt == np.bincount(y).argmax()).mean()
    ious = [((pred == k) & (yt == k)).sum() / ((pred == k) | (yt == k)).sum() for k in range(K)
            if ((pred == k) | (yt == k)).any()]
    assert accuracy > majority + 0.08, (accuracy, majority)
    assert np.mean(ious) > 0.35 > 1.5 * majority / K  # mIoU far above the majority guess
    assert accuracy < 0.97  # colour alone does not give the answer away


def test_depth_is_learnable_from_layout():
    """Per-row mean depth (fit on 20 scenes) beats the best constant on 10 others: the layout carries depth."""
    gen = SceneGenerator(SMALL, seed=11)
    train = np.stack([gen.sample(i).depth for i in range(20)])
    test = np.stack([gen.sample(i).depth for i in range(100, 110)])
    constant = np.exp(np.log(train).mean())
    per_row = np.exp(np.log(train).mean(axis=(0, 2)))[None, :, None]
    abs_rel = lambda pred: np.mean(np.abs(test - pred) / test)  # noqa: E731
    assert abs_rel(per_row) < 0.75 * abs_rel(constant)


# ----------------------------------------------------------------------------- writers

def test_write_ade20k_layout_and_label_shift(tmp_path):
    root = Path(write_ade20k(tmp_path, num_train=3, num_val=2, config=SMALL, seed=5))
    assert root == tmp_path / 'ADEChallengeData2016'
    names = {split: sorted(p.name for p in (root / 'images' / split).iterdir())
             for split in ('training', 'validation')}
    assert names['training'] == [f'ADE_train_0000000{i}.jpg' for i in (1, 2, 3)]
    assert names['validation'] == ['ADE_val_00000001.jpg', 'ADE_val_00000002.jpg']
    gen = SceneGenerator(SMALL, seed=5)
    for split, stem, index in (('training', 'ADE_train_00000002', 1), ('validation', 'ADE_val_00000001', 3)):
        ann = read(root / 'annotations' / split / f'{stem}.png')
        sample = gen.sample(index)
        assert ann.dtype == np.uint8 and ann.ndim == 2 and ann.min() >= 1
        np.testing.assert_array_equal(ann, sample.seg + 1)  # 0 = ADE's ignored 'other', never written
        img = read(root / 'images' / split / f'{stem}.jpg', cv2.IMREAD_COLOR)[..., ::-1]
        assert np.abs(img.astype(int) - sample.image).mean() < 4  # RGB written as RGB (JPEG loss only)
    lines = (root / 'image_labels_training.txt').read_text().splitlines()
    assert lines[1] == f'ADE_train_00000002 {gen.sample(1).image_label}'


def test_ade20k_loads_in_mmseg_with_reduce_zero_label(tmp_path):
    mmseg_datasets = pytest.importorskip('mmseg.datasets')
    from mmseg.datasets.transforms import LoadAnnotations
    root = write_ade20k(tmp_path, num_train=2, num_val=0, config=SMALL)
    dataset = mmseg_datasets.BaseSegDataset(
        data_root=root, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True,
        metainfo=dict(classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE), pipeline=[LoadAnnotations()])
    np.testing.assert_array_equal(dataset[0]['gt_seg_map'], SceneGenerator(SMALL).sample(0).seg)


def test_write_nyu_layout_and_millimetres(tmp_path):
    root = Path(write_nyu(tmp_path, num_train=3, num_test=2, config=SMALL, seed=2, frames_per_scene=2))
    train = (root / 'nyu_train.txt').read_text().splitlines()
    test = (root / 'nyu_test.txt').read_text().splitlines()
    assert len(train) == 3 and len(test) == 2
    assert train[2] == f'train_0001/rgb_00002.jpg train_0001/sync_depth_00002.png {SMALL.focal_px:.4f}'
    assert test[0].startswith('test_0000/rgb_00000.jpg test_0000/sync_depth_00000.png ')
    rgb, depth, focal = test[1].split(' ')
    gt = read(root / depth)
    assert gt.dtype == np.uint16 and gt.shape == SMALL.image_size and gt.min() > 0
    sample = SceneGenerator(SMALL, seed=2).sample(3 + 1)  # test frames follow the train frames
    np.testing.assert_allclose(gt / 1000.0, sample.depth, atol=5e-4)
    assert read(root / rgb).shape == (*SMALL.image_size, 3)
    assert float(focal) == pytest.approx(sample.focal, abs=1e-4)


def test_write_kitti_layout_and_sparse_lidar(tmp_path):
    cfg = SceneConfig.outdoor(image_size=(88, 304))
    root = Path(write_kitti(tmp_path, num_train=3, num_test=2, config=cfg, seed=4, frames_per_drive=2))
    train = (root / 'kitti_eigen_train.txt').read_text().splitlines()
    test = (root / 'kitti_eigen_test.txt').read_text().splitlines()
    drive = '2011_09_26_drive_0002_sync'
    assert train[2] == (f'2011_09_26/{drive}/image_02/data/0000000002.png '
                        f'{drive}/proj_depth/groundtruth/image_02/0000000002.png {cfg.focal_px:.4f}')
    assert test[0].split(' ')[0] == '2011_09_26/2011_09_26_drive_0003_sync/image_02/data/0000000000.png'
    gen = SceneGenerator(cfg, seed=4)
    for index, line in enumerate(train + test):
        rgb, gt_path, _ = line.split(' ')
        assert read(root / 'input' / rgb).shape == (88, 304, 3)
        gt = read(root / 'gt_depth' / gt_path)
        assert gt.dtype == np.uint16 and gt.shape == (88, 304)
        valid = gt > 0
        assert 0.04 <= valid.mean() <= 0.3, valid.mean()
        assert not valid[:22].any() and valid[44:].sum() > 0.6 * valid.sum()  # LiDAR: lower part only
        np.testing.assert_allclose(gt[valid] / 256.0, gen.sample(index).depth[valid], atol=2.5e-3)


def test_progress_lines_in_a_log(tmp_path, capsys):
    """stderr that is not a terminal (a log file, CI) gets one plain line per tenth of the work."""
    write_nyu(tmp_path, num_train=20, num_test=0, config=SceneConfig(image_size=(32, 48)),
              progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith('synthetic scenes, NYU layout, train: ')]
    assert [line.split(': ')[1].split(' ')[0] for line in lines] == \
        [f'{i}/20' for i in range(2, 21, 2)]
    assert lines[0].endswith('s left') and '(100%)' in lines[-1]


def test_progress_bar_on_a_terminal():
    """A terminal gets rich's bar (redrawn in place), not the log lines."""
    import io

    from densedino.progress import progress_iter

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    assert list(progress_iter(range(5), 5, True, 'scenes', stream=out)) == list(range(5))
    text = out.getvalue()
    assert 'scenes' in text and '100%' in text and '5/5' not in text
    quiet = Terminal()
    assert list(progress_iter(range(3), 3, False, 'scenes', stream=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ''
