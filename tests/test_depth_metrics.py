"""Depth metrics: hand-computed cases, protocol details (clamp, valid pixels, crops), the metric."""
import math
import pickle

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.evaluation.metrics.depth_metric import DepthMetric as MmsegDepthMetric
from mmseg.structures import SegDataSample

import densedino.evaluation.depth_metric as depth_metric_module
from densedino.evaluation import (
    ALIGN_MODES,
    DEPTH_CROPS,
    DEPTH_METRIC_KEYS,
    align_depth,
    crop_mask,
    depth_metrics,
    disparity_scale_shift,
    fit_scale_shift,
)
from densedino.registry import METRICS

NYU = {'min_depth': 1e-3, 'max_depth': 10.0}
LN2 = math.log(2.0)

# Case A (3 valid pixels; the gt 0 is "no measurement"):
#   pairs (gt, pred) = (1, 1), (2, 2.4), (4, 3); ratios max(g/p, p/g) = 1, 1.2, 4/3
#   d1 = 2/3 (1.333 >= 1.25), d2 = d3 = 1
#   abs_rel = (0 + 0.4/2 + 1/4) / 3 = 0.15;  sq_rel = (0 + 0.16/2 + 1/4) / 3 = 0.11
#   rmse = sqrt((0 + 0.16 + 1) / 3);  e = ln(p/g) = (0, ln 1.2, ln 0.75)
GT_A = [[1.0, 2.0], [4.0, 0.0]]
PRED_A = [[1.0, 2.4], [3.0, 5.0]]
_E2_A = (math.log(1.2) ** 2 + math.log(0.75) ** 2) / 3
_MEAN_E_A = math.log(0.9) / 3
EXPECTED_A = {
    'd1': 2 / 3, 'd2': 1.0, 'd3': 1.0, 'abs_rel': 0.15, 'sq_rel': 0.11,
    'rmse': math.sqrt(1.16 / 3), 'rmse_log': math.sqrt(_E2_A),
    'log10': (math.log10(1.2) + math.log10(4 / 3)) / 3,
    'silog': 100 * math.sqrt(_E2_A - _MEAN_E_A ** 2),
    'silog_mmseg': math.sqrt(_E2_A - 0.5 * _MEAN_E_A ** 2), 'n_valid': 3}

# Case B: gt 1 everywhere, pred 1, 2, 4, 8 -> e = (0, 1, 2, 3) ln2
#   mean(e) = 1.5 ln2, mean(e^2) = 3.5 ln2^2, var(e) = 1.25 ln2^2
#   d1 = d2 = d3 = 1/4 (only the exact pixel); abs_rel = (0+1+3+7)/4 = 2.75
#   sq_rel = (0+1+9+49)/4 = 14.75 = mean squared error (gt = 1), rmse = sqrt(14.75)
GT_B = [[1.0, 1.0], [1.0, 1.0]]
PRED_B = [[1.0, 2.0], [4.0, 8.0]]
EXPECTED_B = {
    'd1': 0.25, 'd2': 0.25, 'd3': 0.25, 'abs_rel': 2.75, 'sq_rel': 14.75,
    'rmse': math.sqrt(14.75), 'rmse_log': LN2 * math.sqrt(3.5), 'log10': 1.5 * math.log10(2.0),
    'silog': 100 * LN2 * math.sqrt(1.25), 'silog_mmseg': LN2 * math.sqrt(3.5 - 0.5 * 1.5 ** 2),
    'n_valid': 4}


def _assert_metrics(got, expected, tol=1e-9):
    assert set(got) == set(DEPTH_METRIC_KEYS) | {'n_valid'}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=tol, rel=0), key


@pytest.mark.parametrize('pred, gt, expected', [(PRED_A, GT_A, EXPECTED_A),
                                                (PRED_B, GT_B, EXPECTED_B)])
def test_hand_computed(pred, gt, expected):
    _assert_metrics(depth_metrics(np.array(pred), np.array(gt), **NYU), expected)


def test_silog_conventions_differ_when_mean_log_error_nonzero():
    got = depth_metrics(np.array(PRED_B), np.array(GT_B), **NYU)
    e2, mean_e = 3.5 * LN2 ** 2, 1.5 * LN2
    assert got['silog'] == pytest.approx(100 * math.sqrt(e2 - mean_e ** 2), abs=1e-9)
    assert got['silog_mmseg'] == pytest.approx(math.sqrt(e2 - 0.5 * mean_e ** 2), abs=1e-9)
    # a pure scale error (e constant) is invisible to silog but not to silog_mmseg
    scaled = depth_metrics(2 * np.array(GT_A), np.array(GT_A), **NYU)
    assert scaled['silog'] == pytest.approx(0, abs=1e-9)
    assert scaled['silog_mmseg'] == pytest.approx(math.sqrt(0.5) * LN2, abs=1e-9)


def test_matches_mmseg_formulas():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 6.0, (7, 9))
    pred = gt * rng.uniform(0.6, 1.6, gt.shape)  # < 9.6: no clamping (mmseg does not clamp)
    ours = depth_metrics(pred, gt, **NYU)
    ref = MmsegDepthMetric._calc_all_metrics(torch.from_numpy(gt.ravel()),
                                             torch.from_numpy(pred.ravel()))
    for key, value in ref.items():  # mmseg's d1-d3 go through float32 (.float())
        assert ours['silog_mmseg' if key == 'silog' else key] == pytest.approx(value, rel=1e-7)


def test_delta_thresholds_are_strict():
    # (gt, pred): exact 1.25^k ratios (both directions) are NOT counted, ratios just below are.
    pairs = [(1, 1.25), (1.25, 1), (1, 1.2499999), (1, 1.5625), (1, 1.5624999), (1, 1.953125),
             (1, 1.9531249), (1.953125, 1)]
    gt, pred = (np.array(v, dtype=np.float64).reshape(2, 4) for v in zip(*pairs))
    got = depth_metrics(pred, gt, **NYU)
    assert 1.25 ** 2 == 1.5625 and 1.25 ** 3 == 1.953125  # exactly representable
    assert got['d1'] == 1 / 8  # only (1, 1.2499999)
    assert got['d2'] == 4 / 8  # + both exact 1.25 ratios and (1, 1.5624999)
    assert got['d3'] == 6 / 8  # + (1, 1.5625) and (1, 1.9531249)


def test_prediction_is_clamped_like_bts():
    gt = np.full((2, 3), 2.0)
    pred = np.array([[np.nan, -np.inf, 0.5], [np.inf, 20.0, 2.0]])
    before = pred.copy()
    got = depth_metrics(pred, gt, min_depth=1.0, max_depth=10.0)
    # clamped to (1, 1, 1, 10, 10, 2): abs_rel = (3 * 1/2 + 2 * 8/2 + 0) / 6
    assert got['abs_rel'] == pytest.approx(9.5 / 6, abs=1e-12)
    clamped = np.array([[1.0, 1.0, 1.0], [10.0, 10.0, 2.0]])
    assert got == depth_metrics(clamped, gt, min_depth=1.0, max_depth=10.0)
    np.testing.assert_array_equal(pred, before)  # the caller's array is untouched


def test_invalid_ground_truth_is_excluded():
    gt = np.array([[2.0, 0.0, 10.0], [15.0, 1e-3, np.nan]])  # only 2.0 is inside (1e-3, 10)
    pred = np.array([[2.0, 9.0, 0.1], [0.1, 7.0, 5.0]])
    got = depth_metrics(pred, gt, **NYU)
    assert got['n_valid'] == 1
    assert got['rmse'] == 0 and got['d1'] == 1 and got['abs_rel'] == 0


def test_perfect_prediction():
    gt = np.linspace(0.5, 9.5, 12).reshape(3, 4)
    got = depth_metrics(gt.copy(), gt, **NYU)
    _assert_metrics(got, {**dict.fromkeys(DEPTH_METRIC_KEYS, 0.0), 'd1': 1.0, 'd2': 1.0,
                          'd3': 1.0, 'n_valid': 12}, tol=0)


def test_no_valid_pixel_gives_nan_and_zero_count():
    got = depth_metrics(np.ones((3, 4)), np.zeros((3, 4)), **NYU)
    assert got['n_valid'] == 0
    assert all(math.isnan(got[k]) for k in DEPTH_METRIC_KEYS)


def test_tensors_arrays_and_channel_dim_agree():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.1, 9.0, (5, 6)).astype(np.float32)
    pred = rng.uniform(0.1, 9.0, (5, 6)).astype(np.float32)
    ref = depth_metrics(pred, gt, **NYU)
    assert depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), **NYU) == ref
    assert depth_metrics(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None], **NYU) == ref
    assert depth_metrics(pred[None], gt, **NYU) == ref


def test_size_mismatch_raises_with_both_shapes():
    with pytest.raises(ValueError, match=r'\(1, 4, 5\).*\(4, 6\)'):
        depth_metrics(torch.ones(1, 4, 5), np.ones((4, 6)), **NYU)
    with pytest.raises(ValueError, match='must be'):
        depth_metrics(np.ones((2, 4, 5)), np.ones((2, 4, 5)), **NYU)


def test_bad_crop_or_range_raises():
    with pytest.raises(ValueError, match="'garg'.*kitti_garg"):
        depth_metrics(np.ones((4, 4)), np.ones((4, 4)), crop='garg', **NYU)
    with pytest.raises(ValueError, match='480x640.*352x1216'):
        crop_mask((352, 1216), 'nyu_eigen')
    for low, high in ((0.0, 10.0), (5.0, 1.0)):
        with pytest.raises(ValueError, match='min_depth'):
            depth_metrics(np.ones((2, 2)), np.ones((2, 2)), min_depth=low, max_depth=high)


def _box(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def test_crop_masks():
    assert DEPTH_CROPS == ('nyu_eigen', 'kitti_garg', 'kitti_eigen')
    nyu = crop_mask((480, 640), 'nyu_eigen')
    assert nyu.sum() == 426 * 560 and _box(nyu) == (45, 471, 41, 601)
    assert crop_mask((5, 7), None).all()
    # int(fraction * size), e.g. garg rows on 352: int(143.65..)=143, int(349.14..)=349
    expected = {
        ((352, 1216), 'kitti_garg'): (143, 349, 43, 1172),
        ((352, 1216), 'kitti_eigen'): (117, 321, 43, 1172),
        ((375, 1242), 'kitti_garg'): (153, 371, 44, 1197),
        ((375, 1242), 'kitti_eigen'): (124, 342, 44, 1197),
    }
    rows = {'kitti_garg': (0.40810811, 0.99189189), 'kitti_eigen': (0.3324324, 0.91351351)}
    for (shape, crop), box in expected.items():
        h, w = shape
        formula = (int(rows[crop][0] * h), int(rows[crop][1] * h), int(0.03594771 * w),
                   int(0.96405229 * w))
        mask = crop_mask(shape, crop)
        assert _box(mask) == box == formula
        assert mask.sum() == (box[1] - box[0]) * (box[3] - box[2])


@pytest.mark.parametrize('shape, crop', [((480, 640), 'nyu_eigen'), ((375, 1242), 'kitti_eigen')])
def test_errors_outside_crop_are_ignored(shape, crop):
    rng = np.random.default_rng(2)
    gt = rng.uniform(0.5, 9.5, shape)
    pred = gt * rng.uniform(0.8, 1.2, shape)
    mask = crop_mask(shape, crop)
    ruined = np.where(mask, pred, 1e4)
    got = depth_metrics(ruined, gt, crop=crop, **NYU)
    assert got == depth_metrics(pred, gt, crop=crop, **NYU)
    top, bottom, left, right = _box(mask)
    inside = depth_metrics(pred[top:bottom, left:right], gt[top:bottom, left:right], **NYU)
    assert got == pytest.approx(inside, abs=1e-12)
    assert depth_metrics(ruined, gt, **NYU)['rmse'] > 1  # without the crop the error counts


# ---- DenseDepthMetric ---------------------------------------------------------------------------

def _sample(pred, gt, name, as_dict=True):
    sample = SegDataSample(metainfo={'img_path': name})
    sample.pred_depth_map = PixelData(data=torch.tensor(pred, dtype=torch.float32)[None])
    sample.gt_depth_map = PixelData(data=torch.tensor(gt, dtype=torch.float32)[None])
    return sample.to_dict() if as_dict else sample


PERFECT = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
SAMPLES = [(PERFECT, PERFECT, 'perfect.png'), (PRED_B, GT_B, 'case_b.png'),
           (PRED_B, [[0.0, 0.0], [0.0, 0.0]], 'no_gt.png')]
# per-image mean over the two scored images (pooled pixels would give d1 = 7/10, rmse sqrt(5.9))
PER_IMAGE_MEAN = {'d1': (1 + 0.25) / 2, 'abs_rel': 2.75 / 2, 'rmse': math.sqrt(14.75) / 2,
                  'silog': 100 * LN2 * math.sqrt(1.25) / 2}


def _build(**kwargs):
    return METRICS.build({'type': 'DenseDepthMetric', **NYU, **kwargs})


def test_metric_averages_per_image_and_skips_images_without_gt(monkeypatch):
    logged = []
    monkeypatch.setattr(depth_metric_module, 'print_log', lambda msg, **kw: logged.append(msg))
    metric = _build()
    metric.process({}, [_sample(PERFECT, PERFECT, 'alone.png')])
    alone = metric.evaluate(1)  # a perfect prediction: every threshold met, no error
    assert alone['d1'] == 1.0 and alone['abs_rel'] == 0.0 and alone['rmse'] == 0.0
    assert metric.results == [] and len(logged) == 2
    logged.clear()
    metric.process({}, [_sample(*s) for s in SAMPLES])
    assert repr(pickle.loads(pickle.dumps(metric.results))) == repr(metric.results)
    assert all(type(v) in (float, int) for r in metric.results for v in r.values())
    result = metric.evaluate(len(SAMPLES))
    assert set(result) == set(DEPTH_METRIC_KEYS)
    for key, value in PER_IMAGE_MEAN.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key  # float32 inputs
    assert '2 images evaluated, 1 skipped' in logged[0]
    assert 'silog_mmseg' in logged[1] and 'abs_rel' in logged[1]


def test_metric_subset_prefix_and_validation():
    metric = _build(metrics=['rmse', 'd1'], prefix='nyu', crop=None)
    metric.process({}, [_sample(*s) for s in SAMPLES[:2]])
    result = metric.evaluate(2)
    assert list(result) == ['nyu/rmse', 'nyu/d1']
    assert result['nyu/d1'] == pytest.approx(PER_IMAGE_MEAN['d1'])
    with pytest.raises(ValueError, match='rmse_lg'):
        _build(metrics=['d1', 'rmse_lg'])
    with pytest.raises(ValueError, match="'eigen'"):
        _build(crop='eigen')
    with pytest.raises(ValueError, match='min_depth'):
        METRICS.build({'type': 'DenseDepthMetric', 'min_depth': 0, 'max_depth': 10})


def test_metric_errors_name_the_image():
    metric = _build()
    sample = _sample(PERFECT, PERFECT, 'scene/rgb_00001.jpg')
    del sample['pred_depth_map']  # (a missing gt_depth_map is a skipped image, tested below)
    with pytest.raises(KeyError, match=r'scene/rgb_00001\.jpg.*pred_depth_map'):
        metric.process({}, [sample])
    with pytest.raises(ValueError, match=r'bad\.png.*\(1, 2, 2\).*\(1, 2, 3\)'):
        metric.process({}, [_sample(PRED_B, PERFECT, 'bad.png')])


def test_through_mmengine_evaluator():
    with DefaultScope.overwrite_default_scope('densedino'):
        evaluator = Evaluator([{'type': 'DenseDepthMetric', **NYU, 'metrics': ('d1', 'abs_rel')}])
    evaluator.process(data_samples=[_sample(*s, as_dict=False) for s in SAMPLES[:2]])
    evaluator.process(data_samples=[_sample(*SAMPLES[2], as_dict=False)])
    result = evaluator.evaluate(3)
    assert result == pytest.approx({k: PER_IMAGE_MEAN[k] for k in ('d1', 'abs_rel')})


def test_metric_skips_samples_without_ground_truth_and_writes_them(tmp_path):
    """KITTI lines without GT (skip_missing_gt=False): prediction written, no metrics, no crash."""
    import cv2
    import torch

    from densedino.evaluation import DenseDepthMetric
    metric = DenseDepthMetric(min_depth=1e-3, max_depth=80.0, output_dir=str(tmp_path / 'out'),
                              data_root=str(tmp_path))
    pred = torch.full((1, 4, 6), 2.0)
    gt = torch.full((1, 4, 6), 1.0)
    metric.process(None, [
        dict(img_path=str(tmp_path / 'a/drive1/0001.png'), pred_depth_map=dict(data=pred),
             gt_depth_map=dict(data=gt)),
        dict(img_path=str(tmp_path / 'a/drive2/0001.png'), pred_depth_map=dict(data=pred)),
    ])
    result = metric.compute_metrics(metric.results)
    assert result['abs_rel'] == 1.0  # only the image with ground truth is scored
    for drive in ('drive1', 'drive2'):  # same frame name in two drives: both kept
        png = cv2.imread(str(tmp_path / 'out/a' / drive / '0001.png'), cv2.IMREAD_UNCHANGED)
        assert png.dtype.name == 'uint16' and (png == 512).all()


# ---- alignment: least squares in disparity space, median scaling --------------------------------

PERFECT_SCORES = {**dict.fromkeys(DEPTH_METRIC_KEYS, 0.0), 'd1': 1.0, 'd2': 1.0, 'd3': 1.0}


def _scene(seed, shape=(24, 32)):
    """Ground truth in [0.5, 10] with holes (0), out-of-range pixels and a predicted disparity."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 10.0, shape)
    gt[rng.random(shape) < 0.1] = 0.0
    gt[0, :3] = (12.0, 1e-4, np.nan)
    return rng, gt


def _valid(gt, crop=None, max_depth=11.0):
    return (gt > 1e-3) & (gt < max_depth) & crop_mask(gt.shape, crop)


@pytest.mark.parametrize('scale, shift', [(2.5, 0.03), (0.01, -0.05), (40.0, 0.0)])
def test_lstsq_disparity_recovers_known_scale_and_shift_exactly(scale, shift):
    _, gt = _scene(3)
    with np.errstate(divide='ignore', invalid='ignore'):
        pred_disp = (1.0 / gt - shift) / scale  # inf / nan at holes: not valid, not fitted
    range_ = {'min_depth': 1e-3, 'max_depth': 11.0}
    fitted = disparity_scale_shift(pred_disp, gt, **range_)
    assert fitted == pytest.approx((scale, shift), abs=1e-9, rel=1e-9)
    got = depth_metrics(pred_disp, gt, align='lstsq_disparity', **range_)
    _assert_metrics(got, {**PERFECT_SCORES, 'n_valid': int(_valid(gt).sum())}, tol=1e-9)
    aligned = align_depth(pred_disp, gt, align='lstsq_disparity', **range_)
    np.testing.assert_allclose(aligned[_valid(gt)], gt[_valid(gt)], rtol=1e-9)


def test_lstsq_fit_matches_numpy_and_ignores_invalid_pixels():
    rng, gt = _scene(4, shape=(375, 1242))
    with np.errstate(divide='ignore'):
        pred_disp = (1.0 / gt - 0.02) / 3.0 + rng.normal(0, 0.02, gt.shape)
    range_ = {'min_depth': 1e-3, 'max_depth': 11.0, 'crop': 'kitti_garg'}
    valid = _valid(gt, 'kitti_garg')
    design = np.stack([pred_disp[valid], np.ones(valid.sum())], axis=1)
    expected, *_ = np.linalg.lstsq(design, 1.0 / gt[valid], rcond=None)
    fitted = disparity_scale_shift(pred_disp, gt, **range_)
    assert fitted == pytest.approx(tuple(expected), rel=1e-9, abs=1e-12)
    # wild values at holes, out-of-range gt and outside the crop change neither fit nor metrics
    ruined = np.where(valid, pred_disp, 1e6)
    ruined[~valid & (gt == 0)] = np.nan
    assert disparity_scale_shift(ruined, gt, **range_) == fitted
    assert depth_metrics(ruined, gt, align='lstsq_disparity', **range_) == depth_metrics(
        pred_disp, gt, align='lstsq_disparity', **range_)
    # the metrics are those of the aligned, clamped depth, scored without alignment
    aligned = 1.0 / np.clip(fitted[0] * pred_disp + fitted[1], 1 / 11.0, 1 / 1e-3)
    assert depth_metrics(pred_disp, gt, align='lstsq_disparity', **range_) == pytest.approx(
        depth_metrics(aligned, gt, **range_), rel=1e-12)


def test_lstsq_aligned_disparity_is_clamped_to_the_range():
    gt = np.array([[1.0, 2.0, 4.0, 8.0]])
    pred_disp = np.array([[1.0, 0.5, 0.25, -5.0]])  # fit pulled off by the last pixel
    scale, shift = disparity_scale_shift(pred_disp, gt, min_depth=0.5, max_depth=10.0)
    aligned = align_depth(pred_disp, gt, align='lstsq_disparity', min_depth=0.5, max_depth=10.0)
    disp = np.clip(scale * pred_disp + shift, 0.1, 2.0)
    np.testing.assert_allclose(aligned, 1.0 / disp, rtol=1e-12)
    assert aligned.min() >= 0.5 and aligned.max() <= 10.0
    # constant prediction: no scale information -> s = 0, t = mean(1 / gt)
    assert fit_scale_shift(np.full(4, 3.0), 1 / gt.ravel()) == pytest.approx(
        (0.0, np.mean(1 / gt)), abs=1e-15)


def test_median_alignment_of_scaled_depth_is_perfect():
    _, gt = _scene(5)
    pred = 0.37 * np.where(gt > 0, gt, 5.0)
    got = depth_metrics(pred, gt, align='median', **NYU)
    _assert_metrics(got, {**PERFECT_SCORES, 'n_valid': int(_valid(gt, max_depth=10.0).sum())},
                    tol=1e-12)
    assert depth_metrics(pred, gt, **NYU)['d1'] < 0.1  # without alignment it is far off
    aligned = align_depth(pred, gt, align='median', **NYU)
    np.testing.assert_allclose(aligned, pred / 0.37, rtol=1e-12)
    with pytest.raises(ValueError, match='median'):
        depth_metrics(np.zeros_like(gt), gt, align='median', **NYU)


def test_unknown_alignment_raises_one_line_naming_it():
    assert ALIGN_MODES == (None, 'lstsq_disparity', 'median')
    for call in (lambda: depth_metrics(np.ones((2, 2)), np.ones((2, 2)), align='lstsq', **NYU),
                 lambda: _build(align='lstsq')):
        with pytest.raises(ValueError, match="align='lstsq'") as info:
            call()
        assert '\n' not in str(info.value) and 'lstsq_disparity' in str(info.value)


def _relative_samples(seed, as_depth=False):
    """Three images of a 'relative model': disparities with a different scale / shift each
    (their inverse, a depth known up to scale, with ``as_depth``), without ``depth_range``."""
    samples = []
    rng = np.random.default_rng(seed)
    for i, (scale, shift) in enumerate([(2.0, 0.05), (0.5, -0.02), (7.0, 0.1)]):
        gt = rng.uniform(0.5, 9.0, (6, 8))
        gt[0, 0] = 0.0
        pred = (1.0 / np.where(gt > 0, gt, 1.0) - shift) / scale + rng.normal(0, 0.01, gt.shape)
        pred = 1.0 / np.clip(pred, 1e-3, None) if as_depth else pred
        samples.append(_sample(pred.tolist(), gt.tolist(), f'rel_{i}.png'))
    return samples


@pytest.mark.parametrize('align', ['lstsq_disparity', 'median'])
def test_metric_alignment_matches_functional_path(align):
    samples = _relative_samples(6, as_depth=align == 'median')
    functional = [depth_metrics(np.asarray(s['pred_depth_map']['data'], np.float32),
                                np.asarray(s['gt_depth_map']['data'], np.float32), align=align,
                                **NYU) for s in samples]
    metric = _build(align=align)
    metric.process({}, samples)
    assert [{k: r[k] for k in DEPTH_METRIC_KEYS} for r in metric.results] == [
        {k: f[k] for k in DEPTH_METRIC_KEYS} for f in functional]
    result = metric.evaluate(len(samples))
    for key in DEPTH_METRIC_KEYS:
        assert result[key] == pytest.approx(np.mean([f[key] for f in functional]), rel=1e-12)
    if align == 'lstsq_disparity':  # noisy disparities, but a good fit: mostly within 1.25
        assert result['d1'] > 0.8 and result['abs_rel'] < 0.2


def test_relative_prediction_without_alignment_raises_one_line():
    samples = _relative_samples(7)  # no depth_range, as DinoDepthEstimator's relative outputs
    with pytest.raises(ValueError, match=r"rel_0\.png.*align='lstsq_disparity'") as info:
        METRICS.build({'type': 'DenseDepthMetric'}).process({}, samples)
    assert '\n' not in str(info.value)
    # alignment without any range: the evaluator must give one (a relative model has none)
    with pytest.raises(ValueError, match=r"min_depth and max_depth.*rel_0\.png"):
        METRICS.build({'type': 'DenseDepthMetric', 'align': 'lstsq_disparity'}).process(
            {}, samples)


def test_a_marked_relative_prediction_needs_disparity_alignment_even_with_a_range():
    """DinoDepthEstimator marks a relative head's predictions; an evaluator range alone must
    not let disparity be scored as depth."""
    samples = [{**s, 'relative_disparity': True} for s in _relative_samples(3)]
    for align in (None, 'median'):
        with pytest.raises(ValueError, match=r"relative model.*align='lstsq_disparity'"):
            _build(align=align).process({}, samples)
    metric = _build(align='lstsq_disparity')
    metric.process({}, samples)
    assert len(metric.results) == 3


def test_lstsq_disparity_refuses_metric_predictions_median_accepts_them():
    sample = {**_sample(PERFECT, PERFECT, 'metric.png'), 'depth_range': (1e-3, 10.0)}
    with pytest.raises(ValueError, match=r"metric\.png.*metric model.*align='median'"):
        METRICS.build({'type': 'DenseDepthMetric', 'align': 'lstsq_disparity'}).process(
            {}, [sample])
    metric = METRICS.build({'type': 'DenseDepthMetric', 'align': 'median'})
    metric.process({}, [sample])  # the model's range, as without alignment
    assert metric.results[0]['abs_rel'] == 0.0 and metric.results[0]['d1'] == 1.0
    # an evaluator range beyond the model's is accepted: the prediction is rescaled anyway
    wide = _build(align='median', max_depth=80.0)
    wide.process({}, [sample])
    assert wide.results[0]['rmse'] == 0.0
