"""LinearDepthHead (DINOv2 / DINOv3 linear depth) and DinoDepthEstimator inference."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import densedino  # noqa: F401
from densedino import CheckpointError
from densedino.models.backbones.dense import BlockFeatures
from densedino.models.heads import LinearDepthHead, load_head_checkpoint
from densedino.models.heads.depth_bins import bins_to_depth, depth_bins
from densedino.registry import MODELS

H, W = 28, 42  # a 2 x 3 token grid for patch size 14
TINY = dict(depth=2, embed_dim=32, num_heads=2)


def blocks(n=1, b=2, c=8, h=3, w=5, seed=0):
    """``n`` random ``BlockFeatures`` on an h x w grid."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(BlockFeatures(torch.randn(b, c, h, w, generator=gen),
                               torch.randn(b, c, generator=gen)) for _ in range(n))


def estimator(*, out_indices='last', in_channels=32, arch_overrides=TINY, test_cfg=None,
              **head):
    """A DinoDepthEstimator from a config dict, as a config file would give it."""
    init_default_scope('densedino')
    cfg = dict(
        type='DinoDepthEstimator',
        backbone=dict(type='DinoBackbone', arch='dinov2_vits14', arch_overrides=arch_overrides,
                      out_indices=out_indices, norm=False, frozen=True),
        decode_head=dict(type='LinearDepthHead', in_channels=in_channels, min_depth=1e-3,
                         max_depth=10.0, **head),
        test_cfg=test_cfg)
    return MODELS.build(cfg).eval()


def sample(**meta):
    meta.setdefault('img_shape', (H, W))
    meta.setdefault('ori_shape', (H, W))
    return SegDataSample(metainfo=meta)


# ----------------------------------------------------------------------------- bins and norms
def test_bins_ud_and_sid():
    assert torch.equal(depth_bins(1e-3, 10, 256, 'UD'), torch.linspace(1e-3, 10, 256))
    sid = depth_bins(1e-3, 10, 256, 'SID')
    assert sid[0].item() == pytest.approx(1e-3, rel=1e-6)
    assert sid[-1].item() == pytest.approx(10.0, rel=1e-6)  # not 10**10 (the toolbox's logspace)
    ratios = sid[1:].double() / sid[:-1].double()
    torch.testing.assert_close(ratios, torch.full_like(ratios, 10 ** (4 / 255)), rtol=1e-6,
                               atol=0)
    head = LinearDepthHead(8, bins_strategy='SID', max_depth=10.0)
    assert torch.equal(head.bins, sid)
    with pytest.raises(ValueError, match="bins_strategy='SID' needs min_depth > 0, got 0.0"):
        LinearDepthHead(8, bins_strategy='SID', min_depth=0.0)
    with pytest.raises(ValueError, match="bins_strategy must be one of .* got 'log'"):
        LinearDepthHead(8, bins_strategy='log')


def test_linear_norm_hand_case_and_other_norms():
    # bins [1, 2, 3]; logits [-1, 0, 0.9] -> relu + 0.1 = [0.1, 0.1, 1.0], sum 1.2
    # depth = (0.1 * 1 + 0.1 * 2 + 1.0 * 3) / 1.2 = 3.3 / 1.2 = 2.75
    head = LinearDepthHead(3, use_cls_token=False, upsample=1, n_bins=3, min_depth=1.0,
                           max_depth=3.0)
    with torch.no_grad():
        head.conv_depth.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        head.conv_depth.bias.zero_()
    logits = torch.tensor([-1.0, 0.0, 0.9]).view(1, 3, 1, 1)
    assert head(logits.unsqueeze(0)).item() == pytest.approx(2.75, rel=1e-6)
    bins = torch.tensor([1.0, 2.0, 3.0])
    soft = (torch.softmax(logits, 1)[0, :, 0, 0] * bins).sum()
    assert bins_to_depth(logits, bins, 'softmax').item() == pytest.approx(soft.item(), rel=1e-6)
    sig = torch.sigmoid(logits)[0, :, 0, 0]
    sig_depth = (sig * bins).sum() / sig.sum()
    assert bins_to_depth(logits, bins, 'sigmoid').item() == pytest.approx(sig_depth.item(),
                                                                          rel=1e-6)
    with pytest.raises(ValueError, match="norm_strategy must be one of .* got 'relu'"):
        LinearDepthHead(8, norm_strategy='relu')


# ----------------------------------------------------------------------------- head
def dinov2_reference(head: LinearDepthHead, feats, upsample=4):
    """DINOv2's BNHead order: cat cls, resize each map to the x4 grid, concat, conv, bins."""
    maps = [torch.cat([f.map, f.cls_token[:, :, None, None].expand_as(f.map)], 1) for f in feats]
    size = [s * upsample for s in maps[0].shape[2:]]
    x = torch.cat([F.interpolate(m, size=size, mode='bilinear', align_corners=False)
                   for m in maps], dim=1)
    logit = F.conv2d(x, head.conv_depth.weight, head.conv_depth.bias)
    p = torch.relu(logit) + 0.1
    p = p / p.sum(dim=1, keepdim=True)
    bins = torch.linspace(head.min_depth, head.max_depth, logit.shape[1])
    return torch.einsum('ikmn,k->imn', p, bins).unsqueeze(1)


@pytest.mark.parametrize('n_blocks', [1, 4])
def test_dinov2_linear_head_matches_the_original_order(n_blocks):
    feats = blocks(n_blocks, b=2, c=8, h=3, w=5)
    head = LinearDepthHead([8] * n_blocks, max_depth=10.0)
    assert head.conv_depth.in_channels == 8 * n_blocks * 2
    assert sorted(head.state_dict()) == ['conv_depth.bias', 'conv_depth.weight']
    with torch.no_grad():
        head.conv_depth.weight.normal_(0, 0.3)
        head.conv_depth.bias.normal_(0, 0.3)
    out = head(feats)
    assert out.shape == (2, 1, 12, 20)
    torch.testing.assert_close(out, dinov2_reference(head, feats), rtol=1e-5, atol=1e-5)


def test_regression_mode_and_in_index():
    feats = blocks(3, c=4)
    head = LinearDepthHead(4, in_index=[2], classify=False, upsample=2, min_depth=0.5,
                           use_cls_token=False)
    assert head.bins is None and sorted(head.state_dict()) == ['conv_depth.bias',
                                                               'conv_depth.weight']
    with torch.no_grad():
        head.conv_depth.weight.normal_()
    raw = F.interpolate(head.conv_depth(feats[2].map), size=(6, 10), mode='bilinear')
    torch.testing.assert_close(head(feats), torch.relu(raw) + 0.5)
    assert head(feats).min() >= 0.5
    with pytest.raises(ValueError, match=r'in_index \[0, 1\] and in_channels \[4\] differ'):
        LinearDepthHead(4, in_index=[0, 1])


def test_dinov3_configuration_norm_dropout_and_keys():
    head = LinearDepthHead(8, use_cls_token=False, upsample=1, use_norm=True, dropout_ratio=0.1,
                           dropout_before_norm=True)
    assert sorted(head.state_dict()) == ['bn.bias', 'bn.num_batches_tracked', 'bn.running_mean',
                                         'bn.running_var', 'bn.weight', 'conv_depth.bias',
                                         'conv_depth.weight']
    order = []
    head.dropout.register_forward_pre_hook(lambda *_: order.append('dropout'))
    head.bn.register_forward_pre_hook(lambda *_: order.append('bn'))
    head.conv_depth.register_forward_pre_hook(lambda *_: order.append('conv'))
    head.train()(blocks(1, c=8))
    assert order == ['dropout', 'bn', 'conv']
    head.eval()
    feats = blocks(1, c=8)
    assert head(feats).shape == (2, 1, 3, 5)
    logits = head.conv_depth(head.bn(feats[0].map))  # eval: dropout is the identity
    torch.testing.assert_close(head(feats), bins_to_depth(logits, head.bins))


# ----------------------------------------------------------------------------- official files
def official_depth_head(channels: int) -> dict:
    """The layout of dinov2_vits14_nyu_linear{,4}_head.pth: a 1x1 conv to 256 bins."""
    return {'meta': {}, 'state_dict': {
        'decode_head.conv_depth.weight': torch.randn(256, channels, 1, 1) * 0.01,
        'decode_head.conv_depth.bias': torch.randn(256) * 0.01,
    }}


@pytest.mark.parametrize('out_indices,in_channels,channels', [
    ('last', 384, 768),                   # dinov2_vits14_nyu_linear_head.pth
    ([0, 1, 2, 3], [384] * 4, 3072),      # dinov2_vits14_nyu_linear4_head.pth
])
def test_official_head_file_loads_and_the_estimator_runs(tmp_path, out_indices, in_channels,
                                                         channels):
    model = estimator(out_indices=out_indices, in_channels=in_channels,
                      arch_overrides=dict(depth=4), loss_decode=dict(type='SigLoss'))
    ckpt = official_depth_head(channels)
    torch.save(ckpt, tmp_path / 'head.pth')
    loaded = load_head_checkpoint(model, str(tmp_path / 'head.pth'))
    assert sorted(loaded) == ['conv_depth.bias', 'conv_depth.weight']
    assert torch.equal(model.decode_head.conv_depth.weight,
                       ckpt['state_dict']['decode_head.conv_depth.weight'])

    x = torch.randn(1, 3, H, W)
    [out] = model.predict(x, [sample(ori_shape=(40, 61))])
    depth = out.pred_depth_map.data
    assert depth.shape == (1, 40, 61)
    assert depth.min() >= 1e-3 and depth.max() <= 10.0

    model.train()
    gt = SegDataSample(metainfo=dict(img_shape=(H, W)))
    gt.gt_depth_map = PixelData(data=torch.rand(1, H, W) * 12)  # some pixels above max_depth
    losses = model.loss(x, [gt])
    assert list(losses) == ['decode.loss_depth'] and torch.isfinite(losses['decode.loss_depth'])


def test_head_file_of_another_shape_is_refused(tmp_path):
    model = estimator(out_indices='last', in_channels=384, arch_overrides=dict(depth=4))
    torch.save(official_depth_head(3072), tmp_path / 'linear4_head.pth')
    with pytest.raises(CheckpointError, match=r'linear4_head\.pth does not fit .*LinearDepthHead'
                                              r'.*conv_depth\.weight \(256, 3072, 1, 1\)'):
        load_head_checkpoint(model, str(tmp_path / 'linear4_head.pth'))


# ----------------------------------------------------------------------------- estimator
def test_training_reduces_the_sigloss():
    torch.manual_seed(0)
    model = estimator(loss_decode=dict(type='SigLoss')).train()
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    images = torch.randn(2, 3, H, W)
    ramp = torch.linspace(1.0, 9.0, W).expand(H, W)
    samples = []
    for depth in (ramp, ramp.flip(-1)):
        s = SegDataSample(metainfo=dict(img_shape=(H, W)))
        s.gt_depth_map = PixelData(data=depth[None].clone())
        samples.append(s)
    params = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in params} == {id(p) for p in model.decode_head.parameters()}
    opt = torch.optim.AdamW(params, lr=1e-2)
    history = []
    for _ in range(40):
        loss = model.loss(images, samples)['decode.loss_depth']
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, backbone_before[k]), k


def _same_weights(a, b):
    b.load_state_dict(a.state_dict())


def test_slide_with_one_window_equals_whole_and_overlaps_are_averaged():
    torch.manual_seed(0)
    whole = estimator()
    with torch.no_grad():
        whole.decode_head.conv_depth.weight.normal_(0, 0.3)
    one_window = estimator(test_cfg=dict(mode='slide', crop_size=(H, W), stride=(14, 14)))
    _same_weights(whole, one_window)
    x = torch.randn(2, 3, H, W)
    metas = [dict(img_shape=(H, W), ori_shape=(H, W)) for _ in range(2)]
    ref = whole.inference(x, metas)
    assert ref.shape == (2, 1, H, W)
    torch.testing.assert_close(one_window.inference(x, [dict(m) for m in metas]), ref)

    two_windows = estimator(test_cfg=dict(mode='slide', crop_size=(H, H), stride=(14, 14)))
    _same_weights(whole, two_windows)
    left = whole.encode_decode(x[..., :H], [dict(img_shape=(H, H))] * 2)
    right = whole.encode_decode(x[..., W - H:], [dict(img_shape=(H, H))] * 2)
    expected = torch.zeros(2, 1, H, W)
    count = torch.zeros(1, 1, 1, W)
    expected[..., :H] += left
    expected[..., W - H:] += right
    count[..., :H] += 1
    count[..., W - H:] += 1
    torch.testing.assert_close(two_windows.inference(x, [dict(m) for m in metas]),
                               (expected / count).clamp(1e-3, 10.0))


def test_flip_averages_with_the_flipped_prediction():
    torch.manual_seed(0)
    plain = estimator()
    with torch.no_grad():
        plain.decode_head.conv_depth.weight.normal_(0, 0.3)
    flip = estimator(test_cfg=dict(mode='whole', flip=True))
    _same_weights(plain, flip)
    x = torch.randn(1, 3, H, W)
    metas = [dict(img_shape=(H, W), ori_shape=(H, W))]
    a = plain.inference(x, metas)
    b = plain.inference(x.flip(-1), metas).flip(-1)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(flip.inference(x, metas), (a + b) / 2)


def test_postprocess_cuts_padding_unflips_and_resizes_to_the_original_shape():
    model = estimator()
    depth = torch.arange(1.0, 1.0 + 6 * 8).view(1, 1, 6, 8) / 6  # 0.17 .. 8.2 m
    meta = dict(img_shape=(5, 6), ori_shape=(10, 12), img_padding_size=[0, 2, 0, 1], flip=True,
                flip_direction='horizontal')
    [out] = model.postprocess_result(depth, [SegDataSample(metainfo=meta)])
    expected = F.interpolate(depth[..., :5, :6].flip(-1), size=(10, 12), mode='bilinear',
                             align_corners=False)[0]
    torch.testing.assert_close(out.pred_depth_map.data, expected)
    vertical = dict(meta, flip_direction='vertical', img_padding_size=[0, 0, 0, 0],
                    ori_shape=(6, 8))
    [out] = model.postprocess_result(depth, [SegDataSample(metainfo=vertical)])
    torch.testing.assert_close(out.pred_depth_map.data, depth[0].flip(-2))
    [bare] = model.postprocess_result(depth.clamp(1e-3, 10.0))
    torch.testing.assert_close(bare.pred_depth_map.data, depth[0])


def test_estimator_rejects_an_unknown_inference_mode():
    with pytest.raises(ValueError, match="test_cfg.mode must be one of .* got 'tiles'"):
        estimator(test_cfg=dict(mode='tiles'))


@pytest.mark.parametrize('align_corners', [False, True])
def test_fused_upsampled_bins_equal_resize_then_bins(align_corners):
    """upsampled_bins_to_depth == bins_to_depth(F.interpolate(...)) in values and gradients
    (float64: to rounding), chunk boundaries anywhere, some logits below zero (ReLU)."""
    import torch.nn.functional as F

    from densedino.models.heads.depth_bins import (bins_to_depth, depth_bins,
                                                   upsampled_bins_to_depth)
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64, requires_grad=True)
    bins = depth_bins(1e-3, 10.0, 16).double()
    g = torch.randn(2, 1, 20, 28, dtype=torch.float64)
    ref = bins_to_depth(F.interpolate(x, size=(20, 28), mode='bilinear',
                                      align_corners=align_corners), bins)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    for chunk in (16 * 28, 3 * 16 * 28, 1 << 20):  # 1 row, 3 rows, everything at once
        out = upsampled_bins_to_depth(x, bins, (20, 28), align_corners, chunk_elems=chunk)
        (grad,) = torch.autograd.grad(out, x, g)
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match='expected logits'):
        upsampled_bins_to_depth(x, bins[:3], (20, 28))
