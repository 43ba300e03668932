"""Head files: DINOv3's own linear-head layouts load, and files that carry more than a head are
refused (one line naming the keys) instead of losing their other weights in silence.

DINOv3's evaluation code (``dinov3/eval/{segmentation,depth}``) saves the linear heads as
``{'model': head state dict, 'optimizer': ...}``: segmentation as the second module of its
``FeatureDecoder`` (``segmentation_model.1.batchnorm_layer.*``, ``segmentation_model.1.conv.*``),
depth as the bare decoder (``batchnorm_layer.*``, ``conv_depth.*``). The references compute
DINOv3's head in eval mode from those tensors: BatchNorm with the running statistics, the 1x1
conv, and for depth 256 linear bins over [min, max] weighted by relu(logit) + 0.1, normalised.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

import densedino  # noqa: F401
from densedino import CheckpointError
from densedino.models.backbones.dense import BlockFeatures
from densedino.models.heads import load_head_checkpoint
from densedino.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG_CONFIG = 'configs/seg/ade20k_linear_dinov3_vits16.py'
DEPTH_CONFIG = 'configs/depth/nyu_linear_dinov3_vits16.py'


def _model(config: str) -> torch.nn.Module:
    init_default_scope('densedino')
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.backbone.update(checkpoint=None, pretrained=False, arch_overrides=dict(depth=2))
    return MODELS.build(cfg.model).eval()


def _bn(prefix: str, channels: int) -> dict:
    return {f'{prefix}weight': torch.rand(channels) + 0.5,
            f'{prefix}bias': torch.randn(channels),
            f'{prefix}running_mean': torch.randn(channels),
            f'{prefix}running_var': torch.rand(channels) + 0.5,
            f'{prefix}num_batches_tracked': torch.tensor(40000)}


def dinov3_seg_file(channels: int = 384, classes: int = 150) -> dict:
    """``model_final.pth`` of DINOv3's linear segmentation training."""
    p = 'segmentation_model.1.'
    model = {**_bn(p + 'batchnorm_layer.', channels),
             p + 'conv.weight': torch.randn(classes, channels, 1, 1) * 0.05,
             p + 'conv.bias': torch.randn(classes)}
    return {'model': model, 'optimizer': {'state': {}, 'param_groups': []}}


def dinov3_depth_file(channels: int = 384, bins: int = 256) -> dict:
    """``model_<iteration>.pth`` of DINOv3's linear depth training (use_batchnorm=True)."""
    model = {**_bn('batchnorm_layer.', channels),
             'conv_depth.weight': torch.randn(bins, channels, 1, 1) * 0.05,
             'conv_depth.bias': torch.randn(bins) * 0.1}
    return {'model': model, 'optimizer': {'state': {}, 'param_groups': []}, 'iteration': 38400}


def _bn_conv(x: torch.Tensor, sd: dict, bn: str, conv: str) -> torch.Tensor:
    """DINOv3's LinearHead in eval mode: BatchNorm (running statistics) then the 1x1 conv."""
    x = F.batch_norm(x, sd[bn + 'running_mean'], sd[bn + 'running_var'], sd[bn + 'weight'],
                     sd[bn + 'bias'], training=False, eps=1e-5)
    return F.conv2d(x, sd[conv + 'weight'], sd[conv + 'bias'])


def _feats(channels: int = 384) -> tuple:
    return (BlockFeatures(torch.randn(2, channels, 3, 5), torch.randn(2, channels)),)


def test_dinov3_segmentation_head_file_loads_and_computes_dinov3s_head(tmp_path):
    model = _model(SEG_CONFIG)
    ckpt = dinov3_seg_file()
    path = str(tmp_path / 'model_final.pth')
    torch.save(ckpt, path)
    load_head_checkpoint(model, path)
    sd, feats = ckpt['model'], _feats()
    p = 'segmentation_model.1.'
    expected = _bn_conv(feats[0].map, sd, p + 'batchnorm_layer.', p + 'conv.')
    with torch.no_grad():
        torch.testing.assert_close(model.decode_head(feats), expected)


def test_dinov3_depth_head_file_loads_and_computes_dinov3s_head(tmp_path):
    model = _model(DEPTH_CONFIG)
    ckpt = dinov3_depth_file()
    path = str(tmp_path / 'model_00038400.pth')
    torch.save(ckpt, path)
    load_head_checkpoint(model, path)
    sd, feats = ckpt['model'], _feats()
    logits = _bn_conv(feats[0].map, sd, 'batchnorm_layer.', 'conv_depth.')
    weights = torch.relu(logits) + 0.1
    weights = weights / weights.sum(dim=1, keepdim=True)
    bins = torch.linspace(0.001, 10.0, 256)
    expected = (weights * bins[None, :, None, None]).sum(dim=1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(model.decode_head(feats), expected)


def test_dinov3_head_of_another_width_names_the_file_and_shape(tmp_path):
    model = _model(SEG_CONFIG)
    path = str(tmp_path / 'vitb_model_final.pth')
    torch.save(dinov3_seg_file(channels=768), path)
    with pytest.raises(CheckpointError, match=r'vitb_model_final\.pth does not fit .*'
                                              r'LinearSegHead.*\(150, 768, 1, 1\)'):
        load_head_checkpoint(model, path)


def _seg_model_file(with_backbone: bool, with_auxiliary: bool) -> dict:
    """An mmseg training checkpoint of a DINOv2 ViT (depth 2) + linear head (+ auxiliary head)."""
    from densedino import create_backbone
    sd = {'decode_head.conv_seg.weight': torch.randn(150, 384, 1, 1),
          'decode_head.conv_seg.bias': torch.randn(150),
          **_bn('decode_head.bn.', 384)}
    if with_backbone:
        bb = create_backbone('dinov2_vits14', depth=2)
        sd.update({'backbone.' + k: v.clone() + 0.5 for k, v in bb.state_dict().items()})
    if with_auxiliary:
        sd.update({'auxiliary_head.conv_seg.weight': torch.randn(150, 384, 1, 1),
                   'auxiliary_head.conv_seg.bias': torch.randn(150)})
    return {'meta': {}, 'state_dict': sd}


@pytest.mark.parametrize('with_backbone,with_auxiliary', [(True, False), (False, True),
                                                          (True, True)])
def test_weights_besides_the_head_are_refused_not_dropped(tmp_path, with_backbone,
                                                          with_auxiliary):
    init_default_scope('densedino')
    cfg = Config.fromfile(osp.join(REPO, 'configs/seg/ade20k_linear.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False, arch_overrides=dict(depth=2))
    model = MODELS.build(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = str(tmp_path / 'iter_40000.pth')
    torch.save(_seg_model_file(with_backbone, with_auxiliary), path)
    with pytest.raises(CheckpointError) as e:
        load_head_checkpoint(model, path)
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith(f'head checkpoint {path} ')
    assert ('backbone.' in msg) == with_backbone
    assert ('auxiliary_head.conv_seg' in msg) == with_auxiliary
    for k, v in model.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k]), k


def test_convert_checkpoint_takes_the_backbone_of_a_file_given_as_both(tmp_path):
    """--backbone FILE --head FILE: the backbone.* weights go to the backbone, the head's to
    the head; the same file as --head alone is refused."""
    import tools.convert_checkpoint as convert
    ckpt = _seg_model_file(with_backbone=True, with_auxiliary=False)
    path = str(tmp_path / 'iter_40000.pth')
    torch.save(ckpt, path)
    out = str(tmp_path / 'full.pth')
    config = osp.join(REPO, 'configs/seg/ade20k_linear.py')
    # the config fetches the released backbone unless told otherwise
    depth2 = ['--cfg-options', 'model.backbone.arch_overrides.depth=2',
              'model.backbone.pretrained=False']
    convert.main(convert.parse_args([config, '--backbone', path, '--head', path, '--out', out]
                                    + depth2))
    sd, src = torch.load(out, map_location='cpu')['state_dict'], ckpt['state_dict']
    assert torch.equal(sd['backbone.model.blocks.1.mlp.fc2.weight'],
                       src['backbone.blocks.1.mlp.fc2.weight'])
    assert torch.equal(sd['decode_head.conv_seg.weight'], src['decode_head.conv_seg.weight'])

    args = convert.parse_args([config, '--head', path, '--out', out] + depth2
                              + ['model.backbone.checkpoint=None'])
    with pytest.raises(CheckpointError, match=r'backbone\.\* \(\d+ keys, e\.g\. '
                                              r'backbone\.cls_token\)'):
        convert.main(args)
