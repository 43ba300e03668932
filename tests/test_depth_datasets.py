"""Depth datasets and transforms on tiny on-disk NYU / KITTI / folder datasets, through mmseg's pipelines."""
# ruff: noqa: C408 - pipelines and dataset configs are written as dict(type=...), as in mmengine configs
import logging
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

import densedino  # noqa: F401
from densedino.datasets import (
    DatasetError,
    DepthColorJitter,
    DepthFolderDataset,
    KBCrop,
    KITTIEigenDepthDataset,
    LoadDepthAnnotation,
    NYUCrop,
    NYUDepthDataset,
    NYUFolderDepthDataset,
    RandomDepthRotate,
    SceneConfig,
    write_nyu,
)
from densedino.registry import DATASETS, TRANSFORMS

from .depth_fixtures import (
    KITTI_SIZE,
    NYU_SIZE,
    write_depth_folder,
    write_kitti_split,
    write_nyu_mmseg_folder,
    write_nyu_split,
)

META_KEYS = ('img_path', 'depth_map_path', 'focal', 'depth_scale', 'ori_shape', 'img_shape', 'flip',
             'flip_direction')


@pytest.fixture(autouse=True)
def _densedino_scope():
    with DefaultScope.overwrite_default_scope('densedino'):
        yield


@pytest.fixture(scope='module')
def nyu_root(tmp_path_factory):
    return write_nyu_split(str(tmp_path_factory.mktemp('nyu')))


@pytest.fixture(scope='module')
def kitti_root(tmp_path_factory):
    return write_kitti_split(str(tmp_path_factory.mktemp('kitti')))


def _png(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def _split_lines(path):
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def _pack(*transforms):
    return [dict(type='LoadImageFromFile'), dict(type='LoadDepthAnnotation'), *transforms,
            dict(type='PackSegInputs', meta_keys=META_KEYS)]


def _window(big, small):
    """The (y, x) where ``small`` occurs exactly in ``big``."""
    h, w = small.shape[:2]
    hits = [(y, x) for y in range(big.shape[0] - h + 1) for x in range(big.shape[1] - w + 1)
            if np.array_equal(big[y:y + h, x:x + w], small)]
    assert len(hits) == 1, hits
    return hits[0]


# ----------------------------------------------------------------------------- datasets

def test_nyu_split_dataset_lists_files_focals_and_scale(nyu_root):
    ds = NYUDepthDataset(nyu_root, split_file='nyu_train.txt')
    lines = _split_lines(osp.join(nyu_root, 'nyu_train.txt'))
    assert len(ds) == len(lines) == 4
    assert ds.metainfo['classes'] == ('depth',)
    for i, (rgb, depth, focal) in enumerate(lines):
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(nyu_root, rgb)
        assert info['depth_map_path'] == osp.join(nyu_root, depth)
        assert isinstance(info['focal'], float) and info['focal'] == float(focal)
        assert info['depth_scale'] == 1000.0 and info['seg_fields'] == []
    assert len(NYUDepthDataset(nyu_root)) == 2  # nyu_test.txt by default


def test_nyu_split_file_tolerates_leading_slashes(nyu_root, tmp_path):
    lines = _split_lines(osp.join(nyu_root, 'nyu_test.txt'))
    split = tmp_path / 'bts_style.txt'
    split.write_text(''.join(f'/{rgb} /{depth} {focal}\n\n' for rgb, depth, focal in lines))
    ds = NYUDepthDataset(nyu_root, split_file=str(split))
    assert [d['img_path'] for d in ds] == [osp.join(nyu_root, rgb) for rgb, _, _ in lines]


def test_kitti_skips_lines_without_gt_and_logs_the_count(kitti_root, caplog):
    with caplog.at_level(logging.INFO, logger='densedino.datasets.depth'):
        ds = KITTIEigenDepthDataset(kitti_root)
    lines = _split_lines(osp.join(kitti_root, 'kitti_eigen_test.txt'))
    assert len(lines) == 3 and lines[-1][1] == 'None'
    assert len(ds) == 2 and ds.num_missing_gt == 1
    assert '1 of 3 lines have no ground truth (skipped)' in caplog.text
    for i, (rgb, gt, focal) in enumerate(lines[:2]):
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(kitti_root, 'input', rgb)
        assert info['depth_map_path'] == osp.join(kitti_root, 'gt_depth', gt)
        assert info['focal'] == float(focal) and info['depth_scale'] == 256.0

    kept = KITTIEigenDepthDataset(kitti_root, skip_missing_gt=False, pipeline=_pack())
    assert len(kept) == 3 and kept.get_data_info(2)['depth_map_path'] is None
    sample = kept[2]['data_samples']  # prediction-only: an image, no ground truth
    assert 'gt_depth_map' not in sample and sample.depth_map_path is None


def test_nyu_mmseg_folder_layout(tmp_path):
    root = write_nyu_mmseg_folder(str(tmp_path))
    ds = NYUFolderDepthDataset(root, split='test', pipeline=_pack())
    assert len(ds) == 2
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(root, 'images', 'test', 'test_0000_00000.jpg')
    assert info['depth_map_path'] == osp.join(root, 'annotations', 'test', 'test_0000_00000.png')
    assert info['focal'] == 518.8579 and info['depth_scale'] == 1000.0
    gt = ds[0]['data_samples'].gt_depth_map.data[0].numpy()
    np.testing.assert_array_equal(gt, _png(info['depth_map_path']).astype(np.float32) / np.float32(1000))
    assert len(NYUFolderDepthDataset(root, split='train')) == 3
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        NYUFolderDepthDataset(root, split='val')


def test_generic_folder_dataset_pairs_by_stem_recursively(tmp_path):
    root = write_depth_folder(str(tmp_path))
    ds = DepthFolderDataset(data_root=root, img_dir='images', depth_dir='depth', img_suffix='.png',
                            depth_scale=256, focal=700.0, pipeline=_pack())
    assert [osp.relpath(d['img_path'], root) for d in map(ds.get_data_info, range(len(ds)))] == [
        'images/frame_0.png', 'images/frame_1.png', 'images/sub/frame_2.png']
    info = ds.get_data_info(2)
    assert info['depth_map_path'] == osp.join(root, 'depth', 'sub', 'frame_2.png')
    assert info['focal'] == 700.0 and info['depth_scale'] == 256.0
    gt = ds[2]['data_samples'].gt_depth_map.data[0].numpy()
    np.testing.assert_array_equal(gt, _png(info['depth_map_path']).astype(np.float32) / 256)


def test_folder_image_without_depth_raises_or_is_skipped(tmp_path, caplog):
    root = write_depth_folder(str(tmp_path))
    os.remove(osp.join(root, 'depth', 'frame_1.png'))
    kwargs = dict(data_root=root, img_dir='images', depth_dir='depth', img_suffix='.png', depth_scale=1000,
                  focal=500.0)
    with pytest.raises(DatasetError, match=r'image .*images/frame_1\.png has no depth file .*frame_1\.png'):
        DepthFolderDataset(**kwargs)
    with caplog.at_level(logging.INFO, logger='densedino.datasets.depth'):
        ds = DepthFolderDataset(skip_missing_depth=True, **kwargs)
    assert len(ds) == 2 and 'skipped 1 of 3 images' in caplog.text


def test_datasets_build_from_config_dicts_with_densedino_transforms(nyu_root, kitti_root):
    assert TRANSFORMS.get('LoadDepthAnnotation') is LoadDepthAnnotation
    for name in ('RandomFlip', 'RandomCrop', 'Resize'):  # mmseg's, which move every seg field
        assert TRANSFORMS.get(name).__module__ == 'mmseg.datasets.transforms.transforms', name
    pipeline = _pack(dict(type='NYUCrop'), dict(type='KBCrop'), dict(type='RandomDepthRotate'),
                     dict(type='DepthColorJitter'))
    nyu = DATASETS.build(dict(type='NYUDepthDataset', data_root=nyu_root, split_file='nyu_train.txt',
                              pipeline=pipeline, lazy_init=True))
    assert isinstance(nyu, NYUDepthDataset)
    assert [type(t) for t in nyu.pipeline.transforms[1:-1]] == [
        LoadDepthAnnotation, NYUCrop, KBCrop, RandomDepthRotate, DepthColorJitter]
    kitti = DATASETS.build(dict(type='KITTIEigenDepthDataset', data_root=kitti_root,
                                split_file='kitti_eigen_train.txt', test_mode=True, pipeline=_pack()))
    assert len(kitti) == 2 and kitti[0]['data_samples'].gt_depth_map.data.shape == (1, *KITTI_SIZE)


def test_lazy_init_defers_the_checks_to_full_init(tmp_path):
    ds = NYUDepthDataset(str(tmp_path), split_file='absent.txt', lazy_init=True)
    with pytest.raises(DatasetError, match='absent.txt'):
        ds.full_init()


# ----------------------------------------------------------------------------- dataset errors

def test_missing_split_file_or_folder_is_named(tmp_path, kitti_root):
    with pytest.raises(DatasetError, match=r'split file .*nyu_val\.txt does not exist'):
        NYUDepthDataset(str(tmp_path), split_file='nyu_val.txt')
    with pytest.raises(DatasetError, match=r'image folder .*rgb does not exist'):
        KITTIEigenDepthDataset(kitti_root, img_dir='rgb')
    with pytest.raises(DatasetError, match=r'depth folder .*nodepth does not exist'):
        DepthFolderDataset(data_root=str(tmp_path), img_dir='.', depth_dir='nodepth', depth_scale=1, focal=1)


def test_missing_listed_files_are_named_up_front(nyu_root, tmp_path):
    lines = _split_lines(osp.join(nyu_root, 'nyu_test.txt'))
    split = tmp_path / 'split.txt'
    split.write_text(f'{lines[0][0]} test_0000/sync_depth_99999.png 518.8579\n'
                     f'test_0000/rgb_99999.jpg {lines[0][1]} 518.8579\n')
    with pytest.raises(DatasetError, match=r'image file .*rgb_99999\.jpg is missing'):
        NYUDepthDataset(nyu_root, split_file=str(split))
    split.write_text(f'{lines[0][0]} test_0000/sync_depth_99999.png 518.8579\n')
    with pytest.raises(DatasetError, match=r'depth file .*sync_depth_99999\.png is missing'):
        NYUDepthDataset(nyu_root, split_file=str(split))


@pytest.mark.parametrize('content, message', [
    ('', r'lists no samples'),
    ('a.jpg b.png\n', r'line 1: expected "<rgb> <depth> <focal>", got \'a.jpg b.png\''),
    ('\na.jpg b.png f\n', r'line 2: focal must be a positive number, got \'f\''),
])
def test_bad_split_files_are_rejected(tmp_path, content, message):
    (tmp_path / 'split.txt').write_text(content)
    with pytest.raises(DatasetError, match=r'split.txt.*' + message):
        NYUDepthDataset(str(tmp_path), split_file='split.txt')


def test_kitti_split_without_any_gt_is_an_error(kitti_root, tmp_path):
    lines = _split_lines(osp.join(kitti_root, 'kitti_eigen_test.txt'))
    split = tmp_path / 'nogt.txt'
    split.write_text(''.join(f'{rgb} None {focal}\n' for rgb, _, focal in lines))
    with pytest.raises(DatasetError, match=r'nogt\.txt: none of its 3 lines has ground truth'):
        KITTIEigenDepthDataset(kitti_root, split_file=str(split))
    assert len(KITTIEigenDepthDataset(kitti_root, split_file=str(split), skip_missing_gt=False)) == 3


def test_dataset_arguments_are_validated(nyu_root):
    with pytest.raises(ValueError, match='depth_scale must be a positive number, got 0'):
        NYUDepthDataset(nyu_root, depth_scale=0)
    with pytest.raises(TypeError, match="skip_missing_gt must be True or False, got 'yes'"):
        KITTIEigenDepthDataset(nyu_root, skip_missing_gt='yes')
    with pytest.raises(ValueError, match='focal must be a positive number, got -1'):
        DepthFolderDataset(img_dir='a', depth_dir='b', depth_scale=1, focal=-1)


# ----------------------------------------------------------------------------- pipelines

def test_nyu_pipeline_flip_crop_rotate_pack_gives_exact_metres(nyu_root):
    np.random.seed(0)
    ds = DATASETS.build(dict(type='NYUDepthDataset', data_root=nyu_root, split_file='nyu_train.txt',
                             pipeline=_pack(dict(type='RandomFlip', prob=1.0),
                                            dict(type='RandomCrop', crop_size=(32, 40)),
                                            dict(type='RandomDepthRotate', max_angle=0.0, prob=1.0))))
    out = ds[1]
    sample = out['data_samples']
    info = ds.get_data_info(1)
    assert sample.depth_map_path == info['depth_map_path'] and sample.focal == info['focal']
    assert sample.flip and sample.img_shape == (32, 40) and sample.ori_shape == NYU_SIZE
    gt = sample.gt_depth_map.data
    assert gt.shape == (1, 32, 40) and gt.dtype == torch.float32
    # the crop window, found from the image, must hold the flipped depth in metres
    img = cv2.imread(info['img_path'])[:, ::-1]
    y, x = _window(img, out['inputs'].numpy().transpose(1, 2, 0))
    png = _png(info['depth_map_path'])[:, ::-1]
    expected = png[y:y + 32, x:x + 40].astype(np.float32) / np.float32(1000)
    np.testing.assert_array_equal(gt[0].numpy(), expected)
    for py, px in ((0, 0), (5, 17), (31, 39)):  # a few pixels, exact millimetres to metres
        assert gt[0, py, px].item() == np.float32(int(png[y + py, x + px]) / 1000)


def test_resize_moves_depth_with_nearest_neighbour(nyu_root):
    ds = NYUDepthDataset(nyu_root, pipeline=_pack(dict(type='Resize', scale=(40, 30), keep_ratio=False)))
    sample = ds[0]['data_samples']
    gt = sample.gt_depth_map.data[0].numpy()
    assert gt.shape == (30, 40) == ds[0]['inputs'].shape[1:]
    original = _png(ds.get_data_info(0)['depth_map_path']).astype(np.float32) / 1000
    assert np.isin(gt, original).all()  # nearest: no new values


def test_kitti_sparse_zeros_stay_zeros(kitti_root):
    np.random.seed(1)
    ds = KITTIEigenDepthDataset(kitti_root, split_file='kitti_eigen_train.txt',
                                pipeline=_pack(dict(type='RandomFlip', prob=1.0),
                                               dict(type='RandomDepthRotate', max_angle=3.0, prob=1.0)))
    out = ds[0]
    gt = out['data_samples'].gt_depth_map.data[0].numpy()
    png = _png(ds.get_data_info(0)['depth_map_path'])
    assert 0.05 < (png > 0).mean() < 0.3  # sparse, like projected LiDAR
    values = png[png > 0].astype(np.float32) / 256
    assert np.isin(gt[gt > 0], values).all() and (gt == 0).mean() >= (png == 0).mean() - 0.02

    flipped = KITTIEigenDepthDataset(kitti_root, split_file='kitti_eigen_train.txt',
                                     pipeline=_pack(dict(type='RandomFlip', prob=1.0)))[0]
    gt = flipped['data_samples'].gt_depth_map.data[0].numpy()
    np.testing.assert_array_equal(gt == 0, png[:, ::-1] == 0)
    np.testing.assert_array_equal(gt, png[:, ::-1].astype(np.float32) / 256)


# ----------------------------------------------------------------------------- LoadDepthAnnotation errors

def _load(depth_path, img_path=None, **info):
    results = dict(depth_map_path=str(depth_path), depth_scale=1000.0, seg_fields=[], **info)
    if img_path is not None:
        results = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(results, img_path=str(img_path)))
    return LoadDepthAnnotation()(results)


def test_corrupt_depth_png_is_named(tmp_path):
    path = tmp_path / 'garbage.png'
    path.write_bytes(b'\x89PNG not really a png')
    with pytest.raises(DatasetError, match=r'cannot decode depth file .*garbage\.png'):
        _load(path)
    with pytest.raises(DatasetError, match=r'depth file .*absent\.png does not exist'):
        _load(tmp_path / 'absent.png')


def test_8bit_and_multichannel_depth_pngs_are_rejected(tmp_path):
    cv2.imwrite(str(tmp_path / 'eight.png'), np.full((4, 5), 7, np.uint8))
    with pytest.raises(DatasetError, match=r'depth file .*eight\.png is 8-bit; depth must be 16-bit'):
        _load(tmp_path / 'eight.png')
    cv2.imwrite(str(tmp_path / 'rgb16.png'), np.full((4, 5, 3), 7, np.uint16))
    with pytest.raises(DatasetError, match=r'rgb16\.png has 3 channels'):
        _load(tmp_path / 'rgb16.png')


def test_depth_of_another_size_than_the_image_names_both(nyu_root, tmp_path):
    cv2.imwrite(str(tmp_path / 'small.png'), np.full((10, 12), 1000, np.uint16))
    img = osp.join(nyu_root, _split_lines(osp.join(nyu_root, 'nyu_test.txt'))[0][0])
    message = r'depth file .*small\.png is 10x12 but image .*rgb_00000\.jpg is 48x64'
    with pytest.raises(DatasetError, match=message):
        _load(tmp_path / 'small.png', img)


def test_load_depth_scale_override_and_missing_scale(tmp_path):
    cv2.imwrite(str(tmp_path / 'd.png'), np.array([[0, 256, 512]], np.uint16))
    out = LoadDepthAnnotation(depth_scale=256)(dict(depth_map_path=str(tmp_path / 'd.png'), depth_scale=1000.0))
    assert out['gt_depth_map'].dtype == np.float32 and out['gt_depth_map'].tolist() == [[0.0, 1.0, 2.0]]
    assert out['seg_fields'] == ['gt_depth_map']
    with pytest.raises(DatasetError, match=r'no depth_scale for .*d\.png'):
        LoadDepthAnnotation()(dict(depth_map_path=str(tmp_path / 'd.png')))
    with pytest.raises(ValueError, match='depth_scale must be a positive number or None, got -2'):
        LoadDepthAnnotation(depth_scale=-2)


# ----------------------------------------------------------------------------- crops, rotation, colour

def _coded(h, w):
    """An image and a depth map whose values encode their pixel position."""
    ys, xs = np.mgrid[:h, :w]
    depth = (ys * w + xs).astype(np.float32)
    img = np.stack([ys % 256, xs % 256, (ys // 256) * 16 + xs // 256], -1).astype(np.uint8)
    return dict(img=img, img_shape=(h, w), gt_depth_map=depth, seg_fields=['gt_depth_map'], img_path='x.png')


def test_kb_crop_keeps_bottom_352_rows_and_centred_1216_columns():
    results = _coded(375, 1242)
    full = {k: v.copy() for k, v in results.items() if isinstance(v, np.ndarray)}
    out = KBCrop()(results)
    assert out['img'].shape == (352, 1216, 3) and out['img_shape'] == (352, 1216)
    np.testing.assert_array_equal(out['gt_depth_map'], full['gt_depth_map'][23:375, 13:1229])
    np.testing.assert_array_equal(out['img'], full['img'][23:375, 13:1229])
    with pytest.raises(DatasetError, match=r'KBCrop needs images of at least 352x1216, got 300x1242 for x'):
        KBCrop()(_coded(300, 1242))
    with pytest.raises(ValueError, match='height must be a positive integer, got 0'):
        KBCrop(height=0)


def test_nyu_crop_exact_box():
    results = _coded(480, 640)
    full = results['gt_depth_map'].copy()
    out = NYUCrop()(results)
    assert out['img_shape'] == (427, 565)
    np.testing.assert_array_equal(out['gt_depth_map'], full[45:472, 43:608])
    assert out['gt_depth_map'][0, 0] == 45 * 640 + 43 and out['gt_depth_map'][-1, -1] == 471 * 640 + 607
    with pytest.raises(DatasetError, match=r'NYUCrop needs 480x640 images, got 48x64 for x\.png'):
        NYUCrop()(_coded(48, 64))
    mismatched = _coded(480, 640)
    mismatched['gt_depth_map'] = mismatched['gt_depth_map'][:400]
    with pytest.raises(DatasetError, match=r'gt_depth_map is 400x640 but the image is 480x640'):
        NYUCrop()(mismatched)


def test_rotation_by_zero_is_identity():
    results = _coded(37, 53)
    img, depth = results['img'].copy(), results['gt_depth_map'].copy()
    out = RandomDepthRotate(max_angle=0.0, prob=1.0)(results)
    np.testing.assert_array_equal(out['img'], img)
    np.testing.assert_array_equal(out['gt_depth_map'], depth)
    out = RandomDepthRotate(max_angle=10.0, prob=0.0)(_coded(37, 53))
    assert out['rotate_angle'] == 0.0 and np.array_equal(out['gt_depth_map'], depth)


def test_rotation_never_blends_invalid_depth_and_fills_outside_with_zero():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 10.0, size=(60, 80)).astype(np.float32)
    depth[20:40, 30:50] = 0  # a hole without measurement
    seg = np.ones((60, 80), np.uint8)
    results = dict(img=np.full((60, 80, 3), 200, np.uint8), gt_depth_map=depth.copy(), gt_seg_map=seg,
                   seg_fields=['gt_depth_map', 'gt_seg_map'])
    np.random.seed(3)
    out = RandomDepthRotate(max_angle=20.0, prob=1.0)(results)
    assert abs(out['rotate_angle']) > 1.0
    rotated = out['gt_depth_map']
    assert rotated.dtype == np.float32 and rotated.shape == (60, 80)
    assert np.isin(rotated, np.append(depth.ravel(), 0)).all()  # nearest: only original values or 0
    assert rotated[0, 0] == rotated[0, -1] == rotated[-1, 0] == rotated[-1, -1] == 0  # rotated in: 0
    assert out['gt_seg_map'][0, 0] == 255 and out['img'][0, 0].tolist() == [0, 0, 0]
    assert (rotated[25:35, 35:45] == 0).all()  # the hole's centre stays invalid


def test_color_jitter_scales_the_image_and_leaves_depth():
    results = _coded(8, 9)
    img, depth = results['img'].astype(np.float32), results['gt_depth_map'].copy()
    out = DepthColorJitter(brightness=(1.2, 1.2), prob=1.0)(results)
    np.testing.assert_array_equal(out['img'], np.round(np.clip(img / 255 * 1.2, 0, 1) * 255).astype(np.uint8))
    np.testing.assert_array_equal(out['gt_depth_map'], depth)
    out = DepthColorJitter(brightness=None, gamma=(0.9, 1.1), color=(0.9, 1.1), prob=1.0)(_coded(8, 9))
    assert out['img'].dtype == np.uint8 and out['img'].shape == (8, 9, 3)
    untouched = _coded(8, 9)
    assert np.array_equal(DepthColorJitter(prob=0.0)(untouched)['img'], _coded(8, 9)['img'])
    message = r'brightness must be two numbers lo <= hi with lo >= 0.0, got \(1.25, 0.75\)'
    with pytest.raises(ValueError, match=message):
        DepthColorJitter(brightness=(1.25, 0.75))
    with pytest.raises(ValueError, match='prob must be a number in'):
        DepthColorJitter(prob=2)


def test_transform_reprs():
    assert repr(LoadDepthAnnotation()) == 'LoadDepthAnnotation(depth_scale=None, backend_args=None)'
    assert repr(NYUCrop()) == 'NYUCrop(rows=45:472, cols=43:608)'
    assert repr(KBCrop()) == 'KBCrop(height=352, width=1216)'
    assert repr(RandomDepthRotate()) == ('RandomDepthRotate(max_angle=2.5, prob=0.5, img_border_value=0, '
                                         'seg_border_value=255)')
    assert repr(DepthColorJitter()) == ('DepthColorJitter(brightness=(0.75, 1.25), gamma=None, color=None, '
                                        'prob=0.5)')


def test_dinov3_nyu_train_recipe_at_full_size(tmp_path):
    """Fixed NYU crop, rotation, flip, 416x544 random crop, brightness, on a 480x640 frame."""
    root = write_nyu(str(tmp_path / 'nyu'), num_train=1, num_test=0, config=SceneConfig(image_size=(480, 640)))
    pipeline = _pack(dict(type='NYUCrop'), dict(type='RandomDepthRotate', max_angle=2.5, prob=1.0),
                     dict(type='RandomFlip', prob=0.5), dict(type='RandomCrop', crop_size=(416, 544)),
                     dict(type='DepthColorJitter', brightness=(0.75, 1.25), prob=1.0))
    ds = NYUDepthDataset(root, split_file='nyu_train.txt', pipeline=pipeline)
    out = ds[0]
    gt = out['data_samples'].gt_depth_map.data
    assert out['inputs'].shape == (3, 416, 544) and gt.shape == (1, 416, 544)
    png = _png(ds.get_data_info(0)['depth_map_path'])
    assert np.isin(gt.numpy(), np.append(png.astype(np.float32) / np.float32(1000), 0)).all()


def test_resize_before_loading_keeps_depth_at_full_resolution(kitti_root):
    """mmseg's test-time order (Resize, then LoadDepthAnnotation): the GT keeps the original size."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(68, 20), keep_ratio=True),
                dict(type='LoadDepthAnnotation'), dict(type='PackSegInputs', meta_keys=META_KEYS)]
    out = KITTIEigenDepthDataset(kitti_root, test_mode=True, pipeline=pipeline)[0]
    assert out['inputs'].shape[1:] == (20, 68)
    assert out['data_samples'].gt_depth_map.data.shape == (1, *KITTI_SIZE)
