"""Segmentation end to end on small on-disk datasets: train, test, resume, errors, configs."""
import glob
import os
import os.path as osp
import subprocess
import sys
from typing import Optional

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

import densedino  # noqa: F401
from densedino.datasets import DatasetError

from .launch import torchrun_train
from .seg_fixtures import write_ade20k_folder

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_BACKBONE = dict(arch_overrides=dict(depth=4, embed_dim=32, num_heads=2))


def tiny_cfg(data_root, work_dir, *, iters=4, crop=(42, 56),
             config='configs/seg/ade20k_linear.py') -> Config:
    """An ADE20K config shrunk to a 4-block, 32-wide backbone on a fixture folder."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = str(work_dir)
    # the head's widths follow the backbone's
    cfg.model.backbone.update(checkpoint=None, pretrained=False, **TINY_BACKBONE)
    cfg.model.data_preprocessor.size = crop
    cfg.model.test_cfg = ConfigDict(mode='whole')
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomCrop', crop_size=crop),
        dict(type='PackSegInputs'),
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, 2
        dl.dataset.data_root = data_root
    cfg.train_dataloader.dataset.pipeline = train_pipeline
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.checkpoint.max_keep_ckpts = 10
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    return cfg


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return write_ade20k_folder(str(tmp_path_factory.mktemp('ade')))


def _losses(runner):
    """Training losses per iteration, from the message hub history."""
    hist = runner.message_hub.get_scalar('train/loss')
    return hist.data[0].tolist()


def test_train_then_test_reports_the_miou_of_its_predictions(ade_root, tmp_path):
    cfg = tiny_cfg(ade_root, tmp_path / 'wd')
    runner = Runner.from_cfg(cfg)
    frozen_before = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}
    runner.train()
    for k, v in runner.model.backbone.state_dict().items():
        assert torch.equal(v, frozen_before[k]), f'frozen backbone weight {k} changed'
    assert runner.model.decode_head.conv_seg.weight.requires_grad

    out_dir = tmp_path / 'preds'
    cfg.test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], output_dir=str(out_dir),
                              keep_results=True)
    cfg.load_from = str(tmp_path / 'wd' / 'iter_4.pth')
    metrics = Runner.from_cfg(cfg).test()
    # recompute mIoU by hand from the written predictions and the label files
    inter, union = np.zeros(150), np.zeros(150)
    present = np.zeros(150, bool)
    for gt_path in sorted(glob.glob(osp.join(ade_root, 'annotations/validation/*.png'))):
        gt = cv2.imread(gt_path, cv2.IMREAD_UNCHANGED).astype(np.int64) - 1  # reduce_zero_label
        pred = cv2.imread(str(out_dir / osp.basename(gt_path)), cv2.IMREAD_UNCHANGED)
        pred = pred.astype(np.int64) - 1  # written in the dataset's encoding (0 = other)
        valid = gt >= 0
        g, p = gt[valid], pred[valid]
        for c in range(150):
            inter[c] += np.sum((g == c) & (p == c))
            union[c] += np.sum((g == c) | (p == c))
            present[c] |= bool(np.any(g == c) or np.any(p == c))
    miou = 100 * np.mean(inter[present] / union[present])
    assert metrics['mIoU'] == pytest.approx(miou, abs=0.01)


def test_slide_equals_whole_when_one_crop_covers_the_image(ade_root, tmp_path):
    cfg = tiny_cfg(ade_root, tmp_path)
    model = Runner.from_cfg(cfg).model.eval()
    x = torch.randn(1, 3, 42, 56)
    metas = [dict(img_shape=(42, 56), ori_shape=(42, 56), pad_shape=(42, 56))]
    model.test_cfg = ConfigDict(mode='whole')
    whole = model.inference(x, metas)
    model.test_cfg = ConfigDict(mode='slide', crop_size=(64, 64), stride=(40, 40))
    slide = model.inference(x, [dict(m) for m in metas])
    torch.testing.assert_close(slide, whole)


def test_resume_reproduces_the_uninterrupted_losses(ade_root, tmp_path):
    full = Runner.from_cfg(tiny_cfg(ade_root, tmp_path / 'full', iters=4))
    full.train()
    reference = _losses(full)
    first = Runner.from_cfg(tiny_cfg(ade_root, tmp_path / 'part', iters=2))
    first.train()
    cfg = tiny_cfg(ade_root, tmp_path / 'part', iters=4)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 4
    np.testing.assert_allclose(_losses(resumed)[-2:], reference[2:4], rtol=1e-5)


# Every segmentation and depth config (configs/pretrain/ are built by test_pretrain_model.py).
MODEL_CONFIGS = sorted(osp.relpath(p, REPO) for d in ('seg', 'depth')
                       for p in glob.glob(osp.join(REPO, 'configs', d, '*.py')))
EXPECTED_CONFIGS = 30
# 4 blocks keep 'four_last' / 'four_even' valid; Depth-Anything-V2's decoder has preset widths
# for the released backbone widths only, so its configs get ViT-S's width.
SMALL_ARCH = dict(depth=4, embed_dim=32, num_heads=2)
SMALL_ARCH_FOR = {'depth_anything_v2': dict(depth=4, embed_dim=384, num_heads=6)}


def small_model(path: str, options: Optional[dict] = None):
    """The config's model on a small backbone (its own arch otherwise), in eval mode."""
    from mmengine.registry import DefaultScope

    from densedino.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, path))
    arch = next((v for k, v in SMALL_ARCH_FOR.items() if k in path), SMALL_ARCH)
    cfg.model.backbone.update(checkpoint=None, pretrained=False, arch_overrides=dict(arch))
    cfg.merge_from_dict(options or {})
    with DefaultScope.overwrite_default_scope('densedino'):
        return MODELS.build(cfg.model).eval()


def predict_small(model, batch: int = 1):
    """``model.predict`` on random (batch, 3, 2p, 3p) inputs, p the patch size."""
    from mmseg.structures import SegDataSample
    size = (2 * model.backbone.patch_size, 3 * model.backbone.patch_size)
    meta = dict(ori_shape=size, img_shape=size, pad_shape=size, padding_size=[0, 0, 0, 0])
    with torch.no_grad():
        return size, model.predict(torch.randn(batch, 3, *size),
                                   [SegDataSample(metainfo=dict(meta)) for _ in range(batch)])


@pytest.mark.parametrize('path', MODEL_CONFIGS)
def test_every_config_builds(path):
    """Every config builds on a small backbone (heads take its width) and predicts: class
    logits or depth at the input size, depth inside the head's range."""
    model = small_model(path)
    size, samples = predict_small(model)
    if 'configs/seg/' in path:
        num_classes = Config.fromfile(osp.join(REPO, path)).model.decode_head.num_classes
        assert samples[0].seg_logits.data.shape == (num_classes, *size)
        assert samples[0].pred_sem_seg.data.shape == (1, *size)
        return
    depth = samples[0].pred_depth_map.data
    assert depth.shape == (1, *size) and torch.isfinite(depth).all()
    head = model.decode_head
    if head.relative:
        assert depth.min() >= 0 and 'depth_range' not in samples[0]
        assert samples[0].relative_disparity  # the depth metric then asks for alignment
    else:
        tol = 1e-6 * head.max_depth  # float32 rounding of bilinear resizes and flip averages
        assert head.min_depth - tol <= depth.min() <= depth.max() <= head.max_depth + tol
        assert samples[0].depth_range == (head.min_depth, head.max_depth)
        assert 'relative_disparity' not in samples[0]


def test_every_config_is_covered():
    assert len(MODEL_CONFIGS) == EXPECTED_CONFIGS


def test_bad_inputs_give_one_line_errors(ade_root, tmp_path):
    cfg = tiny_cfg(str(tmp_path / 'nowhere'), tmp_path)
    with pytest.raises(DatasetError, match=r'image folder .*nowhere.* does not exist'):
        Runner.from_cfg(cfg).train()

    root = write_ade20k_folder(str(tmp_path / 'broken'), num_train=2, num_val=1)
    missing = osp.join(root, 'annotations/training/ADE_train_00000002.png')
    os.remove(missing)
    with pytest.raises(DatasetError, match=f'label file {missing} is missing'):
        Runner.from_cfg(tiny_cfg(root, tmp_path / 'b')).train()

    root = write_ade20k_folder(str(tmp_path / 'range'), num_train=2, num_val=1)
    bad = osp.join(root, 'annotations/training/ADE_train_00000001.png')
    cv2.imwrite(bad, np.full((56, 84), 200, np.uint8))
    cfg = tiny_cfg(root, tmp_path / 'c')
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=False)
    # the value as stored in the file, then as mapped by reduce_zero_label
    message = f'label file {bad} has values \\[200\\] \\(\\[199\\] after reduce_zero_label\\) outside'
    with pytest.raises(DatasetError, match=message):
        Runner.from_cfg(cfg).train()


def test_train_cli_one_line_error_for_missing_checkpoint(tmp_path):
    """The config fetches the released backbone; offline with an empty cache, one line says
    where to save the file."""
    env = dict(os.environ, DENSEDINO_OFFLINE='1', DENSEDINO_HOME=str(tmp_path / 'home'))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/seg/ade20k_linear.py', '--work-dir',
         str(tmp_path / 'work')], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: DownloadError: cannot get dinov2_vits14: it is not in the '
                           'cache and DENSEDINO_OFFLINE=1 forbids downloading')
    assert f'save the file by hand as {tmp_path}/home/checkpoints/dinov2_vits14_pretrain.pth' \
        in last


def test_torchrun_two_processes_on_cpu(ade_root, tmp_path):
    """DDP over gloo with 2 CPU processes trains and writes one checkpoint."""
    cfg = tiny_cfg(ade_root, tmp_path / 'ddp', iters=2)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg_path = tmp_path / 'tiny_ddp.py'
    cfg.dump(str(cfg_path))
    torchrun_train(cfg_path, tmp_path / 'ddp')
    ckpt = torch.load(tmp_path / 'ddp' / 'iter_2.pth', map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    assert ckpt['meta']['dataset_meta']['classes'][0] == 'wall'


def test_test_cli_tta_show_dir_and_out(ade_root, tmp_path):
    """tools/test.py with --tta (scales + flips of the +ms config), --show-dir and --out."""
    cfg = tiny_cfg(ade_root, tmp_path / 'wd', iters=2, config='configs/seg/ade20k_linear_ms.py')
    cfg.tta_pipeline[1].transforms[0] = [dict(type='Resize', scale_factor=r, keep_ratio=True)
                                         for r in (1.0, 1.5)]
    Runner.from_cfg(cfg).train()
    cfg_path = tmp_path / 'tiny_ms.py'
    cfg.dump(str(cfg_path))
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', str(cfg_path), str(tmp_path / 'wd' / 'iter_2.pth'),
         '--tta', '--show-dir', str(tmp_path / 'vis'), '--out', str(tmp_path / 'pred'),
         '--work-dir', str(tmp_path / 'test'), '--cfg-options', 'log_level=INFO'],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'mIoU' in proc.stdout + proc.stderr
    preds = sorted(os.listdir(tmp_path / 'pred'))
    assert preds == [f'ADE_val_{i:08d}.png' for i in (1, 2, 3)]
    shown = glob.glob(str(tmp_path / 'vis' / '**' / '*.png'), recursive=True)
    assert len(shown) == 3


@pytest.mark.parametrize('config', ['configs/seg/ade20k_linear_ms.py',
                                    'configs/seg/voc12_linear_ms.py'])
def test_ms_configs_test_at_short_side_640_times_each_ratio(config):
    """DINOv2's +ms test resizes the short side to 640 x r (r = 1 ... 3), whatever the image's
    own size (ADE20K images are ~512 px), as its multi-scale flip test with img_scale
    (inf, 640) and img_ratios does."""
    from mmengine.registry import DefaultScope

    from densedino.registry import TRANSFORMS
    cfg = Config.fromfile(osp.join(REPO, config))
    resizes = cfg.tta_pipeline[1].transforms[0]
    image = np.zeros((512, 683, 3), np.uint8)
    with DefaultScope.overwrite_default_scope('densedino'):
        shapes = [TRANSFORMS.build(t)(dict(img=image.copy()))['img'].shape[:2] for t in resizes]
    assert [min(s) for s in shapes] == [int(640 * r) for r in cfg.img_ratios]
    assert [round(max(s) / min(s), 2) for s in shapes] == [round(683 / 512, 2)] * len(shapes)
