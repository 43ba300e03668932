"""Heads take their input widths from the backbone (``in_channels='auto'``), explicit widths are
checked against it, and a depth config states its range once (the head's; the metric follows)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import densedino  # noqa: F401
from densedino.evaluation import DenseDepthMetric, depth_metrics
from densedino.models.heads import LinearSegHead, resolve_input_widths
from densedino.registry import METRICS, MODELS

from .test_seg_pipeline import predict_small, small_model

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = {'model.backbone.arch_overrides': dict(depth=2, embed_dim=32, num_heads=2)}


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert '\n' not in text, text
    return text


# ---------------------------------------------------------------------- 'auto' widths
def test_changing_the_arch_by_cfg_options_builds_and_runs():
    """ViT-S config, ViT-B backbone: the linear head reads 768 channels and predicts."""
    model = small_model('configs/seg/ade20k_linear.py', {
        'model.backbone.arch': 'dinov2_vitb14',
        'model.backbone.arch_overrides': dict(_delete_=True, depth=2)})
    assert model.decode_head.bn.num_features == 768
    size, [sample] = predict_small(model)
    assert sample.seg_logits.data.shape == (150, *size)


def test_dpt_depth_head_takes_dinov2s_widths_of_the_new_arch():
    """The 'dinov2' variant's decoder widths follow the width, as DINOv2's released heads do."""
    model = small_model('configs/depth/nyu_dpt.py', {
        'model.backbone.arch': 'dinov2_vitb14',
        'model.backbone.arch_overrides.embed_dim': 64})
    head = model.decode_head
    assert (head.embed_dims, head.post_process_channels) == (64, [8, 16, 32, 64])
    size, [sample] = predict_small(model)
    assert sample.pred_depth_map.data.shape == (1, *size)


def test_convnext_stages_of_different_widths():
    """Four ConvNeXt stages: one width per stage read; DPT needs one width and says so."""
    convnext = {'model.backbone.arch': 'dinov3_convnext_tiny', 'model.backbone.out_indices':
                [0, 1, 2, 3], 'model.backbone.arch_overrides': dict(
                    _delete_=True, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))}
    model = small_model('configs/seg/ade20k_linear.py', convnext)
    assert model.decode_head.bn.num_features == 8 + 16 + 32 + 64
    size, [sample] = predict_small(model)
    assert sample.seg_logits.data.shape == (150, *size)
    with pytest.raises(ValueError) as err:
        small_model('configs/depth/nyu_dpt.py', convnext)
    assert one_line(err) == ('model.decode_head.embed_dims: the outputs read (backbone '
                             'dinov3_convnext_tiny (out_indices [0, 1, 2, 3]), in_index '
                             '[0, 1, 2, 3]) differ in width [8, 16, 32, 64]; DPT needs one width')


def test_a_wrong_explicit_width_is_a_one_line_error():
    with pytest.raises(ValueError) as err:
        small_model('configs/seg/ade20k_linear.py',
                    {**TINY, 'model.decode_head.in_channels': [384]})
    assert one_line(err) == (
        'model.decode_head.in_channels=[384] does not fit the backbone: backbone dinov2_vits14 '
        "(out_indices [1]) gives [32]; set model.decode_head.in_channels='auto' (or [32])")
    with pytest.raises(ValueError) as err:
        small_model('configs/depth/nyu_linear4.py', {**TINY, 'model.decode_head.in_channels': [32],
                                                     'model.backbone.out_indices': [0, 1]})
    assert 'model.decode_head.in_channels=[32] does not fit' in one_line(err)
    assert 'gives [32, 32]' in one_line(err)
    with pytest.raises(ValueError) as err:
        small_model('configs/depth/kitti_dpt.py', {'model.decode_head.embed_dims': 384})
    assert one_line(err).startswith('model.decode_head.embed_dims=384 does not fit the '
                                    'backbone: backbone dinov2_vits14 (out_indices [0, 1, 2, 3]) '
                                    'gives 32')


def test_explicit_widths_that_fit_and_mmseg_heads():
    model = small_model('configs/seg/ade20k_linear.py', {**TINY, 'model.decode_head.in_channels': 32})
    assert model.decode_head.bn.num_features == 32
    model = small_model('configs/seg/ade20k_dpt.py')  # mmseg's DPTHead: in_channels, embed_dims
    assert model.decode_head.in_channels == [32] * 4
    with pytest.raises(ValueError, match=r'in_index=\[0, 1, 2, 5\] reads outputs \[5\]'):
        small_model('configs/seg/ade20k_dpt.py', {'model.decode_head.in_index': (0, 1, 2, 5)})


def test_auto_needs_a_model_or_a_backbone_that_reports_widths():
    with pytest.raises(ValueError, match=r"LinearSegHead: in_channels='auto' is resolved from "
                                         'the backbone when a segmentor or depth model builds'):
        LinearSegHead('auto', num_classes=3)
    with pytest.raises(ValueError) as err:
        resolve_input_widths(dict(type='LinearSegHead', in_channels='auto', num_classes=3),
                             torch.nn.Identity(), 'model.decode_head')
    assert one_line(err).startswith("model.decode_head.in_channels='auto' needs a backbone that "
                                    'reports its output widths (out_channels); Identity does not')
    # explicit widths of a backbone that reports none are left to the head
    cfg = resolve_input_widths(dict(type='FCNHead', in_channels=16, channels=8, num_classes=3),
                               torch.nn.Identity(), 'model.decode_head')
    assert cfg['in_channels'] == 16


# ---------------------------------------------------------------------- the depth range
def depth_model_and_metric(config: str, options: dict):
    """A tiny model of ``config`` after ``options`` (like --cfg-options) and its test metric."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.backbone.update(checkpoint=None, pretrained=False)
    cfg.merge_from_dict({**TINY, **options})
    with DefaultScope.overwrite_default_scope('densedino'):
        model = MODELS.build(cfg.model).eval()
        metric = METRICS.build(dict(cfg.test_evaluator, crop=None))
    return model, metric


def score(model, metric, gt: torch.Tensor):
    """Predict one image, score it against ``gt`` (1, H, W) metres: (scores, prediction)."""
    from mmengine.structures import PixelData
    _, [sample] = predict_small(model)
    sample.gt_depth_map = PixelData(data=gt)
    metric.process({}, [sample.to_dict()])
    return metric.results[-1], sample.pred_depth_map.data


@pytest.mark.parametrize('config', ['configs/depth/nyu_linear.py', 'configs/depth/kitti_dpt.py',
                                    'configs/depth/synthetic_linear.py'])
def test_the_range_is_stated_once_in_the_head(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    for key in ('val_evaluator', 'test_evaluator'):
        assert 'max_depth' not in cfg[key] and 'min_depth' not in cfg[key], key
    assert cfg.model.decode_head.max_depth == (80.0 if 'kitti' in config else 10.0)


def test_overriding_the_heads_max_depth_moves_the_evaluation():
    """--cfg-options model.decode_head.max_depth=20: ground truth at 15 m is scored."""
    model, metric = depth_model_and_metric('configs/depth/nyu_linear.py',
                                           {'model.decode_head.max_depth': 20.0})
    gt = torch.full((1, 28, 42), 15.0)
    assert score(model, metric, gt)[0]['n_valid'] == 28 * 42
    model, metric = depth_model_and_metric('configs/depth/nyu_linear.py', {})
    assert score(model, metric, gt)[0]['n_valid'] == 0  # the 10 m default: beyond the range


def test_an_evaluator_range_inside_the_models_is_used_one_outside_refused():
    model, metric = depth_model_and_metric(
        'configs/depth/nyu_linear.py', {'model.decode_head.max_depth': 20.0,
                                        'test_evaluator.min_depth': 1e-3,
                                        'test_evaluator.max_depth': 10.0})
    gt = torch.linspace(1.0, 15.0, 28 * 42).reshape(1, 28, 42)
    result, pred = score(model, metric, gt)
    expected = depth_metrics(pred, gt, min_depth=1e-3, max_depth=10.0)
    assert result['n_valid'] == expected['n_valid'] == int((gt < 10).sum())
    np.testing.assert_allclose(result['rmse'], expected['rmse'], rtol=1e-5)

    model, metric = depth_model_and_metric('configs/depth/kitti_linear.py',
                                           {'model.decode_head.max_depth': 10.0,
                                            'test_evaluator.min_depth': 1e-3,
                                            'test_evaluator.max_depth': 80.0})
    with pytest.raises(ValueError) as err:
        score(model, metric, gt)
    assert one_line(err) == ('DenseDepthMetric evaluates 0.001-80 m but the model predicts '
                             '0.001-10 m (model.decode_head.min_depth / max_depth): drop the '
                             "evaluator's min_depth / max_depth to evaluate in the model's range")


def test_a_metric_without_range_needs_a_model_that_gives_one():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    metric = DenseDepthMetric()
    sample = SegDataSample(metainfo=dict(img_path='a.png'))
    sample.pred_depth_map = PixelData(data=torch.ones(1, 2, 2))
    sample.gt_depth_map = PixelData(data=torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match=r'a\.png carries no depth range .* give the evaluator '
                                         'min_depth and max_depth'):
        metric.process({}, [sample.to_dict()])
    with pytest.raises(ValueError, match='give both min_depth and max_depth, or neither'):
        DenseDepthMetric(max_depth=10.0)
