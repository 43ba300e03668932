"""Depth inference clamps at the head's resolution and then resizes, as DINOv2's depther does.

The reference below is written from DINOv2's ``DepthEncoderDecoder``: ``encode_decode`` clamps the
head's raw map to ``[min_depth, max_depth]`` and then resizes it (bilinear) to the input; sliding
windows run ``encode_decode`` per window and average the stitched windows; flip test-time
augmentation averages the un-flipped prediction of the flipped image with the plain one. The
heads are constructed so that their raw output crosses ``max_depth`` inside the map: there the
two orders differ.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.structures import SegDataSample

import densedino  # noqa: F401
from densedino.registry import MODELS

H, W = 42, 70  # a 3 x 5 token grid for patch size 14; the DINOv2 DPT head outputs 64 x 96
LO, HI = 1e-3, 10.0
TINY = dict(depth=4, embed_dim=32, num_heads=2)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _estimator(head: dict, test_cfg: dict) -> torch.nn.Module:
    init_default_scope('densedino')
    cfg = dict(type='DinoDepthEstimator',
               backbone=dict(type='DinoBackbone', arch='dinov2_vits14', arch_overrides=TINY,
                             out_indices=[0, 1, 2, 3], norm=False, frozen=True),
               decode_head=dict(min_depth=LO, max_depth=HI, **head), test_cfg=test_cfg)
    return MODELS.build(cfg).eval()


HEADS = {
    'dpt': dict(type='DPTDepthHead', variant='dinov2', embed_dims=32, channels=16),
    'linear_regression': dict(type='LinearDepthHead', in_channels=[32] * 4, classify=False),
}


def _last_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    head = model.decode_head
    return head.conv_depth.head[4] if hasattr(head.conv_depth, 'head') else head.conv_depth


def _exceeding(kind: str, test_cfg: dict) -> torch.nn.Module:
    """A head whose raw output (relu(z) + min_depth) has about half its pixels above HI."""
    torch.manual_seed(0)
    model = _estimator(HEADS[kind], test_cfg)
    conv = _last_conv(model)
    z = []
    hook = conv.register_forward_hook(lambda _m, _i, out: z.append(out))
    with torch.no_grad():
        model.decode_head(model.extract_feat(torch.randn(2, 3, H, W)))
        hook.remove()
        z0 = z[0] - conv.bias.view(1, -1, 1, 1)
        scale = 4.0 / z0.std()
        conv.weight.mul_(scale)
        conv.bias.fill_(HI - scale * z0.mean())  # z ~ HI +- 4 m: the map crosses the clamp
    return model


def official_encode_decode(model, x: torch.Tensor) -> torch.Tensor:
    """DINOv2: head forward, clamp at the head's resolution, then resize to the input."""
    with torch.no_grad():
        raw = model.decode_head(model.extract_feat(x))
    raw = torch.clamp(raw, min=LO, max=HI)
    return F.interpolate(raw, size=x.shape[-2:], mode='bilinear', align_corners=False)


def official_slide(model, x: torch.Tensor, crop, stride) -> torch.Tensor:
    """DINOv2's slide_inference: ``official_encode_decode`` per window, stitched, averaged."""
    (hc, wc), (hs, ws) = crop, stride
    h, w = x.shape[-2:]
    preds = x.new_zeros((x.shape[0], 1, h, w))
    count = x.new_zeros((x.shape[0], 1, h, w))
    for i in range(max(h - hc + hs - 1, 0) // hs + 1):
        for j in range(max(w - wc + ws - 1, 0) // ws + 1):
            y2, x2 = min(i * hs + hc, h), min(j * ws + wc, w)
            y1, x1 = max(y2 - hc, 0), max(x2 - wc, 0)
            preds[..., y1:y2, x1:x2] += official_encode_decode(model, x[..., y1:y2, x1:x2])
            count[..., y1:y2, x1:x2] += 1
    return preds / count


def _metas(n: int) -> list:
    return [dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)) for _ in range(n)]


@pytest.mark.parametrize('kind', sorted(HEADS))
def test_whole_and_flip_clamp_at_head_resolution_then_resize(kind):
    model = _exceeding(kind, dict(mode='whole', flip=True))
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        raw = model.decode_head(model.extract_feat(x))
        assert raw.shape[-2:] != (H, W)
        above = (raw > HI).float().mean().item()
        assert 0.2 < above < 0.8, above  # the construction works: the clamp matters
        ours = model.inference(x, _metas(2))
        results = model.predict(x, [SegDataSample(metainfo=m) for m in _metas(2)])
    plain = official_encode_decode(model, x)
    expected = (plain + official_encode_decode(model, x.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    for i, result in enumerate(results):
        torch.testing.assert_close(result.pred_depth_map.data, expected[i], rtol=1e-5,
                                   atol=1e-5)


def test_slide_clamps_each_window_at_head_resolution_then_resizes():
    crop, stride = (H, H), (28, 28)  # two windows, overlapping over 14 columns
    model = _exceeding('dpt', dict(mode='slide', crop_size=crop, stride=stride, flip=True))
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        ours = model.inference(x, _metas(1))
    expected = (official_slide(model, x, crop, stride)
                + official_slide(model, x.flip(-1), crop, stride).flip(-1)) / 2
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert ours.min() >= LO and ours.max() <= HI
