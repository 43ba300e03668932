"""Tests for densedino.compat: mmseg on mmcv-lite, mmcv.ops replacements, checkpoint allow-list, doctor."""
import importlib
import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import List

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import densedino  # noqa: F401  (applies the fixes before mmseg is imported)
from densedino import compat

LITE = not compat.mmcv_has_ops()
lite_only = pytest.mark.skipif(not LITE, reason='tests the mmcv-lite replacement; compiled ops are here')
full_only = pytest.mark.skipif(LITE, reason='needs compiled mmcv ops')
REPO = Path(__file__).resolve().parents[1]
MMSEG_MODULES = ['mmseg.datasets', 'mmseg.models', 'mmseg.evaluation', 'mmseg.visualization',
                 'mmseg.structures', 'mmseg.engine', 'mmseg.apis', 'mmseg.utils']


def mmcv_ops_file(name: str) -> ModuleType:
    """Load a pure-python file of mmcv/ops (it imports only torch) as a standalone reference module."""
    spec = importlib.util.find_spec('mmcv')
    path = Path(list(spec.submodule_search_locations)[0]) / 'ops' / f'{name}.py'
    ref_spec = importlib.util.spec_from_file_location(f'_mmcv_ref_{name}', path)
    module = importlib.util.module_from_spec(ref_spec)
    ref_spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------- imports
@pytest.mark.parametrize('name', MMSEG_MODULES)
def test_mmseg_submodule_imports(name):
    assert importlib.import_module(name)


@lite_only
def test_mmcv_ops_is_the_replacement():
    import mmcv
    import mmcv.ops
    assert compat.ops_replacement_active()
    assert mmcv.ops is sys.modules['mmcv.ops']
    assert mmcv.ops.point_sample is compat.point_sample
    assert mmcv.ops.sigmoid_focal_loss is compat.sigmoid_focal_loss


@full_only
def test_compiled_mmcv_ops_untouched():
    import mmcv.ops
    assert not compat.ops_replacement_active()
    assert mmcv.ops.point_sample is not compat.point_sample
    assert Path(mmcv.ops.__file__).name == '__init__.py'


def test_apply_is_idempotent():
    before = list(sys.meta_path)
    compat.apply()
    compat.apply()
    assert sys.meta_path == before
    assert sum(getattr(f, 'densedino_mmcv_ops', False) for f in sys.meta_path) == 1


def test_status_reports():
    status = compat.status()
    assert status['mmcv_has_ops'] is (not LITE)
    assert status['ops_finder_installed']
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in status['checkpoint_globals']
    assert set(status['checkpoint_globals']) <= set(compat.allowed_checkpoint_globals())


# ---------------------------------------------------------------------------------- stubs
@lite_only
@pytest.mark.parametrize('name,args', [('DeformConv2d', (4, 4, 3)), ('CrissCrossAttention', (8,)),
                                       ('PSAMask', ('collect', (3, 3))), ('nms', ())])
def test_stub_op_raises_naming_the_op(name, args):
    op = getattr(importlib.import_module('mmcv.ops'), name)
    with pytest.raises(compat.MmcvOpsUnavailableError, match=rf'mmcv\.ops\.{name} needs compiled mmcv ops'):
        op(*args)


@lite_only
def test_stub_classes_are_stable_and_isinstance_safe():
    from mmcv.ops import DeformConv2d, ModulatedDeformConv2d
    from mmcv.ops import DeformConv2d as again
    assert DeformConv2d is again
    assert not isinstance(nn.Conv2d(1, 1, 1), (DeformConv2d, ModulatedDeformConv2d))


@lite_only
def test_unknown_private_and_submodule_names_fail_normally():
    ops = importlib.import_module('mmcv.ops')
    with pytest.raises(ImportError):
        exec('from mmcv.ops import NoSuchOp', {})
    for name in ('__wrapped__', '_ext', '__file__'):
        assert not hasattr(ops, name)
    for name in ('nms', 'point_sample', 'deform_conv'):  # submodules of the real mmcv.ops
        with pytest.raises(ImportError):
            importlib.import_module(f'mmcv.ops.{name}')
    assert isinstance(ops.nms, type) and ops.point_sample is compat.point_sample  # not clobbered


@lite_only
def test_multi_scale_deform_attn_submodule_is_a_placeholder():
    from mmcv.cnn.bricks import transformer
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
    assert transformer.MultiScaleDeformableAttention is MultiScaleDeformableAttention
    with pytest.raises(compat.MmcvOpsUnavailableError, match='MultiScaleDeformableAttention'):
        MultiScaleDeformableAttention(embed_dims=8)
    with pytest.raises(AttributeError):
        importlib.import_module('mmcv.ops.multi_scale_deform_attn').__wrapped__


@lite_only
def test_mmseg_head_needing_compiled_op_fails_when_built():
    from mmseg.registry import MODELS
    cfg = dict(type='CCHead', in_channels=8, channels=8, num_classes=2, recurrence=1)
    with pytest.raises(compat.MmcvOpsUnavailableError, match='CrissCrossAttention'):
        MODELS.build(cfg)


# ---------------------------------------------------------------------------------- point_sample
@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('grid_shape', [(7,), (3, 5)])
def test_point_sample_matches_mmcv_references(align_corners, grid_shape):
    ref = mmcv_ops_file('point_sample')
    feats = torch.randn(2, 3, 6, 9, dtype=torch.float64, requires_grad=True)
    points = torch.rand(2, *grid_shape, 2, dtype=torch.float64) * 1.2 - 0.1  # some points outside [0, 1]
    out = compat.point_sample(feats, points, align_corners=align_corners)
    assert out.shape == (2, 3, *grid_shape)
    torch.testing.assert_close(out, ref.point_sample(feats, points, align_corners=align_corners))
    # bilinear_grid_sample is mmcv's hand-written (gather-based) bilinear sampler
    grid = (points if len(grid_shape) == 2 else points.unsqueeze(2)) * 2 - 1
    manual = ref.bilinear_grid_sample(feats, grid, align_corners=align_corners).reshape(out.shape)
    torch.testing.assert_close(out, manual)
    (g_out,) = torch.autograd.grad(out.sum(), feats)
    (g_ref,) = torch.autograd.grad(manual.sum(), feats)
    torch.testing.assert_close(g_out, g_ref)


def test_point_sample_corners_hit_pixels():
    feats = torch.arange(12.).reshape(1, 1, 3, 4)
    corners = torch.tensor([[[0., 0.], [1., 0.], [0., 1.], [1., 1.]]])
    out = compat.point_sample(feats, corners, align_corners=True)
    torch.testing.assert_close(out, torch.tensor([[[0., 3., 8., 11.]]]))


def test_mmseg_uncertain_points_use_point_sample():
    from mmseg.models.utils import get_uncertain_point_coords_with_randomness
    logits = torch.randn(3, 1, 6, 10)
    points = get_uncertain_point_coords_with_randomness(logits, None, 12, 3.0, 0.75)
    assert points.shape == (3, 12, 2) and bool(((points >= 0) & (points <= 1)).all())


# ---------------------------------------------------------------------------------- focal loss
def focal_reference(pred: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """mmseg's own pure-python formula, per element (N, C)."""
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    one_hot = F.one_hot(target, pred.size(1) + 1)[:, :pred.size(1)]
    return py_sigmoid_focal_loss(pred, one_hot, gamma=gamma, alpha=alpha, reduction='none')


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.75)])
def test_sigmoid_focal_loss_matches_formula_with_grads(gamma, alpha):
    pred = (torch.randn(11, 5, dtype=torch.float64) * 3).requires_grad_()
    target = torch.randint(0, 6, (11,))  # 5 == num_classes: background row
    ours = compat.sigmoid_focal_loss(pred, target, gamma, alpha, None, 'none')
    ref = focal_reference(pred, target, gamma, alpha)
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours.sum(), pred)
    (g_ref,) = torch.autograd.grad(ref.sum(), pred)
    torch.testing.assert_close(g_ours, g_ref)


def test_sigmoid_focal_loss_weight_and_reductions():
    pred, target = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1, 0])
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    per_element = focal_reference(pred, target, 2.0, 0.25)
    expected = per_element * weight[target][:, None]  # mmcv weights each row by its target's class
    torch.testing.assert_close(compat.sigmoid_focal_loss(pred, target, 2.0, 0.25, weight, 'none'), expected)
    torch.testing.assert_close(compat.sigmoid_focal_loss(pred, target, 2.0, 0.25, weight, 'sum'),
                               expected.sum())
    torch.testing.assert_close(compat.sigmoid_focal_loss(pred, target, 2.0, 0.25, weight, 'mean'),
                               expected.sum() / 6)  # mmcv: sum over classes, mean over samples


def test_sigmoid_focal_loss_clamps_log_like_mmcv():
    loss = compat.sigmoid_focal_loss(torch.tensor([[-200.0]]), torch.tensor([0]), 2.0, 0.25, None, 'none')
    expected = -0.25 * float(np.log(np.finfo(np.float32).tiny))
    torch.testing.assert_close(loss, torch.tensor([[expected]]))


@pytest.mark.parametrize('kwargs,match', [
    (dict(input=torch.zeros(3)), 'expects input'),
    (dict(target=torch.zeros(4)), 'int64'),
    (dict(reduction='avg'), "'avg'"),
    (dict(weight=torch.ones(3)), r'shape \(2,\)'),
    (dict(weight=torch.ones(2), target=torch.tensor([0, 1, 2, 1])), r'\[0, 2\)'),
])
def test_sigmoid_focal_loss_rejects_bad_arguments(kwargs, match):
    args = dict(input=torch.zeros(4, 2), target=torch.tensor([0, 1, 1, 0]), gamma=2.0, alpha=0.25,
                weight=None, reduction='mean')
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compat.sigmoid_focal_loss(**args)


@lite_only
def test_mmseg_focal_wrapper_runs_on_replacement():
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss, sigmoid_focal_loss
    pred, target = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    one_hot = F.one_hot(target, 3)
    torch.testing.assert_close(sigmoid_focal_loss(pred, target, one_hot, alpha=[0.2, 0.5, 0.8]),
                               py_sigmoid_focal_loss(pred, one_hot, alpha=[0.2, 0.5, 0.8]))


# ---------------------------------------------------------------------------------- mmseg end to end
@pytest.fixture
def mmseg_scope():
    """Resolve registry types in mmseg's scope, as a config with ``default_scope='mmseg'`` would."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_ade20k_pipeline_on_tiny_files(tmp_path, mmseg_scope):
    from mmseg.datasets import ADE20KDataset
    (tmp_path / 'img').mkdir()
    (tmp_path / 'ann').mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / 'img' / 'a.jpg'), rng.integers(0, 255, (30, 44, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / 'ann' / 'a.png'), rng.integers(0, 151, (30, 44), dtype=np.uint8))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                dict(type='RandomResize', scale=(64, 48), ratio_range=(0.5, 2.0), keep_ratio=True),
                dict(type='RandomCrop', crop_size=(24, 32), cat_max_ratio=0.75),
                dict(type='RandomFlip', prob=0.5), dict(type='PhotoMetricDistortion'),
                dict(type='PackSegInputs')]
    dataset = ADE20KDataset(data_root=str(tmp_path), data_prefix=dict(img_path='img', seg_map_path='ann'),
                            pipeline=pipeline)
    sample = dataset[0]
    assert len(dataset) == 1 and sample['inputs'].shape == (3, 24, 32)
    seg = sample['data_samples'].gt_sem_seg.data
    assert seg.shape == (1, 24, 32) and int(seg.max()) <= 255


def test_iou_metric_hand_computed():
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('a', 'b'))
    pred = torch.tensor([[[0, 1], [1, 1]]])
    gt = torch.tensor([[[0, 1], [0, 1]]])
    metric.process({}, [dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt))])
    result = metric.evaluate(1)
    # IoU(a) = 1/2, IoU(b) = 2/3; mmseg reports percentages rounded to 2 decimals
    assert result['mIoU'] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2, abs=0.01)
    assert result['aAcc'] == pytest.approx(75.0)


def tiny_segmentor_cfg() -> dict:
    """A small mmseg EncoderDecoder: ResNetV1c stem + 2 stages, FCN head, 3 classes."""
    norm = dict(type='BN', requires_grad=True)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[255.0] * 3, size=(24, 40)),
        backbone=dict(type='ResNetV1c', depth=18, num_stages=2, out_indices=(1,), strides=(1, 2),
                      dilations=(1, 1), norm_cfg=norm, base_channels=8, stem_channels=8),
        decode_head=dict(type='FCNHead', in_channels=16, in_index=0, channels=8, num_convs=1,
                         num_classes=3, norm_cfg=norm, loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


class ToySegDataset(torch.utils.data.Dataset):
    """Four random (3, 24, 40) images with 3-class masks, in mmseg's packed format."""
    metainfo = dict(classes=('a', 'b', 'c'), palette=[[0, 0, 0], [128, 0, 0], [0, 128, 0]])

    def __len__(self) -> int:
        return 4

    def __getitem__(self, idx: int) -> dict:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        gen = torch.Generator().manual_seed(idx)
        sample = SegDataSample(metainfo=dict(img_shape=(24, 40), ori_shape=(24, 40), img_path=f'{idx}.png'))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 24, 40), generator=gen))
        return dict(inputs=torch.rand(3, 24, 40, generator=gen) * 255, data_samples=sample)


def test_encoder_decoder_builds_and_runs(mmseg_scope):
    from mmengine.config import ConfigDict
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import MODELS
    model = MODELS.build(ConfigDict(tiny_segmentor_cfg()))
    data = ToySegDataset()
    batch = model.data_preprocessor(pseudo_collate([data[0], data[1]]), training=True)
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['decode.loss_ce'])
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(pseudo_collate([data[2]])), mode='predict')
    assert preds[0].pred_sem_seg.data.shape == (1, 24, 40)


# ---------------------------------------------------------------------------------- checkpoints
def make_runner(work_dir: Path, max_iters: int, name: str, resume: bool = False):
    from mmengine.config import ConfigDict
    from mmengine.runner import Runner
    loader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=ToySegDataset())
    return Runner(
        model=ConfigDict(tiny_segmentor_cfg()), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=loader, val_dataloader=loader, val_cfg=dict(type='ValLoop'),
        val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        param_scheduler=[dict(type='PolyLR', power=1.0, begin=0, end=max_iters, by_epoch=False)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False,
                                           save_best='mIoU'),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmseg', randomness=dict(seed=0), log_level='WARNING', resume=resume)


def test_runner_checkpoint_loads_and_resumes(tmp_path):
    from mmengine.logging import HistoryBuffer
    make_runner(tmp_path, 2, 'densedino_compat_train').train()
    ckpt = torch.load(tmp_path / 'iter_2.pth')  # torch's default: weights_only=True
    hub = ckpt['message_hub']
    assert isinstance(hub['log_scalars']['train/loss'], HistoryBuffer)
    assert hub['runtime_info']['dataset_meta']['classes'] == ('a', 'b', 'c')
    assert isinstance(hub['runtime_info']['best_score'], np.floating)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / 'iter_2.pth')) == []

    runner = make_runner(tmp_path, 3, 'densedino_compat_resume', resume=True)
    runner.train()
    assert runner.iter == 3
    assert 'train/loss' in runner.message_hub.log_scalars


class NotAllowListed:
    """A class no allow-list names."""


class GetattrGadget:
    """Pickles as ``getattr(numpy.ndarray, 'dumps')``: builtins.getattr beyond HistoryBuffer statistics."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'dumps')


@pytest.mark.parametrize('payload,match', [(NotAllowListed(), 'NotAllowListed'),
                                           (GetattrGadget(), 'getattr only for HistoryBuffer')])
def test_non_allow_listed_globals_still_refuse(tmp_path, payload, match):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'payload': payload}, path)
    with pytest.raises(pickle.UnpicklingError, match=match):
        torch.load(path)


# ---------------------------------------------------------------------------------- doctor
def test_doctor_passes():
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'doctor.py')], capture_output=True,
                          text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL)
    lines: List[str] = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for prefix in ('python', 'torch', 'mmengine', 'mmseg', 'mmcv', 'numpy', 'opencv', 'device'):
        assert any(line.startswith(prefix) for line in lines), prefix
    for check in ('import mmseg', 'checkpoint allow-list', 'backbone'):
        assert any(line.startswith('OK') and check in line for line in lines), check
    assert not any(line.startswith('FAIL') for line in lines)
