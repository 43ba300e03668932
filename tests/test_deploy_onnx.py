"""ONNX export of whole models (densedino.deploy): exact position resampling, ORT parity per
family and head, OnnxModel vs inference_model, the tool's one-line errors."""
import importlib.util
import itertools
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from densedino.apis import inference_model, init_model  # noqa: E402
from densedino.deploy import ExportError, OnnxModel, OnnxRuntimeError, export_onnx  # noqa: E402
from densedino.models.layers.pos_embed import bicubic_resample_matrix  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_VIT = dict(depth=2, embed_dim=32, num_heads=2)


# ------------------------------------------------------------------ resampling
@pytest.mark.parametrize('offset,antialias', list(itertools.product((0.0, 0.1), (False, True))))
def test_resample_matrices_equal_interpolate(offset, antialias):
    torch.manual_seed(0)
    for side in (4, 16, 37):
        grid = torch.randn(side, side, 8)
        for h, w in [(side, side), (2, 3), (3, 7), (side + 5, side - 1), (60, 17),
                     (3 * side, side), (side // 2 + 1, 2 * side)]:
            kw = dict(scale_factor=((h + offset) / side, (w + offset) / side)) if offset \
                else dict(size=(h, w))
            ref = F.interpolate(grid.permute(2, 0, 1)[None], mode='bicubic',
                                antialias=antialias, **kw)[0].permute(1, 2, 0)
            a_h = bicubic_resample_matrix(h, side, offset=offset, antialias=antialias)
            a_w = bicubic_resample_matrix(w, side, offset=offset, antialias=antialias)
            out = torch.einsum('ai,ijd,bj->abd', a_h, grid, a_w)
            # fp32 rounding of the cubic weights: PyTorch's fp32 and fp64 differ as much
            assert (out - ref).abs().max() <= 1e-5 * ref.abs().max(), (side, h, w)


def test_resample_export_branch_matches_eager(monkeypatch):
    from densedino.models.layers import resample_abs_pos_embed
    pos = torch.randn(1, 16 * 16, 8) * 0.1
    eager = resample_abs_pos_embed(pos, (5, 9), offset=0.1)
    monkeypatch.setattr(torch.compiler, 'is_exporting', lambda: True)
    exported = resample_abs_pos_embed(pos, (5, 9), offset=0.1)
    assert (exported - eager).abs().max() < 1e-6
    # the trained grid is kept as it is (the ViT skips resampling for it in eager mode)
    assert torch.equal(resample_abs_pos_embed(pos, (16, 16), offset=0.1), pos)


# --------------------------------------------------------------- export parity
CASES = {
    # name: (config, arch, backbone overrides, head overrides, export size)
    'dinov1_seg_linear': ('configs/seg/synthetic_linear.py', 'dino_vits16',
                          dict(out_indices=[0, 1]), {}, (64, 96)),
    'dinov2reg_depth_linear': ('configs/depth/synthetic_linear.py', 'dinov2_vits14_reg',
                               dict(out_indices=[0, 1]), {}, (56, 84)),
    'dinov3_depth_dpt': ('configs/depth/nyu_dpt.py', 'dinov3_vits16',
                         dict(out_indices=[0, 1, 1, 1]),
                         dict(post_process_channels=[4, 8, 16, 32], channels=16), (64, 96)),
    'convnext_seg_linear': ('configs/seg/synthetic_linear.py', 'dinov3_convnext_tiny',
                            dict(out_indices=[3], arch_overrides=dict(
                                depths=[1, 1, 1, 1], dims=[8, 16, 24, 32])), {}, (64, 96)),
}


def build_tiny(name):
    config, arch, backbone, head, _ = CASES[name]
    opts = {'model.backbone.arch': arch, 'model.backbone.pretrained': False,
            'model.backbone.checkpoint': None, 'model.backbone.arch_overrides': TINY_VIT,
            'model.test_cfg.mode': 'whole'}
    opts.update({f'model.backbone.{k}': v for k, v in backbone.items()})
    opts.update({f'model.decode_head.{k}': v for k, v in head.items()})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return init_model(osp.join(REPO, config), cfg_options=opts)


@pytest.fixture(scope='module', params=list(CASES))
def exported(request, tmp_path_factory):
    name = request.param
    model = build_tiny(name)
    path = str(tmp_path_factory.mktemp('onnx') / f'{name}.onnx')
    height, width = CASES[name][-1]
    report = export_onnx(model, path, height=height, width=width, dynamic=True)
    return name, model, path, report


def test_ort_matches_pytorch_on_three_sizes(exported):
    name, _, _, report = exported
    assert report.checker == 'ok'
    assert len(report.shapes) == 3 and len({s[2:] for s in report.shapes}) == 3
    assert all(s[2] != s[3] for s in report.shapes[1:])  # non-square
    assert max(report.rel_diffs) < 1e-4, (name, report.max_diffs)


def test_onnx_model_equals_inference_model(exported, tmp_path):
    name, model, path, _ = exported
    onnx_model = OnnxModel(path, providers=['CPUExecutionProvider'])
    multiple = max(onnx_model.size_multiple, 1)
    size = (multiple * 5, multiple * 7) if multiple > 1 else (50, 75)  # 50x75: no multiple
    image = (np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8)
    file = str(tmp_path / 'img.png')
    cv2.imwrite(file, image)
    ref, got = inference_model(model, file), onnx_model(file)
    if onnx_model.task == 'seg':
        assert torch.equal(got.pred_sem_seg.data, ref.pred_sem_seg.data)
        assert torch.allclose(got.seg_logits.data, ref.seg_logits.data, atol=1e-4)
    else:
        assert got.pred_depth_map.data.shape == ref.pred_depth_map.data.shape
        assert torch.allclose(got.pred_depth_map.data, ref.pred_depth_map.data, rtol=1e-4,
                              atol=1e-5)
        assert got.metainfo.get('depth_range') == ref.metainfo.get('depth_range')
    assert onnx_model.dataset_meta['classes'] == tuple(model.dataset_meta['classes'])
    with pytest.raises(OnnxRuntimeError, match='not a multiple|too small'):
        onnx_model.run(np.zeros((1, 3, multiple * 3 + 1 if multiple > 1 else 8, 64),
                                np.float32))


# ---------------------------------------------------------------------- tool
def load_tool():
    spec = importlib.util.spec_from_file_location(
        'export_onnx_tool', osp.join(REPO, 'tools', 'export_onnx.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tool')
    model = build_tiny('dinov1_seg_linear')
    config, ckpt = str(folder / 'tiny.py'), str(folder / 'tiny.pth')
    model.cfg.dump(config)
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': dict(model.dataset_meta)}}, ckpt)
    bad = folder / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    return config, ckpt, str(bad), folder


def run_tool(argv, capsys):
    tool = load_tool()
    with pytest.raises(SystemExit) as exit_info:
        tool.run_cli(tool.main, tool.parse_args(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return exit_info.value.code, err


def test_tool_refuses_size_off_the_patch_grid(tiny_files, capsys):
    config, ckpt, _, folder = tiny_files
    code, err = run_tool([config, ckpt, '--out', str(folder / 'a.onnx'), '--height', '50'],
                         capsys)
    assert code == 1 and len(err) == 1
    assert 'not a multiple of the patch size 16' in err[0] and '50x224' in err[0]


def test_tool_bad_checkpoint_one_line(tiny_files, capsys):
    config, _, bad, folder = tiny_files
    code, err = run_tool([config, bad, '--out', str(folder / 'b.onnx')], capsys)
    assert code == 1 and len(err) == 1 and 'bad.pth' in err[0]


def test_export_error_names_size_and_difference(monkeypatch, tmp_path):
    from densedino.deploy import export as export_module
    model = build_tiny('dinov1_seg_linear')
    monkeypatch.setattr(export_module, 'compare_with_torch', lambda *a, **k: (0.5, 0.25))
    with pytest.raises(ExportError, match=r'at 1x3x32x48: max difference 0.5 \(relative 0.25'):
        export_onnx(model, str(tmp_path / 'm.onnx'), height=32, width=48)
