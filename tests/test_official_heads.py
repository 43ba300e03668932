"""Released DINOv2 segmentation heads (exact key names and shapes) load into the matching configs."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import densedino  # noqa: F401
from densedino import CheckpointError
from densedino.models.heads.checkpoint import load_head_checkpoint
from densedino.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def official_seg_head(channels: int, classes: int) -> dict:
    """The layout of dinov2_*_{ade20k,voc2012}_{linear,ms}_head.pth: BN + 1x1 conv, mmseg keys."""
    return {'meta': {'mmseg_version': '0.27.0'}, 'state_dict': {
        'decode_head.conv_seg.weight': torch.randn(classes, channels, 1, 1),
        'decode_head.conv_seg.bias': torch.randn(classes),
        'decode_head.bn.weight': torch.rand(channels) + 0.5,
        'decode_head.bn.bias': torch.randn(channels),
        'decode_head.bn.running_mean': torch.randn(channels),
        'decode_head.bn.running_var': torch.rand(channels) + 0.5,
        'decode_head.bn.num_batches_tracked': torch.tensor(40000),
    }}


def _model(config):
    init_default_scope('densedino')
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.backbone.update(checkpoint=None, pretrained=False)
    return MODELS.build(cfg.model), cfg


@pytest.mark.parametrize('config,channels,classes', [
    ('configs/seg/ade20k_linear.py', 384, 150),
    ('configs/seg/ade20k_linear_ms.py', 4 * 384, 150),
    ('configs/seg/ade20k_linear_dinov2_vitb14.py', 768, 150),
    ('configs/seg/voc12_linear.py', 384, 21),
    ('configs/seg/voc12_linear_ms.py', 4 * 384, 21),     # dinov2_vits14_voc2012_ms_head.pth
])
def test_official_head_loads_strictly(tmp_path, config, channels, classes):
    model, _ = _model(config)
    head = official_seg_head(channels, classes)
    torch.save(head, tmp_path / 'head.pth')
    load_head_checkpoint(model, str(tmp_path / 'head.pth'))
    assert torch.equal(model.decode_head.conv_seg.weight,
                       head['state_dict']['decode_head.conv_seg.weight'])
    assert torch.equal(model.decode_head.bn.running_var,
                       head['state_dict']['decode_head.bn.running_var'])


def test_head_of_another_size_is_refused(tmp_path):
    model, _ = _model('configs/seg/ade20k_linear.py')
    torch.save(official_seg_head(768, 150), tmp_path / 'vitb_head.pth')
    with pytest.raises(CheckpointError, match=r'vitb_head\.pth does not fit .*LinearSegHead.*'
                                              r'conv_seg\.weight \(150, 768, 1, 1\)'):
        load_head_checkpoint(model, str(tmp_path / 'vitb_head.pth'))


def test_convert_checkpoint_writes_a_full_model_with_dataset_meta(tmp_path):
    from densedino import create_backbone
    bb = create_backbone('dinov2_vits14', depth=12)
    torch.save(bb.state_dict(), tmp_path / 'bb.pth')
    torch.save(official_seg_head(384, 150), tmp_path / 'head.pth')
    out = tmp_path / 'full.pth'
    proc = subprocess.run([sys.executable, 'tools/convert_checkpoint.py',
                           'configs/seg/ade20k_linear.py', '--backbone', str(tmp_path / 'bb.pth'),
                           '--head', str(tmp_path / 'head.pth'), '--out', str(out),
                           '--cfg-options', 'model.backbone.pretrained=False'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(out, map_location='cpu')
    assert list(ckpt['meta']['dataset_meta']['classes'][:2]) == ['wall', 'building']
    sd = ckpt['state_dict']
    assert torch.equal(sd['backbone.model.blocks.0.attn.qkv.weight'],
                       bb.blocks[0].attn.qkv.weight)
    model, _ = _model('configs/seg/ade20k_linear.py')
    model.load_state_dict(sd, strict=True)


def test_voc_ms_head_converts_with_the_voc_classes(tmp_path):
    """dinov2_vits14_voc2012_ms_head.pth (4 blocks, 21 classes) through tools/convert_checkpoint.py
    into configs/seg/voc12_linear_ms.py; --cfg-options edits the config first."""
    import tools.convert_checkpoint as convert
    head = official_seg_head(4 * 384, 21)
    path, out = str(tmp_path / 'dinov2_vits14_voc2012_ms_head.pth'), str(tmp_path / 'voc.pth')
    torch.save(head, path)
    convert.main(convert.parse_args([
        osp.join(REPO, 'configs/seg/voc12_linear_ms.py'), '--head', path, '--out', out,
        '--cfg-options', 'model.backbone.checkpoint=None', 'model.backbone.pretrained=False',
        'model.backbone.arch_overrides.depth=4']))
    ckpt = torch.load(out, map_location='cpu')
    classes = ckpt['meta']['dataset_meta']['classes']
    assert len(classes) == 21 and tuple(classes[:2]) == ('background', 'aeroplane')
    assert torch.equal(ckpt['state_dict']['decode_head.conv_seg.weight'],
                       head['state_dict']['decode_head.conv_seg.weight'])
    assert 'backbone.model.blocks.3.norm1.weight' in ckpt['state_dict']
