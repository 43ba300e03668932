"""Presets, official checkpoint layouts, loading errors and the dense DinoBackbone."""
import re

import pytest
import torch
import torch.nn.functional as F

import densedino
from densedino import CheckpointError, create_backbone, list_backbones
from densedino.models.backbones import (DinoBackbone, PRESETS, center_pad, detect_format,
                                        resolve_out_indices, to_densedino)
from densedino.models.backbones.checkpoint import describe_mismatch, guess_presets
from densedino.models.backbones.convert import fit_to_model
from densedino.registry import MODELS

TINY = dict(embed_dim=32, depth=2, num_heads=2)

HUB_NAMES = [
    'dino_vits16', 'dino_vits8', 'dino_vitb16', 'dino_vitb8',
    *[f'dinov2_vit{s}14{r}' for s in 'sblg' for r in ('', '_reg')],
    'dinov3_vits16', 'dinov3_vits16plus', 'dinov3_vitb16', 'dinov3_vitl16', 'dinov3_vith16plus',
    'dinov3_vit7b16', *[f'dinov3_convnext_{s}' for s in ('tiny', 'small', 'base', 'large')],
]
# Published parameter counts in millions (DINOv2 and DINOv3 papers / model cards).
PARAMS_M = {'dinov2_vits14': 22.1, 'dinov2_vitb14': 86.6, 'dinov2_vitl14': 304.4,
            'dinov2_vitg14': 1136.5, 'dinov3_vits16': 21.6, 'dinov3_vits16plus': 28.7,
            'dinov3_vitb16': 85.7, 'dinov3_vitl16': 303.2, 'dinov3_vith16plus': 840.6,
            'dinov3_vit7b16': 6716.0}


def official_vit_layout(name):
    """Key -> shape of an official hub file, written from the official layouts (not from our code)."""
    dims = {'s': (384, 12), 'b': (768, 12), 'l': (1024, 24), 'g': (1536, 40), 'h': (1280, 32),
            '7b': (4096, 40)}
    m = re.match(r'(dino|dinov2|dinov3)_vit(7b|[sblgh])(\d+)(plus)?(_reg)?$', name)
    fam, size, patch, plus, reg = m.groups()
    D, depth = dims[size]
    patch = int(patch)
    v3 = fam == 'dinov3'
    keys = {'cls_token': (1, 1, D), 'patch_embed.proj.weight': (D, 3, patch, patch),
            'patch_embed.proj.bias': (D,), 'norm.weight': (D,), 'norm.bias': (D,)}
    if fam == 'dino':
        keys['pos_embed'] = (1, 1 + (224 // patch) ** 2, D)
    elif fam == 'dinov2':
        keys['pos_embed'] = (1, 1370, D)
        keys['mask_token'] = (1, D)
        if reg:
            keys['register_tokens'] = (1, 4, D)
    else:
        keys.update({'storage_tokens': (1, 4, D), 'mask_token': (1, D),
                     'rope_embed.periods': (D // {'s': 6, 'b': 12, 'l': 16, 'h': 20,
                                                   '7b': 32}[size] // 4,)})
    if fam == 'dinov2' and size == 'g':
        ffn = {'mlp.w12.weight': (8192, D), 'mlp.w12.bias': (8192,), 'mlp.w3.weight': (D, 4096),
               'mlp.w3.bias': (D,)}
    elif v3 and (plus or size == '7b'):
        h = {'s': 1536, 'h': 5120, '7b': 8192}[size]  # int(ratio * D * 2 / 3), aligned
        ffn = {f'mlp.{w}.{t}': s for w, s in (('w1', (h, D)), ('w2', (h, D)), ('w3', (D, h)))
               for t in ('weight',)}
        ffn.update({f'mlp.{w}.bias': (h if w != 'w3' else D,) for w in ('w1', 'w2', 'w3')})
    else:
        ffn = {'mlp.fc1.weight': (4 * D, D), 'mlp.fc1.bias': (4 * D,),
               'mlp.fc2.weight': (D, 4 * D), 'mlp.fc2.bias': (D,)}
    for i in range(depth):
        b = f'blocks.{i}.'
        keys.update({b + 'norm1.weight': (D,), b + 'norm1.bias': (D,), b + 'norm2.weight': (D,),
                     b + 'norm2.bias': (D,), b + 'attn.qkv.weight': (3 * D, D),
                     b + 'attn.proj.weight': (D, D), b + 'attn.proj.bias': (D,)})
        if size != '7b':
            keys[b + 'attn.qkv.bias'] = (3 * D,)
            if v3:
                keys[b + 'attn.qkv.bias_mask'] = (3 * D,)
        if fam != 'dino':
            keys.update({b + 'ls1.gamma': (D,), b + 'ls2.gamma': (D,)})
        keys.update({b + k: s for k, s in ffn.items()})
    return keys


def test_every_hub_name_has_a_preset():
    assert list_backbones() == HUB_NAMES


@pytest.mark.parametrize('name', [n for n in HUB_NAMES if 'convnext' not in n])
def test_official_layout_loads_strictly(name):
    """Official key names and shapes convert to exactly our model's keys, without allocating."""
    with torch.device('meta'):
        model = create_backbone(name)
        official = {k: torch.empty(s) for k, s in official_vit_layout(name).items()}
    assert detect_format(official) == 'official'
    sd, _ = to_densedino(official)
    expected = model.state_dict()
    assert describe_mismatch(fit_to_model(sd, expected), expected) == ''
    assert set(sd) == set(expected)  # nothing was filled in: official files carry everything
    if name in PARAMS_M:
        n = sum(p.numel() for p in model.parameters()) / 1e6
        assert n == pytest.approx(PARAMS_M[name], abs=0.1)


def _tiny_official_state(name, **over):
    model = create_backbone(name, **{**TINY, **over})
    sd = dict(model.state_dict())
    if model.rope_embed is not None:  # write it the way the official DINOv3 files do
        sd['storage_tokens'] = sd.pop('register_tokens')
        for i in range(model.n_blocks):
            sd[f'blocks.{i}.attn.qkv.bias_mask'] = torch.cat(
                [torch.ones(32), torch.zeros(32), torch.ones(32)])
    return model, sd


_KEY_MASKS = {  # every block's qkv.bias_mask in the file (D = 32: query, key, value thirds)
    'official': torch.cat([torch.ones(32), torch.zeros(32), torch.ones(32)]),
    'all_ones': torch.ones(96),
    'other': (torch.arange(96) % 3 != 0).float(),
    'absent': None,  # files of models built without the mask, and Hugging Face files
}


def _dinov3_reference(sd, mask):
    """The official DINOv3 projection uses ``bias * bias_mask``: fold that product into the bias
    by hand and load it into a model whose masks are all ones."""
    ref = create_backbone('dinov3_vits16', layerscale_init=1.0, **TINY)
    folded = {('register_tokens' if k == 'storage_tokens' else k): v for k, v in sd.items()
              if not k.endswith('bias_mask')}
    for i in range(ref.n_blocks):
        if mask is not None:
            folded[f'blocks.{i}.attn.qkv.bias'] = folded[f'blocks.{i}.attn.qkv.bias'] * mask
        folded[f'blocks.{i}.attn.qkv.bias_mask'] = torch.ones(96)
    ref.load_state_dict(folded)
    return ref.eval()


@pytest.mark.parametrize('mask_name', list(_KEY_MASKS))
def test_official_dinov3_bias_mask_is_read_from_the_file(mask_name, tmp_path):
    """The file's ``attn.qkv.bias_mask`` is loaded and used: with RoPE the key bias changes the
    attention, so another mask must give other outputs (LayerScale 1 makes them visible)."""
    mask = _KEY_MASKS[mask_name]
    _, sd = _tiny_official_state('dinov3_vits16', layerscale_init=1.0)
    for k in list(sd):
        if k.endswith('qkv.bias'):
            sd[k] = torch.randn_like(sd[k])
        elif k.endswith('qkv.bias_mask'):
            if mask is None:
                del sd[k]
            else:
                sd[k] = mask.clone()
    torch.save(sd, tmp_path / 'w.pth')
    loaded = create_backbone('dinov3_vits16', checkpoint=str(tmp_path / 'w.pth'),
                             layerscale_init=1.0, **TINY)
    qkv = loaded.blocks[0].attn.qkv
    assert torch.equal(qkv.bias, sd['blocks.0.attn.qkv.bias'])  # stored as in the file
    assert torch.equal(qkv.bias_mask, mask if mask is not None else torch.ones(96))
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        got = loaded.forward_features(x)['x_norm_patchtokens']
        ref = _dinov3_reference(sd, mask).forward_features(x)['x_norm_patchtokens']
        torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
        official = _dinov3_reference(sd, _KEY_MASKS['official'])
        gap = (got - official.forward_features(x)['x_norm_patchtokens']).abs().max()
    assert (gap == 0) if mask_name == 'official' else (gap > 1e-3)


def test_dinov3_qkv_projection_is_the_masked_linear():
    attn = create_backbone('dinov3_vits16', **TINY).blocks[0].attn
    with torch.no_grad():
        attn.qkv.bias.normal_()
        attn.qkv.bias_mask.copy_(_KEY_MASKS['other'])
    x = torch.randn(2, 7, 32)
    ref = x @ attn.qkv.weight.t() + attn.qkv.bias * _KEY_MASKS['other']
    q, k, v = attn._qkv(x, None)
    got = torch.cat([t.transpose(1, 2).reshape(2, 7, 32) for t in (q, k, v)], dim=-1)
    torch.testing.assert_close(got, ref)
    key = 'blocks.0.attn.qkv.bias_mask'
    assert key not in create_backbone('dinov2_vits14', **TINY).state_dict()
    assert key not in create_backbone('dinov3_vit7b16', **TINY).state_dict()  # no qkv bias


def test_training_checkpoint_takes_teacher(tmp_path):
    model, sd = _tiny_official_state('dinov2_vits14')
    teacher = {f'module.backbone.{k}' if not k.startswith('blocks') else
               'module.backbone.' + re.sub(r'^blocks\.(\d+)', lambda m: f'blocks.0.{m.group(1)}', k): v
               for k, v in sd.items()}
    teacher['module.dino_head.mlp.0.weight'] = torch.zeros(4, 4)
    student = {k: torch.zeros_like(v) for k, v in teacher.items()}
    torch.save({'teacher': teacher, 'student': student, 'iteration': 3}, tmp_path / 'ckpt.pth')
    loaded = create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'ckpt.pth'), **TINY)
    assert torch.equal(loaded.blocks[1].mlp.fc1.weight, model.blocks[1].mlp.fc1.weight)


def _as_timm(official):
    """What timm's DINOv2 converter makes of an official file (``_convert_dinov2`` in
    timm/models/vision_transformer.py, timm 1.0): ``mask_token`` dropped; with registers the
    model is ``no_embed_class`` (``reg_token`` holds the registers, ``cls_token`` absorbs the
    class position, ``pos_embed`` keeps the patch positions only); ``mlp.w12/w3`` become
    ``mlp.fc1/fc2``."""
    sd = {k: v.clone() for k, v in official.items() if k != 'mask_token'}
    out = {}
    if 'register_tokens' in sd:
        out['reg_token'] = sd.pop('register_tokens')
        out['cls_token'] = sd.pop('cls_token') + sd['pos_embed'][:, 0]
        out['pos_embed'] = sd.pop('pos_embed')[:, 1:]
    for k, v in sd.items():
        out[k.replace('.mlp.w12.', '.mlp.fc1.').replace('.mlp.w3.', '.mlp.fc2.')] = v
    return out


@pytest.mark.parametrize('name', ['dinov2_vits14_reg', 'dinov2_vitg14_reg', 'dinov2_vits14'])
def test_timm_dinov2_layout_loads_and_matches_official(name, tmp_path):
    """timm's files (written from timm's own conversion rule) give the official model's outputs
    at the trained size and at others: the class position is never resampled, so folding it
    into the class token is exact at every size."""
    model = create_backbone(name, img_size=56, layerscale_init=1.0, **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    timm_sd = _as_timm(model.state_dict())
    assert ('reg_token' in timm_sd) == name.endswith('_reg')
    if name.endswith('_reg'):
        assert timm_sd['pos_embed'].shape == (1, 16, 32)  # 4 x 4 patches, no class slot
    torch.save(timm_sd, tmp_path / 'timm.pth')
    loaded = create_backbone(name, checkpoint=str(tmp_path / 'timm.pth'), img_size=56, **TINY)
    assert torch.all(loaded.mask_token == 0)
    with torch.no_grad():
        for hw in [(56, 56), (42, 98), (70, 28)]:
            x = torch.randn(2, 3, *hw)
            ref, got = model.forward_features(x), loaded.forward_features(x)
            for key in ('x_norm_clstoken', 'x_norm_regtokens', 'x_norm_patchtokens'):
                torch.testing.assert_close(got[key], ref[key], atol=1e-6, rtol=0)


def test_timm_pos_embed_of_unknown_length_is_refused(tmp_path):
    model, sd = _tiny_official_state('dinov2_vits14_reg', img_size=56)
    sd = _as_timm(sd)
    sd['pos_embed'] = sd['pos_embed'][:, :15]
    torch.save(sd, tmp_path / 'odd.pth')
    with pytest.raises(CheckpointError, match=r'odd\.pth .*pos_embed'):
        create_backbone('dinov2_vits14_reg', checkpoint=str(tmp_path / 'odd.pth'), img_size=56,
                        **TINY)


def test_refused_preset_is_not_named_as_the_lookalike(tmp_path):
    """A file that fails for something outside the signature (here the position grid) must not
    be said to look like the very preset that refused it."""
    layout = official_vit_layout('dinov2_vits14_reg')
    layout['pos_embed'] = (1, 1 + 16 * 16, 384)  # trained at 224 px instead of 518
    torch.save({k: torch.zeros(s) for k, s in layout.items()}, tmp_path / 'r224.pth')
    with pytest.raises(CheckpointError) as e:
        create_backbone('dinov2_vits14_reg', checkpoint=str(tmp_path / 'r224.pth'))
    msg = str(e.value)
    assert 'pos_embed (1, 257, 384) vs (1, 1370, 384)' in msg
    hint = msg.partition('the file looks like')[2]
    assert 'dinov2_vits14_reg' not in hint
    sd, _ = to_densedino({k: torch.zeros(s) for k, s in layout.items()})
    assert guess_presets(sd) == ['dinov2_vits14_reg']
    assert guess_presets(sd, exclude='dinov2_vits14_reg') == []


def test_wrong_architecture_names_the_right_preset(tmp_path):
    torch.save(create_backbone('dinov2_vits14').state_dict(), tmp_path / 's.pth')
    with pytest.raises(CheckpointError) as e:
        create_backbone('dinov2_vitb14', checkpoint=str(tmp_path / 's.pth'))
    msg = str(e.value)
    assert '\n' not in msg and 's.pth' in msg and 'official format' in msg
    assert 'shape mismatch' in msg and 'looks like dinov2_vits14' in msg


def test_depth_mismatch_lists_missing_keys(tmp_path):
    torch.save(create_backbone('dinov2_vits14', **TINY).state_dict(), tmp_path / 'a.pth')
    with pytest.raises(CheckpointError, match=r'missing keys blocks\.2\.'):
        create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'a.pth'),
                        **{**TINY, 'depth': 3})


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / 'broken.pth'
    bad.write_bytes(b'PK\x03\x04 not really a checkpoint')
    with pytest.raises(CheckpointError, match=r'cannot read checkpoint .*broken\.pth.*download'):
        create_backbone('dinov2_vits14', checkpoint=str(bad), **TINY)
    with pytest.raises(CheckpointError, match='does not exist'):
        create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'nope.pth'))
    (tmp_path / 'hfdir').mkdir()
    with pytest.raises(CheckpointError, match='without config.json'):
        create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'hfdir'))


def test_untrusted_pickle_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    torch.save({'cls_token': Evil()}, tmp_path / 'evil.pth', _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointError, match=r'evil.pth contains code or objects that are not '
                       r'allowed in a weights file \(print\); it will not be loaded'):
        create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'evil.pth'), **TINY)


def test_unknown_preset_suggests_names():
    with pytest.raises(KeyError) as e:
        create_backbone('dinov2_vits16')
    assert str(e.value).startswith("unknown backbone 'dinov2_vits16'; did you mean")
    assert 'dinov2_vits14' in str(e.value) and 'dinov3_vits16' in str(e.value)
    with pytest.raises(TypeError, match='bad override'):
        create_backbone('dinov2_vits14', not_an_option=1)


def test_input_not_multiple_of_patch_is_refused_by_the_vit():
    model = create_backbone('dinov2_vits14', **TINY)
    with pytest.raises(ValueError, match='30x42 is not a multiple of the patch size 14'):
        model(torch.randn(1, 3, 30, 42))


def test_get_intermediate_layers_official_semantics():
    model = create_backbone('dinov2_vits14_reg', **{**TINY, 'depth': 4})
    x = torch.randn(2, 3, 28, 42)
    last2 = model.get_intermediate_layers(x, n=2)
    by_idx = model.get_intermediate_layers(x, n=[2, 3])
    assert len(last2) == 2 and all(torch.equal(a, b) for a, b in zip(last2, by_idx))
    assert last2[0].shape == (2, 6, 32)  # registers dropped
    (fmap, cls), = model.get_intermediate_layers(x, n=1, reshape=True, return_class_token=True)
    assert fmap.shape == (2, 32, 2, 3) and cls.shape == (2, 32)
    feats = model.forward_features(x)
    torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), feats['x_norm_patchtokens'])
    torch.testing.assert_close(cls, feats['x_norm_clstoken'])
    with pytest.raises(ValueError, match='out of range'):
        model.get_intermediate_layers(x, n=[4])


def _block_outputs(model, x):
    """Every block's full token output (B, 1 + R + h * w, D), captured with forward hooks."""
    outs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o)) for b in model.blocks]
    model.forward_features(x)
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize('name,over', [('dinov3_vits16', {}),
                                       ('dinov3_vits16', {'untie_cls_norm': True}),
                                       ('dinov2_vits14_reg', {}), ('dinov2_vits14', {})])
def test_get_intermediate_layers_extra_tokens(name, over):
    """DINOv3's ``return_extra_tokens``: the register / storage tokens of each tapped block,
    (patches, extra) alone and (patches, class, extra) with the class token."""
    model = create_backbone(name, **{**TINY, 'depth': 3, **over})
    R = model.num_register_tokens
    x = torch.randn(2, 3, 2 * model.patch_size, 3 * model.patch_size)
    with torch.no_grad():
        full = _block_outputs(model, x)
        both = model.get_intermediate_layers(x, n=[0, 2], reshape=True, return_class_token=True,
                                             return_extra_tokens=True)
        extra_only = model.get_intermediate_layers(x, n=2, return_extra_tokens=True)
        raw = model.get_intermediate_layers(x, n=[1], return_class_token=True,
                                            return_extra_tokens=True, norm=False)

    @torch.no_grad()
    def normed(i):
        t = full[i]
        if model.cls_norm is None:
            return model.norm(t)
        # official untied norms: class and extra tokens get cls_norm, patches norm
        return torch.cat([model.cls_norm(t[:, :1 + R]), model.norm(t[:, 1 + R:])], dim=1)

    for (fmap, cls, extra), i in zip(both, [0, 2]):
        assert fmap.shape == (2, 32, 2, 3) and cls.shape == (2, 32) and extra.shape == (2, R, 32)
        torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), normed(i)[:, 1 + R:])
        torch.testing.assert_close(cls, normed(i)[:, 0])
        torch.testing.assert_close(extra, normed(i)[:, 1:1 + R])
    assert [len(o) for o in extra_only] == [2, 2]
    for (patches, extra), i in zip(extra_only, [1, 2]):
        torch.testing.assert_close(patches, normed(i)[:, 1 + R:])
        torch.testing.assert_close(extra, normed(i)[:, 1:1 + R])
    (patches, cls, extra), = raw
    torch.testing.assert_close(extra, full[1][:, 1:1 + R])
    torch.testing.assert_close(patches, full[1][:, 1 + R:])


def test_last_selfattention_is_a_distribution():
    model = create_backbone('dino_vits16', **TINY)
    attn = model.get_last_selfattention(torch.randn(2, 3, 32, 48))
    assert attn.shape == (2, 2, 7, 7)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 7))


def test_bf16_autocast_close_to_fp32():
    model = create_backbone('dinov3_vits16', **TINY)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        ref = model.forward_features(x)['x_norm_patchtokens']
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model.forward_features(x)['x_norm_patchtokens']
    assert F.cosine_similarity(low.float(), ref, dim=-1).min() > 0.99


# ------------------------------------------------------------------ dense backbone
@pytest.mark.parametrize('spec,depth,expected', [
    ('last', 12, [11]), ('four_last', 12, [8, 9, 10, 11]), ('four_even', 12, [2, 5, 8, 11]),
    ('four_even', 24, [4, 11, 17, 23]), ('four_even', 40, [9, 19, 29, 39]),
    ('four_even', 32, [7, 15, 23, 31]), ([0, -1], 12, [0, 11]), (3, 12, [3])])
def test_out_indices(spec, depth, expected):
    assert resolve_out_indices(spec, depth) == expected


def test_out_indices_errors():
    with pytest.raises(ValueError, match='out of range'):
        resolve_out_indices([12], 12)
    with pytest.raises(ValueError, match="'last', 'four_last'"):
        resolve_out_indices('all', 12)
    with pytest.raises(ValueError, match='needs at least 4 blocks'):
        resolve_out_indices('four_last', 2)


def _dense(**kw):
    return MODELS.build(dict(type='DinoBackbone', arch='dinov2_vits14_reg',
                             arch_overrides={**TINY, 'depth': 4}, **kw))


def test_dense_outputs_match_official_api():
    bb = _dense(out_indices='four_last', norm=True)
    x = torch.randn(2, 3, 28, 56)
    feats = bb(x)
    ref = bb.model.get_intermediate_layers(x, n=4, reshape=True, return_class_token=True)
    assert len(feats) == 4
    for f, (fmap, cls) in zip(feats, ref):
        assert f.map.shape == (2, 32, 2, 4)
        torch.testing.assert_close(f.map, fmap)
        torch.testing.assert_close(f.cls_token, cls)
    raw = _dense(out_indices=[1], norm=False)
    raw.model.load_state_dict(bb.model.state_dict())
    (fmap, cls), = bb.model.get_intermediate_layers(x, n=[1], reshape=True,
                                                    return_class_token=True, norm=False)
    torch.testing.assert_close(raw(x)[0].map, fmap)


def test_center_padding():
    bb = _dense()
    x = torch.randn(1, 3, 25, 40)  # pads to 28 x 42: rows 1 top / 2 bottom, cols 1 / 1
    padded = F.pad(x, (1, 1, 1, 2))
    assert torch.equal(center_pad(x, 14), padded)
    torch.testing.assert_close(bb(x)[0].map, bb(padded)[0].map)
    strict = _dense(pad_mode='error')
    with pytest.raises(ValueError, match=r"25x40 is not a multiple of the patch size 14"):
        strict(x)


def test_frozen_backbone_builds_no_graph_and_stays_in_eval():
    bb = _dense(frozen=True)
    bb.train()
    assert not bb.model.training and not any(p.requires_grad for p in bb.parameters())
    out = bb(torch.randn(1, 3, 28, 28))
    assert not out[0].map.requires_grad and out[0].map.grad_fn is None


def test_trainable_blocks_train_only_the_tail():
    bb = _dense(frozen=True, trainable_blocks=1, out_indices='last')
    bb.train()
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('model.blocks.3.', 'model.norm.')) for n in trainable)
    assert bb.model.blocks[3].training and not bb.model.blocks[2].training
    bb(torch.randn(2, 3, 28, 28))[0].map.sum().backward()
    assert bb.model.blocks[3].attn.qkv.weight.grad is not None
    assert bb.model.blocks[2].attn.qkv.weight.grad is None


def test_unfrozen_backbone_gets_gradients_everywhere():
    bb = _dense(frozen=False, out_indices='last')
    bb(torch.randn(1, 3, 28, 28))[0].map.sum().backward()
    assert bb.model.patch_embed.proj.weight.grad is not None


def test_dense_init_weights_keeps_loaded_checkpoint(tmp_path):
    src = create_backbone('dinov2_vits14', **TINY)
    torch.save(src.state_dict(), tmp_path / 'w.pth')
    bb = MODELS.build(dict(type='DinoBackbone', arch='dinov2_vits14', arch_overrides=TINY,
                           checkpoint=str(tmp_path / 'w.pth')))
    bb.init_weights()  # what mmengine's runner calls after building
    assert torch.equal(bb.model.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)


def test_dense_convnext_stages():
    bb = MODELS.build(dict(type='DinoBackbone', arch='dinov3_convnext_tiny',
                           arch_overrides=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)),
                           out_indices=[0, 1, 2, 3]))
    feats = bb(torch.randn(1, 3, 70, 100))  # centre-padded to 96 x 128
    assert [f.map.shape[1:] for f in feats] == [(8, 24, 32), (16, 12, 16), (32, 6, 8), (64, 3, 4)]
    assert bb.out_channels == [8, 16, 32, 64]


def test_dense_argument_errors():
    with pytest.raises(ValueError, match='pad_mode'):
        _dense(pad_mode='reflect')
    with pytest.raises(ValueError, match=r'trainable_blocks must be in \[0, 4\]'):
        _dense(trainable_blocks=5)
    with pytest.raises(ValueError, match='only applies to a frozen'):
        _dense(frozen=False, trainable_blocks=1)


def test_public_api():
    assert densedino.create_backbone is create_backbone
    assert all(name in PRESETS for name in HUB_NAMES)
    bb = _dense()  # from the registry: the last block's normed patch tokens as a map
    x = torch.randn(1, 3, 28, 42)
    (feat,) = bb(x)
    assert bb.out_channels == [32] and feat.map.shape == (1, 32, 2, 3)
    ref = bb.model.get_intermediate_layers(x, n=1, reshape=True, norm=True)[0]
    torch.testing.assert_close(feat.map, ref)


def test_drop_path_uniform_or_linear_over_blocks():
    from densedino import create_backbone
    small = dict(depth=4, embed_dim=32, num_heads=2, drop_path_rate=0.3)
    uniform = create_backbone('dinov2_vits14', **small)
    assert [b.drop_path.p for b in uniform.blocks] == [0.3] * 4
    linear = create_backbone('dino_vits16', drop_path_uniform=False, **small)
    assert [b.drop_path.p for b in linear.blocks] == pytest.approx([0.0, 0.1, 0.2, 0.3])
