"""Dataset checks (quick and full), the check tool, and the one-line data errors of training and evaluation."""
# ruff: noqa: C408 - pipelines and dataset configs are written as dict(type=...), as in mmengine configs
import logging
import math
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

import densedino  # noqa: F401
from densedino.datasets import SYNTHETIC_CLASSES, DatasetError
from densedino.datasets import file_headers
from densedino.datasets.check import check_config, startup_check
from densedino.datasets.seg import label_lookup
from densedino.evaluation import DenseDepthMetric
from densedino.registry import TRANSFORMS

from .depth_fixtures import write_nyu_split
from .seg_fixtures import write_ade20k_folder

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ADE_CONFIG = osp.join(REPO, 'configs/seg/ade20k_linear.py')
SYNTHETIC_CONFIG = osp.join(REPO, 'configs/seg/synthetic_linear.py')
NYU_CONFIG = osp.join(REPO, 'configs/depth/nyu_linear.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
SEG_SIZE = (56, 84)  # seg_fixtures' image size


@pytest.fixture(autouse=True)
def _densedino_scope():
    with DefaultScope.overwrite_default_scope('densedino'):
        yield


def _config(path, data_root, **options):
    cfg = Config.fromfile(path)
    for loader in LOADERS:
        cfg[loader].dataset.data_root = data_root
    cfg.merge_from_dict(options)
    return cfg


def _ade_paths(root, split, stem):
    return (osp.join(root, 'images', split, stem + '.jpg'),
            osp.join(root, 'annotations', split, stem + '.png'))


def _truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


@pytest.fixture(scope='module')
def bad_ade(tmp_path_factory):
    """ADE20K layout with one defect per file; returns (root, {path: reason pattern}, quick paths)."""
    root = write_ade20k_folder(str(tmp_path_factory.mktemp('bad_ade')))
    corrupt, _ = _ade_paths(root, 'training', 'ADE_train_00000001')
    truncated, _ = _ade_paths(root, 'training', 'ADE_train_00000002')
    _, out_of_range = _ade_paths(root, 'training', 'ADE_train_00000003')
    _, missing = _ade_paths(root, 'training', 'ADE_train_00000004')
    _, resized = _ade_paths(root, 'validation', 'ADE_val_00000001')
    with open(corrupt, 'wb') as f:
        f.write(b'not a jpeg at all')
    _truncate(truncated)
    label = cv2.imread(out_of_range, cv2.IMREAD_UNCHANGED)
    assert 0 < label.max() <= 5  # valid values 0..5 stay next to the bad one
    label[:2, :3] = 200
    cv2.imwrite(out_of_range, label)
    os.remove(missing)
    cv2.imwrite(resized, np.ones((20, 30), np.uint8))
    planted = {
        corrupt: r'cannot decode image file .*ADE_train_00000001\.jpg',
        truncated: r'image file .*ADE_train_00000002\.jpg is truncated',
        out_of_range: r'label file .*ADE_train_00000003\.png has values \[200\] \(\[199\] after '
                      r'reduce_zero_label\) outside the 150 classes',
        missing: r'label file .*ADE_train_00000004\.png is missing',
        resized: r'label file .*ADE_val_00000001\.png is 20x30 but image .*ADE_val_00000001\.jpg '
                 r'is 56x84',
    }
    return root, planted, {corrupt, missing, resized}


@pytest.fixture(scope='module')
def bad_nyu(tmp_path_factory):
    """NYU split layout with one defect per depth file; returns (root, planted, quick paths)."""
    root = write_nyu_split(str(tmp_path_factory.mktemp('bad_nyu')), num_train=5, num_test=2)
    with open(osp.join(root, 'nyu_train.txt')) as f:
        depth = [osp.join(root, line.split()[1]) for line in f if line.strip()]
    with open(osp.join(root, 'nyu_test.txt')) as f:
        test_depth = [osp.join(root, line.split()[1]) for line in f if line.strip()]
    cv2.imwrite(depth[0], np.full((48, 64), 7, np.uint8))
    cv2.imwrite(depth[1], np.zeros((48, 64), np.uint16))
    cv2.imwrite(depth[2], np.full((40, 64), 1000, np.uint16))
    os.remove(test_depth[0])
    planted = {
        depth[0]: r'depth file .*sync_depth_00000\.png is 8-bit; depth must be 16-bit',
        depth[1]: r'depth file .*sync_depth_00001\.png has no valid pixel.*outside \(0\.001, 10\) m',
        depth[2]: r'depth file .*sync_depth_00002\.png is 40x64 but image .*rgb_00002\.jpg is 48x64',
        test_depth[0]: r'depth file .*\.png is missing',
    }
    return root, planted, {depth[0], depth[2], test_depth[0]}


def _assert_found(report, planted):
    found = dict(report.problems)
    assert len(found) == len(report.problems), report.problems  # one reason per bad file
    assert set(found) == set(planted), report.problem_lines()
    for path, pattern in planted.items():
        assert re.search(pattern, found[path]), (found[path], pattern)
        assert '\n' not in found[path]


# ----------------------------------------------------------------------------- check_config


def test_full_check_finds_every_planted_seg_defect_in_one_run(bad_ade):
    root, planted, _ = bad_ade
    report = check_config(_config(ADE_CONFIG, root), full=True, progress=False)
    _assert_found(report, planted)
    assert not report.ok
    assert list(report.splits) == ['train', 'val']  # test_dataloader = val_dataloader: checked once
    assert (report.splits['train'].num_samples, report.splits['val'].num_samples) == (6, 3)
    assert report.num_classes == 150
    assert report.summary().endswith('train 6, val 3 samples, 150 classes: 5 problems')


def test_full_check_finds_every_planted_depth_defect_in_one_run(bad_nyu):
    root, planted, _ = bad_nyu
    report = check_config(_config(NYU_CONFIG, root), full=True, workers=1, progress=False)
    _assert_found(report, planted)
    assert report.num_classes == 0 and report.histogram == {}


def test_quick_check_finds_what_headers_show_and_nothing_else(bad_ade, bad_nyu):
    for config, (root, planted, quick) in ((ADE_CONFIG, bad_ade), (NYU_CONFIG, bad_nyu)):
        report = check_config(_config(config, root), full=False, progress=False)
        _assert_found(report, {path: planted[path] for path in quick})
        assert all(s.histogram is None for s in report.splits.values())


def test_quick_check_decodes_no_pixels(tmp_path, monkeypatch):
    root = write_ade20k_folder(str(tmp_path), num_train=2, num_val=1)

    def refuse(*args, **kwargs):
        raise AssertionError('quick mode decoded pixels')
    monkeypatch.setattr('PIL.ImageFile.ImageFile.load', refuse)
    monkeypatch.setattr(file_headers.cv2, 'imread', refuse)
    report = check_config(_config(ADE_CONFIG, root), full=False, progress=False)
    assert report.ok, report.problem_lines()
    assert report.summary().endswith('(quick check): train 2, val 1 samples, 150 classes: no problems')


def test_quick_check_compares_the_exif_rotated_image_size(tmp_path):
    """cv2.IMREAD_COLOR (image loading) applies the EXIF orientation, so a label must match it."""
    from PIL import Image
    root = write_ade20k_folder(str(tmp_path), num_train=1, num_val=1)
    img, label = _ade_paths(root, 'training', 'ADE_train_00000001')
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: the decoded image is 84x56
    Image.new('RGB', SEG_SIZE[::-1]).save(img, exif=exif)
    assert cv2.imread(img).shape[:2] == SEG_SIZE[::-1]
    report = check_config(_config(ADE_CONFIG, root), 'train', full=False, progress=False)
    assert [p for p, _ in report.problems] == [label]
    assert 'is 56x84 but image' in report.problems[0][1] and report.problems[0][1].endswith(
        'is 84x56; an annotation must have its image\'s size (fix or re-export one of the two files)')


def test_raise_if_bad_is_one_line_naming_the_first_files_and_the_count(bad_ade):
    root, planted, _ = bad_ade
    report = check_config(_config(ADE_CONFIG, root), 'train', full=True, progress=False)
    with pytest.raises(DatasetError) as info:
        report.raise_if_bad()
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'4 problems in {ADE_CONFIG}: ')
    first = report.problem_lines()[:3]
    assert all(line in message for line in first) and report.problem_lines()[3] not in message
    assert message.endswith(f'; ... (run tools/check_dataset.py {ADE_CONFIG} for the full list)')


def _write_synthetic_root(root, labels):
    """A ``SyntheticSegDataset`` folder (marked complete, so nothing is generated) with given labels."""
    ade = osp.join(root, 'ADEChallengeData2016')
    for split, prefix in (('training', 'train'), ('validation', 'val')):
        for i, label in enumerate(labels):
            img, ann = _ade_paths(ade, split, f'ADE_{prefix}_{i + 1:08d}')
            os.makedirs(osp.dirname(img), exist_ok=True)
            os.makedirs(osp.dirname(ann), exist_ok=True)
            cv2.imwrite(img, np.full((*label.shape, 3), 128, np.uint8))
            cv2.imwrite(ann, label)
    open(osp.join(ade, '.complete'), 'w').close()
    return root


def test_histogram_counts_pixels_per_class_after_reduce_zero_label(tmp_path):
    a = np.full((4, 6), 9, np.uint8)  # stored 9 -> class 8 (pyramid)
    a[0, :3] = 0  # -> ignore
    a[1, :5] = 1  # -> class 0 (background)
    b = np.full((4, 6), 2, np.uint8)  # -> class 1 (sphere)
    b[3, 5] = 255  # stays ignore
    root = _write_synthetic_root(str(tmp_path), [a, b])
    report = check_config(_config(SYNTHETIC_CONFIG, root), 'train', full=True, progress=False)
    assert report.ok, report.problem_lines()
    expected = dict.fromkeys(SYNTHETIC_CLASSES, 0)
    expected.update(background=5, sphere=23, pyramid=16)
    assert report.histogram == expected
    assert report.splits['train'].ignored == 4
    assert report.splits['train'].histogram.tolist() == list(expected.values())
    assert report.num_classes == 9


def test_model_num_classes_is_compared_with_the_dataset(tmp_path, caplog):
    root = _write_synthetic_root(str(tmp_path), [np.full((4, 6), 9, np.uint8)])
    cfg = _config(SYNTHETIC_CONFIG, root)
    with caplog.at_level(logging.INFO, logger='densedino.datasets.check'):
        startup_check(cfg)
    assert [r.getMessage() for r in caplog.records][-1].startswith(
        f'{SYNTHETIC_CONFIG} (quick check): train 1, val 1 samples, 9 classes: no problems (')
    cfg.merge_from_dict({'model.decode_head.num_classes': 3})
    with pytest.raises(DatasetError) as info:
        startup_check(cfg)
    message = str(info.value)
    assert '\n' not in message
    assert (f'model.decode_head.num_classes=3 but the dataset of {SYNTHETIC_CONFIG} '
            '(SyntheticSegDataset) has 9 classes (background, sphere, box, cone, ...); '
            'set model.decode_head.num_classes=9') in message
    assert message.startswith(f'1 problem in {SYNTHETIC_CONFIG}')


def test_startup_check_raises_for_bad_files(bad_ade):
    root, _, _ = bad_ade
    with pytest.raises(DatasetError, match=r'^3 problems in .*ade20k_linear\.py: .*ADE_train_00000001'):
        startup_check(_config(ADE_CONFIG, root))


def test_pretraining_configs_check_their_images_only(tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'{i}.png'), np.full((20, 30, 3), 60 * i, np.uint8))
    _truncate(str(folder / '1.png'))
    cfg = Config.fromfile(osp.join(REPO, 'configs/pretrain/synthetic_vits.py'))
    cfg.train_dataloader.dataset = dict(type='UnlabeledImageFolder', root=str(folder),
                                         transform=cfg.train_dataloader.dataset.transform)
    report = check_config(cfg, full=True, progress=False)
    assert [p for p, _ in report.problems] == [str(folder / '1.png')]
    assert 'is truncated' in report.problems[0][1]
    assert report.splits['train'].kind == 'image' and report.splits['train'].num_samples == 3
    assert check_config(cfg, full=False, progress=False).ok  # the header is intact


def test_missing_folder_is_one_problem_naming_the_config(tmp_path):
    report = check_config(_config(ADE_CONFIG, str(tmp_path / 'nowhere')), 'val', progress=False)
    assert len(report.problems) == 1
    path, reason = report.problems[0]
    assert path == ADE_CONFIG and re.match(r'val dataset: image folder .*nowhere.* does not exist',
                                           reason)


def test_check_config_validates_its_arguments(bad_ade):
    cfg = _config(ADE_CONFIG, bad_ade[0])
    with pytest.raises(ValueError, match="'training'"):
        check_config(cfg, ('training',))
    with pytest.raises(ValueError, match='workers must be a positive integer, got 0'):
        check_config(cfg, workers=0)


# ----------------------------------------------------------------------------- tools/check_dataset.py


def _run_tool(*args):
    return subprocess.run([sys.executable, 'tools/check_dataset.py', *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _roots(root):
    return ['--cfg-options', *(f'{loader}.dataset.data_root={root}' for loader in LOADERS)]


def test_tool_lists_every_bad_file_and_exits_1(bad_ade):
    root, planted, _ = bad_ade
    proc = _run_tool('configs/seg/ade20k_linear.py', '--workers', '2', *_roots(root))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    for path, pattern in planted.items():
        assert any(path in line and re.search(pattern, line) for line in lines), (path, proc.stdout)
    assert 'classes: 150' in lines
    assert lines[-1] == ('configs/seg/ade20k_linear.py (full check): train 6, val 3 samples, '
                         '150 classes: 5 problems')


def test_tool_prints_the_histogram_and_exits_0_on_a_clean_dataset(tmp_path):
    root = _write_synthetic_root(str(tmp_path), [np.array([[1, 1, 1, 2], [1, 1, 1, 1]], np.uint8)])
    proc = _run_tool('configs/seg/synthetic_linear.py', '--split', 'train', *_roots(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith('  ')}
    assert rows['background'] == ['7', '87.50%'] and rows['sphere'] == ['1', '12.50%']
    assert rows['box'] == ['0', '0.00%'] and len(rows) == 10  # 9 classes + ignore
    assert lines[-2:] == ['classes: 9', 'configs/seg/synthetic_linear.py (full check): train 1 '
                          'samples, 9 classes: no problems']


# ----------------------------------------------------------------------------- training-time errors


def test_label_lookup_equals_mmseg_label_mapping(tmp_path):
    from mmseg.datasets.transforms import LoadAnnotations as MMSegLoadAnnotations
    path = str(tmp_path / 'all_values.png')
    cv2.imwrite(path, np.arange(256, dtype=np.uint8).reshape(16, 16))
    for reduce_zero_label, label_map in ((False, None), (True, None), (True, {0: 2, 1: 255, 2: 0}),
                                         (False, {3: 1})):
        results = MMSegLoadAnnotations()(dict(seg_map_path=path, reduce_zero_label=reduce_zero_label,
                                              label_map=label_map, seg_fields=[]))
        table = label_lookup(reduce_zero_label, label_map)
        assert np.array_equal(table[np.arange(256).reshape(16, 16)], results['gt_seg_map'])


def _pipeline(*steps):
    return Compose([TRANSFORMS.build(s) for s in steps])


def _info(img, label, num_classes=150, reduce_zero_label=True):
    return dict(img_path=img, seg_map_path=label, reduce_zero_label=reduce_zero_label,
                label_map=None, num_classes=num_classes, seg_fields=[])


def test_label_of_another_size_is_named_before_the_random_crop(tmp_path):
    root = write_ade20k_folder(str(tmp_path), num_train=1, num_val=1)
    img, label = _ade_paths(root, 'training', 'ADE_train_00000001')
    train = _pipeline(dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                      dict(type='RandomCrop', crop_size=(32, 32)))
    val = _pipeline(dict(type='LoadImageFromFile'), dict(type='Resize', scale=(168, 112), keep_ratio=True),
                    dict(type='LoadAnnotations'))
    assert train(_info(img, label))['gt_seg_map'].shape == (32, 32)
    assert val(_info(img, label))['gt_seg_map'].shape == SEG_SIZE  # resized image, full-size label
    cv2.imwrite(label, np.ones((60, 84), np.uint8))
    message = (rf'^label file {re.escape(label)} is 60x84 but image {re.escape(img)} is 56x84; '
               r'an annotation must have its image\'s size')
    for pipeline in (train, val):
        with pytest.raises(DatasetError, match=message):
            pipeline(_info(img, label))


def test_label_value_is_shown_as_stored_in_the_file(tmp_path):
    root = write_ade20k_folder(str(tmp_path), num_train=1, num_val=1)
    img, label = _ade_paths(root, 'training', 'ADE_train_00000001')
    values = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    values[0, :2] = (200, 0)  # 0 is ignore after reduce_zero_label: fine
    values[1, 0] = 150  # the last class after reduce_zero_label: fine
    cv2.imwrite(label, values)
    load = _pipeline(dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'))
    with pytest.raises(DatasetError, match=rf'^label file {re.escape(label)} has values \[200\] '
                       r'\(\[199\] after reduce_zero_label\) outside the 150 classes \(and 255 = ignore\)'):
        load(_info(img, label))
    plain = _pipeline(dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'))
    with pytest.raises(DatasetError, match=r'has values \[150, 200\] outside the 150 classes \(and '
                       r'255 = ignore\); fix the file'):
        plain(_info(img, label, reduce_zero_label=False))
    values[0, 0] = 1
    cv2.imwrite(label, values)
    assert load(_info(img, label))['gt_seg_map'][1, 0] == 149


def test_depth_size_is_checked_against_ori_shape_without_the_image(tmp_path):
    from densedino.datasets import LoadDepthAnnotation
    cv2.imwrite(str(tmp_path / 'd.png'), np.full((4, 5), 1000, np.uint16))
    info = dict(depth_map_path=str(tmp_path / 'd.png'), depth_scale=1000.0, img_path='x.jpg')
    assert LoadDepthAnnotation()(dict(info, ori_shape=(4, 5)))['gt_depth_map'].shape == (4, 5)
    with pytest.raises(DatasetError, match=r'depth file .*d\.png is 4x5 but image x\.jpg is 4x6'):
        LoadDepthAnnotation()(dict(info, ori_shape=(4, 6)))


# ----------------------------------------------------------------------------- depth evaluation


def _depth_sample(pred, gt, name):
    return dict(img_path=name.replace('depth', 'rgb').replace('.png', '.jpg'), depth_map_path=name,
                pred_depth_map=dict(data=torch.tensor(pred, dtype=torch.float32)[None]),
                gt_depth_map=dict(data=torch.tensor(gt, dtype=torch.float32)[None]))


ZEROS = [[0.0, 0.0], [0.0, 0.0]]
FAR = [[20.0, 30.0], [15.0, 11.0]]  # all beyond max_depth 10


def test_metric_warns_once_per_image_without_valid_pixel_and_scores_the_others(caplog):
    metric = DenseDepthMetric(min_depth=1e-3, max_depth=10.0)
    batch = [_depth_sample([[1.0, 2.0], [2.0, 4.0]], [[1.0, 1.0], [2.0, 2.0]], 'depth_a.png'),
             _depth_sample([[1.0, 1.0], [1.0, 1.0]], ZEROS, 'depth_zero.png'),
             _depth_sample([[1.0, 1.0], [1.0, 1.0]], FAR, 'depth_far.png')]
    with caplog.at_level(logging.WARNING, logger='densedino.evaluation.depth_metric'):
        metric.process({}, batch)
        metric.process({}, batch[1:2])  # seen again (next validation): no second warning
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert 'depth_zero.png has no valid pixel (0.001 m < gt < 10 m inside crop None)' in warnings[0]
    assert 'depth_far.png has no valid pixel' in warnings[1]
    result = metric.compute_metrics(metric.results)
    # only depth_a is scored: pred/gt ratios 1, 2, 1, 2
    assert result['d1'] == pytest.approx(0.5)
    assert result['abs_rel'] == pytest.approx(0.5)
    assert result['rmse'] == pytest.approx(math.sqrt((1 + 4) / 4))


def test_metric_raises_when_no_image_has_a_valid_pixel():
    metric = DenseDepthMetric(min_depth=1e-3, max_depth=10.0, crop=None)
    metric.process({}, [_depth_sample(ZEROS, ZEROS, 'depth_zero.png'),
                        _depth_sample(ZEROS, FAR, 'depth_far.png')])
    with pytest.raises(ValueError, match=r'^DenseDepthMetric: none of the 2 images with ground truth '
                       r'has a valid pixel \(0\.001 m < gt < 10 m inside crop None\); the depth maps '
                       r'are all zero or out of range'):
        metric.evaluate(2)


def test_metric_without_any_ground_truth_still_returns_nan():
    """Predictions only (KITTI test lines without ground truth): nothing to score, no error."""
    metric = DenseDepthMetric(min_depth=1e-3, max_depth=80.0, metrics=['rmse'])
    sample = _depth_sample(ZEROS, ZEROS, 'depth_a.png')
    del sample['gt_depth_map']
    metric.process({}, [sample])
    assert math.isnan(metric.evaluate(1)['rmse'])
