"""The benchmark suite's detail: the confusion matrix behind mmseg's IoUMetric (same pixels, same
IoU, written atomically) and the three figures drawn from it and from the suite's rows."""
import json
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample

from densedino.evaluation import SegConfusionMetric, iou_from_confusion
from densedino.registry import METRICS
from densedino.visualization import (DEFAULT_DPI, confusion_rows, metric_axis_label,
                                     plot_confusion, plot_per_class_iou, plot_suite_bars)

CLASSES = ('road', 'car', 'tree', 'sky', 'person')


# ------------------------------------------------------------------ iou_from_confusion


def test_iou_from_confusion_by_hand():
    # rows ground truth, columns prediction; class 2 is never labelled but predicted once
    confusion = np.array([[5, 1, 0],
                          [2, 3, 1],
                          [0, 0, 0]])
    iou, acc, aacc = iou_from_confusion(confusion)
    # I = (5, 3, 0), L = (6, 6, 0), P = (7, 4, 1); IoU = I / (P + L - I)
    np.testing.assert_allclose(iou, [100 * 5 / 8, 100 * 3 / 7, 0.0])
    np.testing.assert_allclose(acc[:2], [100 * 5 / 6, 50.0])
    assert math.isnan(acc[2])  # no ground-truth pixel
    assert aacc == pytest.approx(100 * 8 / 12)


def test_iou_from_confusion_nan_for_absent_class_and_checks_shape():
    iou, acc, aacc = iou_from_confusion(np.array([[2, 0], [0, 0]]))
    assert iou[0] == 100.0 and math.isnan(iou[1]) and math.isnan(acc[1]) and aacc == 100.0
    assert math.isnan(iou_from_confusion(np.zeros((2, 2))).aacc)
    with pytest.raises(ValueError, match='square'):
        iou_from_confusion(np.zeros((2, 3)))


# ------------------------------------------------------------------ SegConfusionMetric


def _samples(num_images=3, seed=0):
    """mmseg data samples: gt in {0, 1, 2, 255}, predictions 0..3 (class 3 never labelled,
    class 4 nowhere), right on about 60 % of the pixels."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(num_images):
        shape = (17 + 3 * i, 23)
        gt = rng.integers(0, 3, size=shape)
        gt[rng.random(shape) < 0.15] = 255
        pred = np.where(rng.random(shape) < 0.6, np.minimum(gt, 3), rng.integers(0, 4, size=shape))
        sample = SegDataSample(metainfo=dict(img_path=f'img_{i}.jpg'))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt[None]).long())
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None]).long())
        samples.append(sample)
    return samples


def _mmseg_areas(samples):
    """mmseg's summed (intersection, union, predicted, labelled) areas per class (tensors)."""
    areas = [IoUMetric.intersect_and_union(s.pred_sem_seg.data.squeeze(),
                                           s.gt_sem_seg.data.squeeze(), len(CLASSES), 255)
             for s in samples]
    return [sum(column) for column in zip(*areas)]


def test_confusion_metric_matches_mmseg_iou_metric(tmp_path):
    samples = _samples(num_images=3)
    confusion_metric = SegConfusionMetric(output_dir=str(tmp_path / 'detail'))
    evaluator = Evaluator([IoUMetric(iou_metrics=['mIoU']), confusion_metric])
    evaluator.dataset_meta = dict(classes=CLASSES)
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}  # nothing added by SegConfusionMetric

    confusion = confusion_metric.confusion
    assert confusion.dtype == np.int64 and confusion.shape == (5, 5)
    assert confusion_metric.class_names == list(CLASSES)
    intersect, union, pred_area, label_area = _mmseg_areas(samples)
    np.testing.assert_array_equal(np.diag(confusion), intersect.numpy())  # the same pixels
    np.testing.assert_array_equal(confusion.sum(axis=0), pred_area.numpy())
    np.testing.assert_array_equal(confusion.sum(axis=1), label_area.numpy())

    iou, _, aacc = iou_from_confusion(confusion)
    mmseg = IoUMetric.total_area_to_metrics(intersect, union, pred_area, label_area, ['mIoU'])
    np.testing.assert_allclose(iou, 100 * mmseg['IoU'], rtol=1e-5, equal_nan=True)
    assert math.isnan(iou[4]) and iou[3] == 0.0  # nowhere; predicted but never labelled
    # mmseg reports float32 values rounded to 2 decimals
    assert np.round(np.nanmean(iou), 2) == pytest.approx(metrics['mIoU'], abs=1e-4)
    assert np.round(aacc, 2) == pytest.approx(metrics['aAcc'], abs=1e-4)

    np.testing.assert_array_equal(np.load(tmp_path / 'detail' / 'confusion.npy'), confusion)
    table = json.loads((tmp_path / 'detail' / 'per_class_iou.json').read_text())
    assert list(table) == list(CLASSES) + ['mIoU', 'aAcc']
    assert table['person'] is None and table['sky'] == 0.0
    for k, name in enumerate(CLASSES[:4]):
        assert table[name] == pytest.approx(iou[k])
    assert round(table['mIoU'], 2) == pytest.approx(metrics['mIoU'], abs=1e-4)
    assert round(table['aAcc'], 2) == pytest.approx(metrics['aAcc'], abs=1e-4)
    assert not list((tmp_path / 'detail').glob('.*'))  # no temporary file left behind


def test_confusion_metric_is_registered_and_writes_nothing_without_output_dir(tmp_path):
    with DefaultScope.overwrite_default_scope('densedino'):
        metric = METRICS.build(dict(type='SegConfusionMetric', ignore_index=0))
    assert isinstance(metric, SegConfusionMetric) and metric.ignore_index == 0
    metric = SegConfusionMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    samples = _samples(num_images=2, seed=1)
    metric.process({}, [s.to_dict() for s in samples])
    assert metric.evaluate(2) == {}
    assert metric.confusion.sum() == sum(int((s.gt_sem_seg.data != 255).sum()) for s in samples)


def _one_sample(gt, pred):
    return dict(img_path='bad.png', gt_sem_seg=dict(data=torch.tensor([gt])),
                pred_sem_seg=dict(data=torch.tensor([pred])))


@pytest.mark.parametrize('gt, pred, value', [([[0, 7]], [[0, 1]], 7),  # label
                                             ([[0, 1]], [[5, 1]], 5),  # prediction
                                             ([[0, -1]], [[0, 1]], -1)])
def test_out_of_range_values_raise_naming_them(gt, pred, value):
    metric = SegConfusionMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match=rf'bad\.png: .* {value} outside .*num_classes=5') as err:
        metric.process({}, [_one_sample(gt, pred)])
    assert '\n' not in str(err.value)


def test_ignored_pixels_may_hold_any_prediction():
    metric = SegConfusionMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [_one_sample([[255, 1]], [[99, 1]])])
    metric.evaluate(1)
    assert metric.confusion.sum() == 1 and metric.confusion[1, 1] == 1


# ------------------------------------------------------------------ figures


def test_confusion_rows_by_hand():
    confusion = np.array([[8, 2, 0, 0],
                          [1, 1, 2, 0],
                          [0, 0, 5, 5],
                          [0, 0, 0, 0]])  # class 3: predicted, never labelled: no row
    # IoU = (8/11, 1/6, 5/12, 0): worst with ground truth are 1, then 2, then 0
    drawn = confusion_rows(confusion, worst=2)
    assert drawn.classes.tolist() == [1, 2]
    np.testing.assert_allclose(drawn.percent, [[25, 50, 25],   # 1 of 4 went to class 0: other
                                               [0, 50, 50]])   # 5 of 10 went to class 3
    drawn = confusion_rows(confusion, worst=10)
    assert drawn.classes.tolist() == [1, 2, 0]
    np.testing.assert_allclose(drawn.percent, [[25, 50, 25, 0],
                                               [0, 50, 0, 50],
                                               [20, 0, 80, 0]])
    np.testing.assert_allclose(drawn.percent.sum(axis=1), 100)


def test_metric_axis_label_says_which_way_is_better():
    assert metric_axis_label('mIoU') == 'mIoU (%), higher is better'
    assert metric_axis_label('rmse') == 'rmse (m), lower is better'
    assert metric_axis_label('nyu/abs_rel') == 'nyu/abs_rel, lower is better'
    assert metric_axis_label('d1').endswith('higher is better')


def _read_png(path, min_side=300, max_side=9000):
    image = cv2.imread(str(path))
    assert image is not None, f'{path} is not a readable image'
    h, w = image.shape[:2]
    assert min_side <= h <= max_side and min_side <= w <= max_side, (h, w)
    assert image.std() > 5  # something is drawn
    return image


def test_suite_bars_png(tmp_path):
    rows = [dict(name='ade20k_linear_vits14', metric='mIoU', ours=44.1, paper=44.3),
            dict(name='ade20k_ms_vitl14', metric='mIoU', ours=None, paper=53.1, status='failed'),
            dict(name='voc_linear_vitb14', metric='mIoU', ours=81.2, paper=None),
            dict(name='nyu_dpt_vitl14 with a very long entry name indeed', metric='rmse',
                 ours=0.312, paper=0.298),
            dict(name='kitti_dpt_vitl14', metric='rmse', ours=2.51, paper=2.47)]
    path = plot_suite_bars(rows, str(tmp_path / 'figs' / 'suite.png'), title='suite')
    assert path == str(tmp_path / 'figs' / 'suite.png')
    _read_png(path)
    with pytest.raises(ValueError, match='at least one row'):
        plot_suite_bars([], str(tmp_path / 'empty.png'))


def _ade_like(seed=0, k=150):
    """A 150-class confusion matrix, strongly diagonal, with a few classes never labelled."""
    rng = np.random.default_rng(seed)
    confusion = rng.poisson(2.0, size=(k, k)) + np.diag(rng.integers(0, 2000, size=k))
    confusion[:3] = 0  # classes 0..2: predicted only
    confusion[5, :] = confusion[:, 5] = 0  # class 5: nowhere (IoU NaN)
    return confusion, [f'class number {i} of the ADE20K-like set' for i in range(k)]


def test_per_class_iou_png_150_classes(tmp_path):
    confusion, names = _ade_like()
    iou = iou_from_confusion(confusion).iou
    assert math.isnan(iou[5])
    image = _read_png(plot_per_class_iou(names, iou, str(tmp_path / 'iou.png')))
    assert image.shape[0] <= 20 * DEFAULT_DPI  # 20 bars, not 150
    _read_png(plot_per_class_iou(names[:3], [10.0, math.nan, 55.5], str(tmp_path / 'few.png'),
                                 worst=20, title='three'), min_side=200)
    with pytest.raises(ValueError, match='all NaN'):
        plot_per_class_iou(names[:2], [math.nan, math.nan], str(tmp_path / 'none.png'))


def test_confusion_png_150_classes(tmp_path):
    confusion, names = _ade_like()
    image = _read_png(plot_confusion(confusion, names, str(tmp_path / 'confusion.png')))
    assert image.shape[1] <= 16 * DEFAULT_DPI  # 15 classes and 'other', not 150
    small = np.array([[8, 2], [1, 3]])
    _read_png(plot_confusion(small, ['a', 'b'], str(tmp_path / 'small.png'), worst=5),
              min_side=200)
    with pytest.raises(ValueError, match='class names'):
        plot_confusion(small, ['a'], str(tmp_path / 'bad.png'))
    assert not osp.exists(tmp_path / 'bad.png')
