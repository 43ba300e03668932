"""Numerical parity of densedino backbones with Hugging Face transformers (random weights).

Each test builds a small transformers model, perturbs every parameter so that none keeps its
trivial init, saves it with ``save_pretrained`` and loads the directory through
``create_backbone(..., checkpoint=dir)``: format detection, conversion and strict loading are
all exercised. Inputs are non-square so position resampling / RoPE grids are asymmetric.
"""
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip('transformers')

from densedino import create_backbone  # noqa: E402

TINY = dict(embed_dim=32, depth=2, num_heads=2)
ATOL = 1e-4


def _perturb(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _save(model, tmp_path):
    model.save_pretrained(tmp_path, safe_serialization=True)
    return str(tmp_path)


def _ours_tokens(model, x):
    f = model.forward_features(x)
    return torch.cat([f['x_norm_clstoken'][:, None], f['x_norm_regtokens'],
                      f['x_norm_patchtokens']], dim=1)


def _check_hidden_states(ours, hf_out, x, n_prefix):
    """Per-block outputs (pre-norm) against HF hidden_states[i + 1] (patch tokens)."""
    layers = ours.get_intermediate_layers(x, n=list(range(ours.n_blocks)), norm=False,
                                          return_class_token=True)
    for i, (patches, cls) in enumerate(layers):
        ref = hf_out.hidden_states[i + 1]
        torch.testing.assert_close(patches, ref[:, n_prefix:], atol=ATOL, rtol=0)
        torch.testing.assert_close(cls, ref[:, 0], atol=ATOL, rtol=0)


def test_dinov1_matches_hf_vit(tmp_path):
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=128, image_size=32, patch_size=8,
                                 layer_norm_eps=1e-6, hidden_act='gelu')
    hf = _perturb(transformers.ViTModel(cfg, add_pooling_layer=False))
    # transformers resamples positions with size=, i.e. without DINOv1's +0.1 offset.
    ours = create_backbone('dino_vits8', checkpoint=_save(hf, tmp_path), img_size=32,
                           interpolate_offset=0.0, **TINY)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        ref = hf(x, interpolate_pos_encoding=True, output_hidden_states=True)
        torch.testing.assert_close(_ours_tokens(ours, x), ref.last_hidden_state, atol=ATOL, rtol=0)
        _check_hidden_states(ours, ref, x, 1)


@pytest.mark.parametrize('swiglu', [False, True], ids=['mlp', 'swiglu'])
def test_dinov2_matches_hf(tmp_path, swiglu):
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    mlp_ratio=4, image_size=56, patch_size=14,
                                    use_swiglu_ffn=swiglu, layer_norm_eps=1e-6)
    hf = _perturb(transformers.Dinov2Model(cfg))
    name = 'dinov2_vitg14' if swiglu else 'dinov2_vits14'
    # transformers' plain Dinov2 resamples with size= (no +0.1 offset, unlike the official code).
    ours = create_backbone(name, checkpoint=_save(hf, tmp_path), img_size=56,
                           interpolate_offset=0.0, **TINY)
    x = torch.randn(2, 3, 70, 42)
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True)
        torch.testing.assert_close(_ours_tokens(ours, x), ref.last_hidden_state, atol=ATOL, rtol=0)
        _check_hidden_states(ours, ref, x, 1)


def test_dinov2_registers_matches_hf_with_official_interpolation(tmp_path):
    cfg = transformers.Dinov2WithRegistersConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4, image_size=56,
        patch_size=14, num_register_tokens=4, layer_norm_eps=1e-6)
    hf = _perturb(transformers.Dinov2WithRegistersModel(cfg))
    # No override: the preset's own (official) antialiased resampling must match.
    ours = create_backbone('dinov2_vits14_reg', checkpoint=_save(hf, tmp_path), img_size=56,
                           **TINY)
    x = torch.randn(2, 3, 42, 98)
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True)
        torch.testing.assert_close(_ours_tokens(ours, x), ref.last_hidden_state, atol=ATOL, rtol=0)
        _check_hidden_states(ours, ref, x, 5)


@pytest.mark.parametrize('gated', [False, True], ids=['mlp', 'swiglu'])
def test_dinov3_matches_hf(tmp_path, gated):
    cfg = transformers.DINOv3ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        patch_size=16, num_register_tokens=4, use_gated_mlp=gated, rope_theta=100.0,
        hidden_act='silu' if gated else 'gelu',
        layer_norm_eps=1e-5, layerscale_value=1e-5, image_size=64)
    hf = _perturb(transformers.DINOv3ViTModel(cfg))
    name = 'dinov3_vits16plus' if gated else 'dinov3_vits16'
    ours = create_backbone(name, checkpoint=_save(hf, tmp_path), **TINY)
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True)
        torch.testing.assert_close(_ours_tokens(ours, x), ref.last_hidden_state, atol=ATOL, rtol=0)
        _check_hidden_states(ours, ref, x, 5)


def test_dinov3_convnext_matches_hf(tmp_path):
    cfg = transformers.DINOv3ConvNextConfig(depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 32, 64])
    hf = _perturb(transformers.DINOv3ConvNextModel(cfg))
    ours = create_backbone('dinov3_convnext_tiny', checkpoint=_save(hf, tmp_path),
                           depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))
    x = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        ref = hf(x)
        ours_feats = ours.forward_features(x)
        torch.testing.assert_close(ours_feats['x_norm_clstoken'], ref.pooler_output, atol=ATOL,
                                   rtol=0)


def test_official_offset_interpolation_formula():
    """DINOv1/v2 resample with scale_factor (h + 0.1) / M: check against the formula itself."""
    ours = create_backbone('dinov2_vits14', img_size=56, **TINY)
    x = torch.randn(1, 3, 70, 42)  # grid 5 x 3 from a 4 x 4 trained grid
    pos = ours.pos_embed
    grid = pos[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, scale_factor=(5.1 / 4, 3.1 / 4), mode='bicubic')
    ref = torch.cat([pos[:, :1], ref.permute(0, 2, 3, 1).reshape(1, 15, 32)], dim=1)
    got = ours.interpolate_pos_encoding((5, 3), x.shape[-2:], torch.float32)
    torch.testing.assert_close(got, ref)
    # and it really differs from plain size-based resampling
    plain = F.interpolate(grid, size=(5, 3), mode='bicubic').permute(0, 2, 3, 1).reshape(1, 15, 32)
    assert (got[:, 1:] - plain).abs().max() > 1e-4


def test_trained_grid_square_input_uses_embedding_as_is():
    ours = create_backbone('dinov2_vits14', img_size=56, **TINY)
    got = ours.interpolate_pos_encoding((4, 4), (56, 56), torch.float32)
    assert torch.equal(got, ours.pos_embed)
