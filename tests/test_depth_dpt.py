"""DPTDepthHead (DINOv2 DPT / Depth-Anything-V2), its checkpoints, configs and resize transform.

References: mmseg's ``DPTHead`` (module names, shapes and trunk numerics of DINOv2's head) and
transformers' ``DepthAnythingForDepthEstimation`` with random weights (Depth-Anything-V2 end to
end, loaded through the Hugging Face and the official key layouts).
"""
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from safetensors.torch import load_file

import densedino  # noqa: F401
from densedino import CheckpointError
from densedino.datasets import ResizeShortSideToMultiple
from densedino.datasets.resize import resize_to_multiple_size
from densedino.models import load_depth_anything_v2
from densedino.models.heads import DPTDepthHead, load_head_checkpoint
from densedino.registry import MODELS

transformers = pytest.importorskip('transformers')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ATOL = 1e-4
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
# Tiny Depth-Anything: 64-wide, 4-block DINOv2 trained for 56 px (grid 4 x 4).
TINY_DIM, TINY_NECK, TINY_FUSION, TINY_HEAD_HIDDEN = 64, [8, 16, 32, 64], 16, 8


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """Tiny convs: thread start-up and contention cost more than they save (100x when the
    machine is busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _perturb(module: torch.nn.Module, scale: float = 0.05) -> torch.nn.Module:
    """Randomise every parameter (zero biases, unit norms would hide mapping mistakes).

    Weight tensors are redrawn from N(0, 1 / fan_in), which keeps the signal's scale through
    deep conv stacks (transformers' N(0, 0.02) init makes a DPT's output a constant); vectors
    (biases, norms, layer scales) get N(0, ``scale``) noise.
    """
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1:
                p.normal_(0, p[0].numel() ** -0.5)
            else:
                p.add_(torch.randn_like(p) * scale)
    return module.eval()


def _estimator(head: dict, backbone: dict) -> torch.nn.Module:
    init_default_scope('densedino')
    cfg = dict(
        type='DinoDepthEstimator',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=MEAN, std=STD, bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=0),
        backbone=dict(type='DinoBackbone', arch='dinov2_vits14', frozen=True,
                      out_indices=[0, 1, 2, 3], **backbone),
        decode_head=dict(type='DPTDepthHead', **head))
    return MODELS.build(cfg).eval()


def _dinov2_estimator(**head) -> torch.nn.Module:
    """DINOv2 depth setting: ViT-S width (384), 4 blocks, no final norm, class tokens."""
    return _estimator(dict(embed_dims=384, variant='dinov2', **head),
                      dict(arch_overrides=dict(depth=4), norm=False))


def _mmseg_dpt(readout_type: str = 'project', dim: int = 384):
    from mmseg.models.decode_heads import DPTHead
    return DPTHead(in_channels=(dim,) * 4, in_index=(0, 1, 2, 3),
                   input_transform='multiple_select', channels=256, embed_dims=dim,
                   post_process_channels=[dim // 8, dim // 4, dim // 2, dim],
                   readout_type=readout_type, num_classes=1, norm_cfg=None).eval()


def _conv_depth_shapes(channels: int = 256) -> dict:
    """DINOv2's ``HeadDepth`` (conv3x3 c->c/2, upsample, conv3x3 ->32, ReLU, conv1x1 ->1)."""
    return {'conv_depth.head.0.weight': (channels // 2, channels, 3, 3),
            'conv_depth.head.0.bias': (channels // 2,),
            'conv_depth.head.2.weight': (32, channels // 2, 3, 3),
            'conv_depth.head.2.bias': (32,),
            'conv_depth.head.4.weight': (1, 32, 1, 1),
            'conv_depth.head.4.bias': (1,)}


def _official_dinov2_dpt_file(dim: int) -> dict:
    """The layout of dinov2_vit*14_{nyu,kitti}_dpt_head.pth: mmseg DPTHead names + conv_depth."""
    shapes = {k: tuple(v.shape) for k, v in _mmseg_dpt('project', dim).state_dict().items()
              if not k.startswith('conv_seg.')}
    shapes.update(_conv_depth_shapes())
    return {'meta': {'mmcv_version': '1.x'},
            'state_dict': {'decode_head.' + k: torch.randn(s) for k, s in shapes.items()}}


def _features(dims=384, grid=(5, 7), batch=2):
    return tuple((torch.randn(batch, dims, *grid), torch.randn(batch, dims)) for _ in range(4))


# ----------------------------------------------------------------- DINOv2 DPT head
def test_dinov2_head_keys_and_shapes_match_mmseg_dpthead():
    ours = {k: tuple(v.shape) for k, v in DPTDepthHead(embed_dims=384).state_dict().items()}
    ref = {k: tuple(v.shape) for k, v in _mmseg_dpt().state_dict().items()}
    assert len(ours) == 56
    assert set(ref) - set(ours) == {'conv_seg.weight', 'conv_seg.bias'}
    assert {k: ours[k] for k in set(ours) - set(ref)} == _conv_depth_shapes()
    assert {k: ours[k] for k in ref if k in ours} == {k: v for k, v in ref.items() if k in ours}
    assert not any(k.startswith('fusion_blocks.0.res_conv_unit1') for k in ours)


@pytest.mark.parametrize('readout', ['project', 'add', 'ignore'])
def test_dinov2_trunk_matches_mmseg_dpthead_on_odd_grids(readout):
    ref = _perturb(_mmseg_dpt(readout))
    head = DPTDepthHead(embed_dims=384, readout_type=readout, min_depth=0.01).eval()
    shared = {k: v for k, v in ref.state_dict().items() if not k.startswith('conv_seg.')}
    head.load_state_dict({**head.state_dict(), **shared}, strict=True)
    _perturb(head.conv_depth)
    feats = _features(grid=(3, 5), batch=1)  # levels 12x20, 6x10, 3x5, 2x3: skips get resized
    trunk = {}
    head.project.register_forward_hook(lambda m, i, o: trunk.update(out=o))
    with torch.no_grad():
        depth = head(feats)
        x = [ref.convs[i](f) for i, f in enumerate(ref.reassemble_blocks(
            [(f.clone(), c) for f, c in feats]))]
        out = ref.fusion_blocks[0](x[-1])
        for i in range(1, 4):
            out = ref.fusion_blocks[i](out, x[-(i + 1)])
        out = ref.project(out)
        torch.testing.assert_close(trunk['out'], out, atol=ATOL, rtol=1e-5)
        # DINOv2's HeadDepth then relu(x) + min_depth
        h = head.conv_depth.head
        y = F.interpolate(h[0](out), scale_factor=2, mode='bilinear', align_corners=True)
        expected = F.relu(h[4](F.relu(h[2](y)))) + 0.01
    assert depth.shape == (1, 1, 64, 96)
    torch.testing.assert_close(depth, expected, atol=ATOL, rtol=1e-5)


def test_readout_needs_class_tokens_and_only_project_has_weights():
    maps = [f for f, _ in _features(dims=32, grid=(3, 5))]
    small = dict(embed_dims=32, channels=16, post_process_channels=[4, 8, 16, 32])
    with pytest.raises(ValueError, match="readout_type='project' needs .*class tokens"):
        DPTDepthHead(**small)(maps)
    # levels 12x20, 6x10, 3x5, 2x3; fusion x2 from 2x3 four times, head x2: 64x96
    assert DPTDepthHead(readout_type='ignore', **small)(maps).shape == (2, 1, 64, 96)
    for readout in ('ignore', 'add'):
        keys = DPTDepthHead(readout_type=readout, **small).state_dict()
        assert not any('readout_projects' in k for k in keys)
        assert len(keys) == 48
    with pytest.raises(ValueError, match="readout_type must be one of .* got 'concat'"):
        DPTDepthHead(readout_type='concat', **small)


def test_official_dinov2_dpt_head_file_loads_strictly(tmp_path):
    model = _dinov2_estimator()
    ckpt = _official_dinov2_dpt_file(384)
    assert len(ckpt['state_dict']) == 56
    torch.save(ckpt, tmp_path / 'dinov2_vits14_nyu_dpt_head.pth')
    load_head_checkpoint(model, str(tmp_path / 'dinov2_vits14_nyu_dpt_head.pth'))
    sd = ckpt['state_dict']
    assert torch.equal(model.decode_head.conv_depth.head[4].weight,
                       sd['decode_head.conv_depth.head.4.weight'])
    assert torch.equal(model.decode_head.reassemble_blocks.readout_projects[2][0].weight,
                       sd['decode_head.reassemble_blocks.readout_projects.2.0.weight'])

    torch.save(_official_dinov2_dpt_file(768), tmp_path / 'dinov2_vitb14_nyu_dpt_head.pth')
    with pytest.raises(CheckpointError, match=r'dinov2_vitb14_nyu_dpt_head\.pth does not fit .*'
                                              r'DPTDepthHead.*shape mismatch.*\(96, 768, 1, 1\)'):
        load_head_checkpoint(model, str(tmp_path / 'dinov2_vitb14_nyu_dpt_head.pth'))


def test_dinov2_estimator_predicts_at_input_size_for_odd_grids():
    model = _dinov2_estimator(min_depth=1e-3, max_depth=10.0)
    x = torch.randn(1, 3, 70, 98)  # grid 5 x 7
    meta = dict(img_shape=(70, 98), ori_shape=(35, 49), pad_shape=(70, 98))
    with torch.no_grad():
        native = model.decode_head(model.extract_feat(x))
        out = model.predict(x, [SegDataSample(metainfo=meta)])[0].pred_depth_map.data
    assert native.shape == (1, 1, 96, 128)
    assert out.shape == (1, 35, 49)
    assert out.min() >= 1e-3 and out.max() <= 10.0


# ------------------------------------------------------ options and variant presets
def test_variant_presets_and_overrides():
    dav2 = DPTDepthHead(embed_dims=384, variant='depth_anything_v2', relative=True)
    assert (dav2.channels, dav2.post_process_channels) == (64, [48, 96, 192, 384])
    assert (dav2.readout_type, dav2.fusion_upsample, dav2.head_upsample, dav2.output_act) == \
        ('ignore', 'next', 'patch', 'relu')
    assert dav2.project is None and dav2.fusion_blocks[1].res_conv_unit1.conv1.conv.bias is not None
    metric = DPTDepthHead(embed_dims=1024, variant='depth_anything_v2', max_depth=80.0)
    assert (metric.channels, metric.post_process_channels, metric.output_act) == \
        (256, [256, 512, 1024, 1024], 'sigmoid_times_max')
    mixed = DPTDepthHead(embed_dims=384, variant='depth_anything_v2', readout_type='project',
                         channels=32)
    assert mixed.readout_type == 'project' and mixed.channels == 32
    assert DPTDepthHead(embed_dims=768).post_process_channels == [96, 192, 384, 768]
    with pytest.raises(ValueError, match="variant must be one of .* got 'dpt'"):
        DPTDepthHead(variant='dpt')
    with pytest.raises(ValueError, match='no preset widths for embed_dims=64'):
        DPTDepthHead(embed_dims=64, variant='depth_anything_v2')
    with pytest.raises(ValueError, match=r'four levels, got post_process_channels=\[8, 16\]'):
        DPTDepthHead(embed_dims=64, channels=16, post_process_channels=[8, 16])


@pytest.mark.parametrize('size', [(70, 42), (84, 126)])
def test_depth_anything_head_outputs_the_input_size(size):
    grid = (size[0] // 14, size[1] // 14)
    head = DPTDepthHead(embed_dims=384, variant='depth_anything_v2', max_depth=20.0)
    out = head([f for f, _ in _features(grid=grid, batch=1)])
    assert out.shape == (1, 1, *size)
    assert 0 <= out.min() and out.max() <= 20.0


# ------------------------------------------------- Depth-Anything-V2 vs transformers
def _hf_model(kind: str):
    backbone = transformers.Dinov2Config(
        hidden_size=TINY_DIM, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=4,
        image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], apply_layernorm=True,
        reshape_hidden_states=False, layer_norm_eps=1e-6)
    cfg = transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=TINY_DIM, neck_hidden_sizes=TINY_NECK,
        fusion_hidden_size=TINY_FUSION, head_hidden_size=TINY_HEAD_HIDDEN,
        depth_estimation_type=kind, max_depth=20 if kind == 'metric' else 1)
    return _perturb(transformers.DepthAnythingForDepthEstimation(cfg))


def _tiny_dav2_head(kind: str) -> dict:
    head = dict(variant='depth_anything_v2', embed_dims=TINY_DIM, channels=TINY_FUSION,
                post_process_channels=list(TINY_NECK), head_hidden=TINY_HEAD_HIDDEN,
                align_corners=True)
    head.update(dict(relative=True) if kind == 'relative' else dict(min_depth=0.0, max_depth=20.0))
    return head


def _tiny_dav2_estimator(kind: str, **overrides) -> torch.nn.Module:
    head = _tiny_dav2_head(kind)
    head.update(overrides)
    # transformers' Dinov2 resamples positions with size= (no +0.1 offset; docs/protocols.md
    # section 1.2).
    backbone = dict(arch_overrides=dict(embed_dim=TINY_DIM, depth=4, num_heads=2, img_size=56,
                                        interpolate_offset=0.0), norm=True)
    return _estimator(head, backbone)


def _official_from_hf(sd: dict) -> dict:
    """Rename a transformers state dict to the official release layout (test-side inverse)."""
    from densedino.models.backbones.convert import from_hf_dinov2
    out = {'pretrained.' + k: v for k, v in from_hf_dinov2(sd).items()}
    rules = [
        (r'neck\.reassemble_stage\.layers\.(\d)\.projection\.', r'projects.\1.'),
        (r'neck\.reassemble_stage\.layers\.(\d)\.resize\.', r'resize_layers.\1.'),
        (r'neck\.convs\.(\d)\.', lambda m: f'scratch.layer{int(m[1]) + 1}_rn.'),
        (r'neck\.fusion_stage\.layers\.(\d)\.projection\.',
         lambda m: f'scratch.refinenet{4 - int(m[1])}.out_conv.'),
        (r'neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.convolution(\d)\.',
         lambda m: f'scratch.refinenet{4 - int(m[1])}.resConfUnit{m[2]}.conv{m[3]}.'),
        (r'head\.conv1\.', 'scratch.output_conv1.'),
        (r'head\.conv2\.', 'scratch.output_conv2.0.'),
        (r'head\.conv3\.', 'scratch.output_conv2.2.'),
    ]
    for key, value in sd.items():
        for pattern, repl in rules:
            new, hits = re.subn('^' + pattern, repl, key)
            if hits:
                out['depth_head.' + new] = value
                break
    return out


@pytest.fixture(scope='module', params=['relative', 'metric'])
def hf_pair(request, tmp_path_factory):
    """A perturbed transformers model saved as an HF directory and as an official file."""
    torch.manual_seed(1)
    kind = request.param
    hf = _hf_model(kind)
    root = tmp_path_factory.mktemp(f'dav2_{kind}')
    hf.save_pretrained(root / 'hf', safe_serialization=True)
    # the saved file, not hf.state_dict(): transformers may rename modules in memory
    official = _official_from_hf(load_file(str(root / 'hf' / 'model.safetensors')))
    assert 'depth_head.scratch.refinenet4.resConfUnit1.conv1.weight' in official
    torch.save(official, root / f'depth_anything_v2_{kind}_tiny.pth')
    return kind, hf, str(root / 'hf'), str(root / f'depth_anything_v2_{kind}_tiny.pth')


@pytest.mark.parametrize('layout', ['hf', 'official'])
@pytest.mark.parametrize('size', [(56, 56), (70, 42)], ids=['trained_grid', 'odd_non_square'])
def test_depth_anything_v2_matches_transformers(hf_pair, layout, size):
    kind, hf, hf_dir, official = hf_pair
    model = _tiny_dav2_estimator(kind)
    fmt = load_depth_anything_v2(model, hf_dir if layout == 'hf' else official)
    assert fmt == ('dav2_hf' if layout == 'hf' else 'dav2_official')
    x = torch.randn(2, 3, *size)
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size)
    small = dict(meta, ori_shape=(size[0] // 2, size[1] // 3))
    with torch.no_grad():
        ref = hf(pixel_values=x).predicted_depth
        native = model.decode_head(model.extract_feat(x))
        samples = model.predict(x, [SegDataSample(metainfo=meta) for _ in range(2)])
        resized = model.predict(x, [SegDataSample(metainfo=small) for _ in range(2)])
    assert native.shape == (2, 1, *size)
    torch.testing.assert_close(native[:, 0], ref, atol=ATOL, rtol=0)
    via_estimator = torch.stack([s.pred_depth_map.data[0] for s in samples])
    torch.testing.assert_close(via_estimator, ref, atol=ATOL, rtol=0)
    # back to the image size as Depth-Anything-V2's infer_image does (align_corners=True)
    expected = F.interpolate(ref[:, None], small['ori_shape'], mode='bilinear', align_corners=True)
    torch.testing.assert_close(torch.stack([s.pred_depth_map.data for s in resized]), expected,
                               atol=ATOL, rtol=0)
    assert ref.std() > 0.05, 'degenerate reference: the comparison would prove little'
    assert (ref.min() >= 0) and (kind == 'relative' or ref.max() <= 20)


def test_depth_anything_v2_errors_name_file_and_keys(hf_pair, tmp_path):
    kind, _, hf_dir, official = hf_pair
    wide = _tiny_dav2_estimator(kind, channels=2 * TINY_FUSION)
    with pytest.raises(CheckpointError, match=r'_tiny\.pth \(dav2_official format\) does not fit '
                                              r'DinoDepthEstimator.*shape mismatch .*'
                                              r'decode_head\.convs\.0\.conv\.weight'):
        load_depth_anything_v2(wide, official)
    other = 'metric' if kind == 'relative' else 'relative'
    with pytest.raises(CheckpointError, match=f'depth_estimation_type={kind!r}'):
        load_depth_anything_v2(_tiny_dav2_estimator(other), hf_dir)
    torch.save({'cls_token': torch.zeros(1, 1, 64)}, tmp_path / 'backbone_only.pth')
    with pytest.raises(CheckpointError, match=r'backbone_only\.pth is not a Depth-Anything-V2'):
        load_depth_anything_v2(_tiny_dav2_estimator(kind), str(tmp_path / 'backbone_only.pth'))
    sd = torch.load(official)
    sd.pop('depth_head.scratch.output_conv1.bias')
    torch.save(sd, tmp_path / 'partial.pth')
    with pytest.raises(CheckpointError, match=r'partial\.pth .*missing keys '
                                              r'decode_head\.conv_depth\.head\.0\.bias'):
        load_depth_anything_v2(_tiny_dav2_estimator(kind), str(tmp_path / 'partial.pth'))


# ------------------------------------------------------------ resize and configs
@pytest.mark.parametrize('hw,expected', [((480, 640), (518, 686)), ((240, 320), (518, 686)),
                                         ((1080, 1920), (518, 924)), ((375, 1242), (518, 1722)),
                                         ((518, 518), (518, 518))])
def test_resize_to_multiple_sizes(hw, expected):
    assert resize_to_multiple_size(*hw, 518, 14) == expected


def test_resize_to_multiple_transform():
    img = np.random.randint(0, 256, (60, 88, 3), np.uint8)
    depth = np.random.rand(60, 88).astype(np.float32)
    out = ResizeShortSideToMultiple()(dict(img=img, gt_depth_map=depth, seg_fields=['gt_depth_map']))
    assert out['img'].shape == (518, 756, 3) and out['img'].dtype == np.float32
    assert out['img_shape'] == (518, 756) and out['gt_depth_map'].shape == (518, 756)
    assert set(np.unique(out['gt_depth_map'])) <= set(np.unique(depth))
    ref = cv2.resize(img.astype(np.float32), (756, 518), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(out['img'], ref)
    with pytest.raises(ValueError, match='short_side and multiple must be positive'):
        ResizeShortSideToMultiple(multiple=0)
    kept = ResizeShortSideToMultiple(resize_annotations=False)(
        dict(img=img, gt_depth_map=depth, seg_fields=['gt_depth_map']))
    assert kept['img'].shape == (518, 756, 3) and kept['gt_depth_map'] is depth


@pytest.mark.parametrize('name,relative', [('depth_anything_v2_vits_relative', True),
                                           ('depth_anything_v2_vits_metric_indoor', False)])
def test_depth_anything_configs_run_on_an_image(tmp_path, name, relative):
    init_default_scope('densedino')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'depth', f'{name}.py'))
    cfg.model.backbone.arch_overrides = dict(depth=4)
    model = MODELS.build(cfg.model).eval()
    head = model.decode_head
    assert (head.variant, head.relative, head.channels) == ('depth_anything_v2', relative, 64)
    assert model.backbone.norm and model.backbone.out_indices == [0, 1, 2, 3]
    cv2.imwrite(str(tmp_path / 'img.png'), np.random.randint(0, 256, (30, 44, 3), np.uint8))
    data = Compose(cfg.test_pipeline)(dict(img_path=str(tmp_path / 'img.png')))
    assert tuple(data['inputs'].shape) == (3, 518, 756)
    with torch.no_grad():
        out = model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    pred = out[0].pred_depth_map
    assert isinstance(pred, PixelData) and pred.data.shape == (1, 30, 44)
    if not relative:
        assert pred.data.max() <= 20.0


def test_convert_checkpoint_cli_takes_a_whole_depth_anything_model(hf_pair, tmp_path):
    """tools/convert_checkpoint.py --depth-anything: one densedino checkpoint that init_model
    loads, with the same output as loading the release directly."""
    import tools.convert_checkpoint as convert
    from densedino.apis import init_model
    kind, _, hf_dir, _ = hf_pair
    cfg = Config.fromfile(osp.join(REPO, 'configs/depth/depth_anything_v2_vits_relative.py'))
    reference = _tiny_dav2_estimator(kind)
    cfg.model.decode_head = dict(type='DPTDepthHead', **_tiny_dav2_head(kind))
    cfg.model.backbone.arch_overrides = dict(embed_dim=TINY_DIM, depth=4, num_heads=2,
                                             img_size=56, interpolate_offset=0.0)
    config_file = str(tmp_path / 'tiny_dav2.py')
    cfg.dump(config_file)
    out = str(tmp_path / 'converted.pth')
    convert.main(convert.parse_args([config_file, '--depth-anything', hf_dir, '--out', out]))
    model = init_model(config_file, out)
    assert model.dataset_meta['classes'] == ('depth',)
    load_depth_anything_v2(reference, hf_dir)
    x = torch.randn(1, 3, 56, 70)
    with torch.no_grad():
        assert torch.equal(model.decode_head(model.extract_feat(x)),
                           reference.eval().decode_head(reference.extract_feat(x)))
    with pytest.raises(ValueError, match='either --head'):
        convert.main(convert.parse_args([config_file, '--out', out]))


@pytest.mark.parametrize('config', ['nyu_dpt', 'kitti_dpt'])
def test_released_dpt_heads_load_into_their_configs(config, tmp_path):
    """dinov2_vits14_{nyu,kitti}_dpt_head.pth (56 keys) into configs/depth/{nyu,kitti}_dpt.py."""
    init_default_scope('densedino')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'depth', f'{config}.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False, arch_overrides=dict(depth=4))
    model = MODELS.build(cfg.model)
    path = str(tmp_path / f'dinov2_vits14_{config}_head.pth')
    torch.save(_official_dinov2_dpt_file(384), path)
    load_head_checkpoint(model, path)
    assert model.decode_head.max_depth == (80.0 if config.startswith('kitti') else 10.0)
    assert model.backbone.norm is False and model.decode_head.readout_type == 'project'
