"""DINOv3's training-time RoPE coordinate augmentations (shift, jitter, rescale) against their
definitions: patch centres c in [-1, 1] per axis become ((c + u) * f) * s with u uniform in
[-shift, shift] per axis, f log-uniform in [1/jitter, jitter] per axis and s log-uniform in
[1/rescale, rescale] for both axes, drawn once per forward in training mode only."""
import math
import os

import pytest
import torch
from mmengine.config import Config

from densedino import create_backbone
from densedino.models.layers import RopePositionEmbedding

H, W, HEAD_DIM = 4, 6, 16  # even: no centre at 0, so factors divide out
TINY_V3 = dict(depth=2, embed_dim=32, num_heads=2, layerscale_init=1.0)  # blocks that count


def _centres(h: int, w: int) -> torch.Tensor:
    """(h * w, 2) patch centres (y, x) in [-1, 1], row-major: the published definition."""
    ys = [(2 * (i + 0.5) / h) - 1 for i in range(h)]
    xs = [(2 * (j + 0.5) / w) - 1 for j in range(w)]
    return torch.tensor([[y, x] for y in ys for x in xs], dtype=torch.float64)


def _sin_cos(coords: torch.Tensor, periods: torch.Tensor) -> tuple:
    """sin/cos of the angles 2 pi c / period, y-periods then x-periods, the block repeated."""
    angles = 2 * math.pi * coords.double()[:, :, None] / periods.double()[None, None, :]
    angles = angles.flatten(1).repeat(1, 2)
    return angles.sin(), angles.cos()


def _draws(rope: RopePositionEmbedding, n: int = 2000) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.stack([rope.coords(H, W).double() for _ in range(n)])  # (n, h w, 2)


def _ks_uniform(samples: torch.Tensor, low: float, high: float) -> float:
    """Kolmogorov-Smirnov distance between the samples and the uniform law on [low, high]."""
    x = ((samples.double().flatten().sort().values - low) / (high - low)).clamp(0, 1)
    n = x.numel()
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return max((ranks / n - x).max().item(), (x - (ranks - 1) / n).max().item())


def test_eval_mode_is_the_plain_rope_bit_for_bit():
    plain = RopePositionEmbedding(head_dim=HEAD_DIM).eval()
    augmented = RopePositionEmbedding(head_dim=HEAD_DIM, shift_coords=0.5, jitter_coords=1.5,
                                      rescale_coords=2.0).eval()
    state = torch.get_rng_state()
    for a, b in zip(plain(H, W), augmented(H, W)):
        assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())  # nothing drawn
    torch.testing.assert_close(augmented.coords(H, W).double(), _centres(H, W))
    for got, ref in zip(augmented(H, W), _sin_cos(_centres(H, W), augmented.periods)):
        torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=0)


def test_backbone_eval_outputs_unchanged_and_training_uses_the_augmentation():
    torch.manual_seed(0)
    plain = create_backbone('dinov3_vits16', **TINY_V3)
    augmented = create_backbone('dinov3_vits16', **TINY_V3, rope_rescale_coords=2.0)
    augmented.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        ref = plain.forward_features(x)
        out = augmented.forward_features(x)
        assert all(torch.equal(ref[k], out[k]) for k in ('x_norm_clstoken', 'x_norm_patchtokens'))
        plain.train(), augmented.train()  # no drop path: only the RoPE draws differ
        assert torch.equal(plain.forward_features(x)['x_norm_clstoken'], ref['x_norm_clstoken'])
        torch.manual_seed(1)
        first = augmented.forward_features(x)['x_norm_clstoken']
        torch.manual_seed(1)
        again = augmented.forward_features(x)['x_norm_clstoken']
    assert not torch.allclose(first, ref['x_norm_clstoken'])
    assert torch.equal(first, again)


def test_no_option_draws_nothing_in_training():
    rope = RopePositionEmbedding(head_dim=HEAD_DIM).train()
    state = torch.get_rng_state()
    torch.testing.assert_close(rope.coords(H, W).double(), _centres(H, W))
    assert torch.equal(state, torch.get_rng_state())


def test_shift_is_one_uniform_offset_per_axis():
    shift = 0.4
    draws = _draws(RopePositionEmbedding(head_dim=HEAD_DIM, shift_coords=shift).train())
    offsets = draws - _centres(H, W)  # (n, h w, 2): one value per draw and axis
    torch.testing.assert_close(offsets, offsets[:, :1].expand_as(offsets), atol=1e-6, rtol=0)
    per_axis = offsets[:, 0]  # (n, 2)
    assert per_axis.min() >= -shift and per_axis.max() <= shift
    assert per_axis.min() < -0.99 * shift and per_axis.max() > 0.99 * shift
    for axis in range(2):
        assert _ks_uniform(per_axis[:, axis], -shift, shift) < 1.63 / math.sqrt(len(draws))
    assert not torch.allclose(per_axis[:, 0], per_axis[:, 1])  # the axes draw separately


def test_jitter_is_one_log_uniform_factor_per_axis():
    jitter = 1.5
    draws = _draws(RopePositionEmbedding(head_dim=HEAD_DIM, jitter_coords=jitter).train())
    factors = draws / _centres(H, W)
    torch.testing.assert_close(factors, factors[:, :1].expand_as(factors), rtol=1e-5, atol=0)
    logs = factors[:, 0].log()  # (n, 2)
    bound = math.log(jitter)
    assert logs.min() >= -bound - 1e-6 and logs.max() <= bound + 1e-6
    assert logs.min() < -0.99 * bound and logs.max() > 0.99 * bound
    for axis in range(2):
        assert _ks_uniform(logs[:, axis], -bound, bound) < 1.63 / math.sqrt(len(draws))
    assert not torch.allclose(logs[:, 0], logs[:, 1])


def test_rescale_is_one_log_uniform_factor_for_both_axes():
    rescale = 2.0
    draws = _draws(RopePositionEmbedding(head_dim=HEAD_DIM, rescale_coords=rescale).train())
    factors = draws / _centres(H, W)
    torch.testing.assert_close(factors, factors[:, :1, :1].expand_as(factors), rtol=1e-5, atol=0)
    logs = factors[:, 0, 0].log()
    bound = math.log(rescale)
    assert logs.min() >= -bound - 1e-6 and logs.max() <= bound + 1e-6
    assert logs.min() < -0.99 * bound and logs.max() > 0.99 * bound
    assert _ks_uniform(logs, -bound, bound) < 1.63 / math.sqrt(len(draws))
    scales = factors[:, 0, 0]
    assert 1 / rescale - 1e-6 <= scales.min() and scales.max() <= rescale + 1e-6


def test_all_three_compose_as_shift_then_jitter_then_rescale():
    rope = RopePositionEmbedding(head_dim=HEAD_DIM, shift_coords=0.3, jitter_coords=1.5,
                                 rescale_coords=2.0).train()
    torch.manual_seed(3)
    coords = rope.coords(H, W).double()
    torch.manual_seed(3)  # the same draws, in the documented order: shift (2), jitter (2), scale
    u = torch.empty(2).uniform_(-0.3, 0.3).double()
    f = torch.empty(2).uniform_(-math.log(1.5), math.log(1.5)).exp().double()
    s = torch.empty(1).uniform_(-math.log(2.0), math.log(2.0)).exp().double()
    torch.testing.assert_close(coords, (_centres(H, W) + u) * f * s, atol=1e-6, rtol=0)
    # the angles follow the drawn coordinates, and a seed reproduces them
    torch.manual_seed(3)
    sin, cos = rope(H, W)
    ref_sin, ref_cos = _sin_cos(coords, rope.periods)
    torch.testing.assert_close(sin.double(), ref_sin, atol=1e-5, rtol=0)
    torch.testing.assert_close(cos.double(), ref_cos, atol=1e-5, rtol=0)
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip((sin, cos), rope(H, W)))
    assert not torch.equal(sin, rope(H, W)[0])  # a new forward draws anew


@pytest.mark.parametrize('kwargs, message', [
    (dict(shift_coords=-0.1), 'shift_coords must be >= 0 or None, got -0.1'),
    (dict(jitter_coords=0.5), 'jitter_coords must be >= 1 or None, got 0.5'),
    (dict(rescale_coords=0.0), 'rescale_coords must be >= 1 or None, got 0.0'),
])
def test_bad_options_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RopePositionEmbedding(head_dim=HEAD_DIM, **kwargs)


def test_absolute_position_backbones_refuse_rope_options():
    with pytest.raises(ValueError, match="need pos_embed=\"rope\".*'rescale_coords': 2.0"):
        create_backbone('dinov2_vits14', depth=1, embed_dim=32, num_heads=2,
                        rope_rescale_coords=2.0)


def test_dinov3_config_trains_with_the_released_rope_options():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = Config.fromfile(os.path.join(repo, 'configs', 'pretrain', 'dinov3_vits16_gram.py'))
    overrides = cfg.model.backbone_overrides
    assert overrides.get('rope_rescale_coords') == 2.0
    assert overrides.get('rope_shift_coords') is None
    assert overrides.get('rope_jitter_coords') is None
