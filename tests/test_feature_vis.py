"""Feature visualisation: PCA colours, foreground, similarity, CLS attention, and the figure CLI."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import densedino
from densedino import create_backbone
from densedino.visualization import (
    cls_attention_maps,
    extract_patch_features,
    foreground_mask,
    pca_fit,
    pca_rgb,
    prepare_image,
    query_patch,
    read_image,
    similarity_map,
    to_image_grid,
    top_mass_mask,
)
from tools.visualize_features import (COLORBAR_INCHES, KEY_INCHES, RANDOM_WARNING,
                                      TITLE_INCHES, cli)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = dict(embed_dim=32, depth=2, num_heads=2)
TINY_CONVNEXT = dict(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32])


def tiny(name):
    return create_backbone(name, **(TINY_CONVNEXT if 'convnext' in name else TINY))


def clustered_features(seed=0):
    """Two (12, 16, 64) maps: background everywhere, four object clusters in the middle.

    Objects share a direction (what the first component should find) plus a cluster offset each
    (four clusters, so that all three colour components carry cluster differences).
    Returns the maps and the (12, 16) label maps (0 = background, 1..4 = cluster).
    """
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(64, 5, generator=g))[0].T  # orthonormal rows
    labels = torch.zeros(2, 12, 16, dtype=torch.long)
    labels[0, 3:9, 3:8], labels[0, 3:9, 9:13] = 1, 2
    labels[1, 4:10, 5:11], labels[1, 2:4, 5:8], labels[1, 5:9, 12:14] = 3, 1, 4
    centres = torch.stack([torch.zeros(64), *(6 * basis[0] + 3 * basis[k] for k in range(1, 5))])
    feats = centres[labels] + 0.2 * torch.randn(2, 12, 16, 64, generator=g)
    return list(feats), list(labels)


def write_png(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return str(path)


# ------------------------------------------------------------------------------- PCA

def test_pca_matches_the_covariance_eigendecomposition():
    x = torch.randn(200, 10) @ torch.randn(10, 10)
    pca = pca_fit(x, 4)
    cov = torch.cov(x.T)
    expected = torch.linalg.eigvalsh(cov).flip(0)[:4]
    assert torch.allclose(pca.explained_variance, expected, rtol=1e-4)
    assert torch.allclose(pca.components @ pca.components.T, torch.eye(4), atol=1e-5)
    for k in range(4):  # each component is an eigenvector: cov v = lambda v
        v = pca.components[k]
        assert torch.allclose(cov @ v, expected[k] * v, atol=1e-3 * expected[0])
    z = pca.transform(x, whiten=True)
    assert torch.allclose(z.var(0), torch.ones(4), atol=1e-4)


def test_foreground_recovers_the_objects_and_colours_separate_the_clusters():
    feats, labels = clustered_features()
    fg = foreground_mask(feats, threshold=0.0, sign='border')
    for m, lab in zip(fg, labels, strict=True):
        assert torch.equal(m, lab > 0)
    for mode in ('sigmoid', 'minmax'):
        colours = pca_rgb(feats, fg, mode=mode)
        pix = torch.cat([c.reshape(-1, 3) for c in colours])
        lab = torch.cat([m.reshape(-1) for m in labels])
        assert pix.min() >= 0 and pix.max() <= 1
        assert torch.all(pix[lab == 0] == 0)  # background black
        means = torch.stack([pix[lab == k].mean(0) for k in (1, 2, 3, 4)])
        spread = max(pix[lab == k].std(0).norm() for k in (1, 2, 3, 4))
        gaps = torch.pdist(means)
        assert gaps.min() > 5 * spread, (mode, gaps, spread)


@pytest.mark.parametrize('sign', ['border', 'majority'])
def test_foreground_sign_rule_is_invariant_to_the_pca_sign(sign):
    feats, labels = clustered_features(seed=1)
    plus = foreground_mask(feats, sign=sign)
    minus = foreground_mask([-f for f in feats], sign=sign)
    for a, b, lab in zip(plus, minus, labels, strict=True):
        assert torch.equal(a, b) and torch.equal(a, lab > 0)


def test_fixed_sign_and_bad_arguments():
    feats, labels = clustered_features()
    pos, neg = foreground_mask(feats, sign=1), foreground_mask(feats, sign=-1)
    assert not (pos[0] & neg[0]).any() and (pos[0] | neg[0]).all()  # complementary
    with pytest.raises(ValueError, match="sign must be one of"):
        foreground_mask(feats, sign='up')
    with pytest.raises(ValueError, match="mode must be one of"):
        pca_rgb(feats, mode='hsv')
    with pytest.raises(ValueError, match=r'n_components must be in \[1, min'):
        pca_fit(feats[0], 65)


def test_sigmoid_colours_are_centred_and_in_range():
    feats, _ = clustered_features()
    colours = pca_rgb(feats)  # every patch coloured
    pix = torch.cat([c.reshape(-1, 3) for c in colours])
    assert colours[0].shape == (12, 16, 3)
    assert pix.min() > 0 and pix.max() < 1
    # whitened projections have zero mean: logit(colour) / 2 averages to 0 per channel
    assert torch.allclose(torch.logit(pix).mean(0) / 2, torch.zeros(3), atol=1e-4)


def test_similarity_map_is_one_at_the_query():
    f = torch.randn(5, 7, 16)
    sim = similarity_map(f, (2, 3))
    assert sim.shape == (5, 7) and sim.max() <= 1 + 1e-6 and sim.min() >= -1 - 1e-6
    assert sim[2, 3] == pytest.approx(1.0, abs=1e-6) and sim.argmax() == 2 * 7 + 3
    assert similarity_map(f, (2, 3), torch.randn(4, 9, 16)).shape == (4, 9)
    with pytest.raises(ValueError, match='outside'):
        similarity_map(f, (5, 0))


def test_query_patch_follows_resize_and_padding():
    # 50x90 image resized to short side 28 -> 28x50, padded to 28x56 (3 px left)
    box = (0, 3, 28, 50)
    assert query_patch((0, 0), (50, 90), box, 14) == (0, 0)
    assert query_patch((89, 49), (50, 90), box, 14) == (1, 3)
    with pytest.raises(ValueError, match='outside'):
        query_patch((90, 0), (50, 90), box, 14)


# ---------------------------------------------------------------------------- attention

def test_top_mass_keeps_the_minimal_set_on_a_hand_case():
    a = torch.tensor([1., 8., 2., 4., 1.])  # sum 16: 8 = 0.5, 4 = 0.25, 2 = 0.125
    as_set = lambda t: set(torch.nonzero(top_mass_mask(a, t)).flatten().tolist())  # noqa: E731
    assert as_set(0.5) == {1}
    assert as_set(0.51) == {1, 3}
    assert as_set(0.75) == {1, 3}
    assert as_set(0.76) == {1, 3, 2}
    assert as_set(1.0) == {0, 1, 2, 3, 4}
    batched = top_mass_mask(torch.stack([a, a.flip(0)]), 0.75)
    assert batched[1].flip(0).equal(batched[0])
    with pytest.raises(ValueError, match=r'mass must be in \(0, 1\]'):
        top_mass_mask(a, 0.0)


@pytest.mark.parametrize('t', [0.3, 0.6, 0.9])
def test_top_mass_equals_dinov1_cumsum_rule(t):
    """DINOv1: ascending sort, normalise, keep where cumsum > 1 - t (random weights, no ties)."""
    a = torch.rand(6, 200, generator=torch.Generator().manual_seed(0)) ** 3
    val, idx = torch.sort(a, dim=-1)
    val = val / val.sum(-1, keepdim=True)
    dinov1 = torch.zeros_like(a, dtype=torch.bool).scatter(-1, idx, val.cumsum(-1) > 1 - t)
    assert torch.equal(top_mass_mask(a, t), dinov1)


@pytest.mark.parametrize('name', ['dino_vits16', 'dinov2_vits14_reg', 'dinov3_vits16'])
def test_cls_attention_maps_on_non_square_images(name):
    model = tiny(name)
    image = np.random.default_rng(0).integers(0, 255, (50, 90, 3), dtype=np.uint8)
    att = cls_attention_maps(model, image, threshold=0.6)
    p = model.patch_size
    h, w = -(-50 // p), -(-90 // p)
    assert att.maps.shape == att.masks.shape == (2, h, w)
    x = prepare_image(image, multiple=p, mean=model.preset.mean, std=model.preset.std).tensor
    full = model.get_last_selfattention(x)[0]
    to_prefix = full[:, 0, :model.num_prefix_tokens].sum(-1)  # class + register tokens
    assert torch.allclose(att.maps.sum((1, 2)) + to_prefix, torch.ones(2), atol=1e-5)
    held = (att.maps * att.masks).sum((1, 2)) / (att.maps * att.valid).sum((1, 2))
    assert torch.all(held >= 0.6 - 1e-6) and not (att.masks & ~att.valid).any()
    assert to_image_grid(att.maps[0], att.box, att.stride).shape == (50, 90)


def test_convnext_has_no_attention_maps():
    with pytest.raises(TypeError, match='no self-attention'):
        cls_attention_maps(tiny('dinov3_convnext_tiny'), np.zeros((64, 64, 3), np.uint8))


# ----------------------------------------------------------------------------- features

@pytest.mark.parametrize('name', ['dinov2_vits14', 'dinov3_vits16', 'dinov3_convnext_tiny'])
def test_patch_features_shapes_and_crop(name):
    model = tiny(name)
    image = np.random.default_rng(0).integers(0, 255, (50, 90, 3), dtype=np.uint8)
    f, g = extract_patch_features(model, [image, image[:40]], size=None)
    stride = 32 if 'convnext' in name else model.patch_size
    assert f.stride == stride and f.features.shape == (-(-50 // stride), -(-90 // stride), 32)
    assert g.features.shape[0] == -(-40 // stride)
    assert to_image_grid(f.features[..., :3], f.box, f.stride).shape == (50, 90, 3)
    top, left, H, W = f.box
    assert (H, W) == (50, 90) and top == (-50 % stride) // 2 and left == (-90 % stride) // 2
    resized, = extract_patch_features(model, [image], size=28)
    assert resized.image.shape == (28, 50, 3)


def test_layer_picks_a_block_after_the_final_norm():
    model = tiny('dinov2_vits14_reg')
    image = np.random.default_rng(0).integers(0, 255, (28, 42, 3), dtype=np.uint8)
    f, = extract_patch_features(model, [image], layer=0)
    x = prepare_image(image, multiple=14, mean=model.preset.mean, std=model.preset.std).tensor
    ref = model.get_intermediate_layers(x, n=[0], reshape=True, norm=True)[0][0]
    assert torch.allclose(f.features, ref.permute(1, 2, 0))
    with pytest.raises(ValueError, match='layer 2 out of range'):
        extract_patch_features(model, [image], layer=2)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_image(str(tmp_path / 'missing.png'))
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not a png')
    with pytest.raises(ValueError, match='bad.png'):
        read_image(str(bad))


# --------------------------------------------------------------------------------- CLI

@pytest.fixture
def tiny_factory(monkeypatch):
    """The CLI builds tiny models (the preset options otherwise)."""
    real = densedino.create_backbone
    monkeypatch.setattr(densedino, 'create_backbone', lambda name, checkpoint=None, **kw: real(
        name, checkpoint=checkpoint, **kw, **(TINY_CONVNEXT if 'convnext' in name else TINY)))


@pytest.mark.parametrize('mode,name', [
    ('pca', 'dinov2_vits14_reg'), ('pca', 'dinov3_convnext_tiny'), ('attention', 'dinov3_vits16'),
    ('similarity', 'dino_vits16')])
def test_cli_writes_a_figure_for_non_square_images(tmp_path, capsys, tiny_factory, mode, name):
    imgs = [write_png(tmp_path / 'a.png', 50, 90), write_png(tmp_path / 'b.png', 40, 72, 1)]
    out = tmp_path / 'fig' / f'{mode}.png'
    extra = {'pca': ['--fg-threshold', '0'], 'attention': ['--threshold', '0.6'],
             'similarity': ['--query', '10', '20']}[mode]
    cli(mode, [*imgs, '--backbone', name, '--size', '0', '--out', str(out), *extra])
    fig = cv2.imread(str(out))
    cols = {'pca': 3, 'attention': 4, 'similarity': 2}[mode]
    bars = {'pca': 0, 'attention': 3, 'similarity': 1}[mode]  # maps get a colour bar each
    key = 0 if mode == 'pca' else KEY_INCHES  # the outline / query mark's legend
    # panels keep the widest image's aspect (90 / 50): 2.2 in high, 2.2 * 1.8 in wide, 150 dpi
    width = cols * 2.2 * 1.8 + bars * COLORBAR_INCHES
    height = (2 * 2.2 + TITLE_INCHES + key) * 150
    assert abs(fig.shape[0] - height) <= 1 and abs(fig.shape[1] - width * 150) <= 1
    err = capsys.readouterr().err
    assert RANDOM_WARNING in err


def test_cli_loads_an_exported_teacher_with_its_overrides(tmp_path, capsys):
    """The architecture of a pretraining run comes from --overrides (no factory patching)."""
    overrides = dict(depth=1, embed_dim=32, num_heads=2, img_size=56)
    source = densedino.create_backbone('dinov2_vits14', **overrides)
    torch.save(source.state_dict(), tmp_path / 'teacher.pth')
    out = tmp_path / 'pca.png'
    cli('pca', [write_png(tmp_path / 'a.png', 50, 90), '--backbone', 'dinov2_vits14', '--size', '0',
                '--checkpoint', str(tmp_path / 'teacher.pth'), '--out', str(out),
                '--overrides', *[f'{k}={v}' for k, v in overrides.items()]])
    assert out.is_file() and RANDOM_WARNING not in capsys.readouterr().err


def test_cli_errors_are_one_line_naming_the_file(tmp_path, capsys, tiny_factory):
    good = write_png(tmp_path / 'a.png', 50, 90)
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\x00' * 10)
    with pytest.raises(SystemExit) as exc:
        cli('pca', [good, str(bad), '--backbone', 'dinov2_vits14'])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'broken.jpg' in err[0] and err[0].startswith('error:')
    with pytest.raises(SystemExit):
        cli('attention', [good, '--backbone', 'dinov3_convnext_tiny', '--out',
                          str(tmp_path / 'x.png')])
    err = capsys.readouterr().err
    assert 'no self-attention' in err and RANDOM_WARNING in err


def test_pca_script_runs_as_a_program(tmp_path):
    img = write_png(tmp_path / 'wide.png', 50, 90)
    out = tmp_path / 'pca.png'
    run = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'pca.py'), img, '--backbone',
                          'dino_vits16', '--size', '0', '--out', str(out)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert RANDOM_WARNING in run.stderr and out.is_file()


def test_attention_rows_on_demand_equal_the_full_matrix():
    model = densedino.create_backbone('dinov2_vits14_reg', **TINY).eval()
    x = torch.randn(1, 3, 42, 56)
    with torch.no_grad():
        full = model.get_last_selfattention(x)
        first = model.get_last_selfattention(x, n_queries=1)
    assert first.shape == (*full.shape[:2], 1, full.shape[-1])
    torch.testing.assert_close(first, full[:, :, :1], rtol=0, atol=1e-6)
