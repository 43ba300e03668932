"""Tests for the DINOv3 ConvNeXt backbone and its Hugging Face converter (CPU, tiny models)."""
import json
from typing import Dict, List, Tuple

import pytest
import torch

from densedino.models.backbones.convert import (convnext_config_from_hf, convnext_state_dict_from_hf,
                                                is_hf_convnext_state_dict)
from densedino.models.backbones.convnext import CONVNEXT_PRESETS, ConvNeXt

TINY = dict(depths=[1, 1, 2, 1], dims=[8, 16, 32, 64])
# docs/protocols.md section 1.5, in millions.
PRESET_PARAMS_M = {'dinov3_convnext_tiny': 27.8, 'dinov3_convnext_small': 49.5,
                   'dinov3_convnext_base': 87.6, 'dinov3_convnext_large': 196.2}


def official_layout(depths: List[int], dims: List[int], in_chans: int = 3) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of the official dinov3 ConvNeXt state dict, written out from the official source."""
    shapes = {'downsample_layers.0.0.weight': (dims[0], in_chans, 4, 4),
              'downsample_layers.0.0.bias': (dims[0],),
              'downsample_layers.0.1.weight': (dims[0],), 'downsample_layers.0.1.bias': (dims[0],)}
    for s in range(1, 4):
        shapes.update({f'downsample_layers.{s}.0.weight': (dims[s - 1],),
                       f'downsample_layers.{s}.0.bias': (dims[s - 1],),
                       f'downsample_layers.{s}.1.weight': (dims[s], dims[s - 1], 2, 2),
                       f'downsample_layers.{s}.1.bias': (dims[s],)})
    for s, (depth, c) in enumerate(zip(depths, dims)):
        for j in range(depth):
            p = f'stages.{s}.{j}.'
            shapes.update({p + 'dwconv.weight': (c, 1, 7, 7), p + 'dwconv.bias': (c,),
                           p + 'norm.weight': (c,), p + 'norm.bias': (c,),
                           p + 'pwconv1.weight': (4 * c, c), p + 'pwconv1.bias': (4 * c,),
                           p + 'pwconv2.weight': (c, 4 * c), p + 'pwconv2.bias': (c,), p + 'gamma': (c,)})
    for p in ('norm.', 'norms.3.'):
        shapes.update({p + 'weight': (dims[-1],), p + 'bias': (dims[-1],)})
    return shapes


def tiny_model(**kwargs) -> ConvNeXt:
    torch.manual_seed(0)
    return ConvNeXt(**TINY, **kwargs).eval()


def randomize_(module: torch.nn.Module) -> None:
    """Non-trivial weights everywhere (the default gamma 1e-6 would make every block an identity)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)


# ---- Hugging Face parity -------------------------------------------------------------------------

@pytest.fixture(scope='module')
def hf_pair(tmp_path_factory):
    """(HF DINOv3ConvNextModel with random weights, our ConvNeXt loaded from its saved files)."""
    transformers = pytest.importorskip('transformers')
    safetensors_torch = pytest.importorskip('safetensors.torch')
    config = transformers.DINOv3ConvNextConfig(depths=TINY['depths'], hidden_sizes=TINY['dims'])
    hf = transformers.DINOv3ConvNextModel(config).eval()
    randomize_(hf)
    path = tmp_path_factory.mktemp('hf_convnext')
    hf.save_pretrained(path)
    sd = safetensors_torch.load_file(str(path / 'model.safetensors'))
    cfg = json.loads((path / 'config.json').read_text())
    assert is_hf_convnext_state_dict(sd)
    ours = ConvNeXt(**convnext_config_from_hf(cfg)).eval()
    ours.load_state_dict(convnext_state_dict_from_hf(sd), strict=True)
    return hf, ours


def test_hf_parity_outputs(hf_pair):
    """HF output -> ours, on a non-square input.

    last_hidden_state (B, 1+h*w, C) = cat(x_norm_clstoken, x_norm_patchtokens) (pooled token first);
    pooler_output (B, C) = x_norm_clstoken; hidden_states has 5 entries: [0] is the pixel input itself
    (HF stage name 'stem'), [1:] the raw stage outputs = forward_stages(x, norm=False).
    """
    hf, ours = hf_pair
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True)
        feats = ours.forward_features(x)
        stages = ours.forward_stages(x, norm=False)
    kw = dict(atol=1e-4, rtol=0)
    torch.testing.assert_close(feats['x_norm_clstoken'], ref.pooler_output, **kw)
    torch.testing.assert_close(feats['x_norm_clstoken'], ref.last_hidden_state[:, 0], **kw)
    torch.testing.assert_close(feats['x_norm_patchtokens'], ref.last_hidden_state[:, 1:], **kw)
    assert len(ref.hidden_states) == 5 and torch.equal(ref.hidden_states[0], x)
    for ours_map, hf_map in zip(stages, ref.hidden_states[1:]):
        torch.testing.assert_close(ours_map, hf_map, **kw)
    torch.testing.assert_close(feats['x_prenorm'], stages[3].flatten(2).transpose(1, 2), **kw)


def test_hf_in_memory_layout_converts_the_same(hf_pair):
    """The in-memory HF state dict prefixes the stages with 'model.'; the saved file does not."""
    hf, ours = hf_pair
    sd = hf.state_dict()
    assert any(k.startswith('model.stages.') for k in sd)
    converted = convnext_state_dict_from_hf(sd)
    expected = ours.state_dict()
    assert converted.keys() == expected.keys()
    assert all(torch.equal(converted[k], expected[k]) for k in expected)


def test_hf_wrapped_prefix_and_errors(hf_pair):
    hf, _ = hf_pair
    sd = {'backbone.' + k: v for k, v in hf.state_dict().items()}
    assert is_hf_convnext_state_dict(sd)
    assert set(convnext_state_dict_from_hf(sd)) == set(official_layout(**TINY))
    with pytest.raises(ValueError, match='backbone.head.weight'):
        convnext_state_dict_from_hf({**sd, 'backbone.head.weight': torch.zeros(1)})
    no_final_norm = {k: v for k, v in sd.items() if 'layer_norm' not in k or 'layers' in k}
    with pytest.raises(ValueError, match='layer_norm'):
        convnext_state_dict_from_hf(no_final_norm)


def test_detection_rejects_official_keys():
    sd = tiny_model().state_dict()
    assert not is_hf_convnext_state_dict(sd)
    with pytest.raises(ValueError, match='not an HF'):
        convnext_state_dict_from_hf(sd)


def test_config_from_hf():
    cfg = dict(model_type='dinov3_convnext', depths=[3, 3, 27, 3], hidden_sizes=[128, 256, 512, 1024],
               num_channels=4, layer_norm_eps=1e-5, layer_scale_init_value=0.1, drop_path_rate=0.2,
               hidden_act='gelu', image_size=224, out_features=['stage4'])
    assert convnext_config_from_hf(cfg) == dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024], in_chans=4,
                                                drop_path_rate=0.2, layer_scale_init=0.1, norm_eps=1e-5)
    assert convnext_config_from_hf({})['dims'] == [96, 192, 384, 768]
    with pytest.raises(ValueError, match='silu'):
        convnext_config_from_hf(dict(hidden_act='silu'))
    with pytest.raises(ValueError, match='convnext'):
        convnext_config_from_hf(dict(model_type='convnext'))


# ---- official layout -----------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(CONVNEXT_PRESETS))
def test_preset_matches_official_layout(name):
    with torch.device('meta'):
        model = ConvNeXt(**CONVNEXT_PRESETS[name])
    sd = model.state_dict()
    expected = official_layout(**{k: list(v) for k, v in CONVNEXT_PRESETS[name].items()})
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert all(v.is_meta for v in sd.values())
    n_params = sum(p.numel() for p in model.parameters())  # norm / norms.3 counted once
    assert abs(n_params / 1e6 - PRESET_PARAMS_M[name]) < 0.1


def test_norms3_is_the_final_norm():
    model = tiny_model()
    sd = model.state_dict()
    assert sd['norms.3.weight'].data_ptr() == sd['norm.weight'].data_ptr()
    assert model.embed_dims == TINY['dims'] and model.embed_dim == model.num_features == 64
    assert model.patch_size == 32


# ---- dense API -----------------------------------------------------------------------------------

@pytest.mark.parametrize('size', [(96, 160), (100, 170)])
def test_forward_stages_shapes(size):
    h, w = size
    maps = tiny_model().forward_stages(torch.randn(1, 3, h, w))
    # Unpadded strided convs floor the sizes: 100 x 170 -> 25 x 42 -> 12 x 21 -> 6 x 10 -> 3 x 5.
    expected = [(c, (h // 4) // 2 ** s, (w // 4) // 2 ** s) for s, c in enumerate(TINY['dims'])]
    assert [tuple(m.shape[1:]) for m in maps] == expected


def test_forward_stages_norm_and_intermediate_layers():
    model = tiny_model()
    randomize_(model)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        raw = model.forward_stages(x, norm=False)
        normed = model.forward_stages(x)
        gil = model.get_intermediate_layers(x, n=4, reshape=True)
        tokens = model.get_intermediate_layers(x, n=[1, 3], return_class_token=True)
        feats = model.forward_features(x)
    for s in range(3):  # the official norms are Identity on stages 0-2
        assert torch.equal(raw[s], normed[s])
    assert not torch.allclose(raw[3], normed[3])
    for a, b in zip(normed, gil):
        torch.testing.assert_close(a, b)
    (p1, c1), (p3, c3) = tokens
    assert p1.shape == (2, 8 * 12, 16) and c1.shape == (2, 16)
    torch.testing.assert_close(c1, raw[1].mean(dim=(2, 3)))
    torch.testing.assert_close(p3, feats['x_norm_patchtokens'])
    torch.testing.assert_close(c3, feats['x_norm_clstoken'])
    torch.testing.assert_close(model(x), feats['x_norm_clstoken'])


def test_intermediate_layers_arguments():
    model = tiny_model()
    x = torch.randn(1, 3, 64, 64)
    raw = model.get_intermediate_layers(x, n=1, reshape=True, norm=False)[0]
    assert raw.shape == (1, 64, 2, 2)
    for bad in (0, 5, [3, 1], [4], []):
        with pytest.raises(ValueError, match='stage|n must'):
            model.get_intermediate_layers(x, n=bad)


def test_forward_features_list_input():
    model = tiny_model()
    outs = model.forward_features([torch.randn(1, 3, 64, 64), torch.randn(2, 3, 32, 96)])
    assert [o['x_norm_patchtokens'].shape for o in outs] == [(1, 4, 64), (2, 3, 64)]
    assert outs[0]['x_storage_tokens'].shape == (1, 0, 64) and outs[0]['masks'] is None


def test_drop_path_only_in_training():
    model = tiny_model(drop_path_rate=0.5)
    randomize_(model)
    plain = ConvNeXt(**TINY).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_stages(x), plain.forward_stages(x))
        model.train()
        torch.manual_seed(3)
        assert not torch.allclose(model.forward_stages(x)[3], plain.forward_stages(x)[3])


def test_gradients_flow():
    model = tiny_model().train()
    x = torch.randn(2, 3, 64, 96, requires_grad=True)
    sum(m.square().mean() for m in model.forward_stages(x)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs', [dict(depths=[1, 1, 1], dims=[8, 16, 32, 64]),
                                    dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 0]),
                                    dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64], drop_path_rate=1.0),
                                    dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64], layer_scale_init=-1.0)])
def test_constructor_validation(kwargs):
    with pytest.raises(ValueError):
        ConvNeXt(**kwargs)
