"""The demos and the feature tools take released models by name (files served locally, as in
tests/test_zoo.py): no config, no checkpoint, no conversion."""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from densedino.registry import MODELS

from .test_hub import server  # noqa: F401 (the local HTTP server)
from .test_zoo import HEAD_PATH, REPO, V2_PATH, seg_head_file, serve_file, vits_file  # noqa: F401

NYU_HEAD_PATH = '/dinov2/dinov2_vits14/dinov2_vits14_nyu_linear_head.pth'


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(path) -> str:
    rgb = np.random.default_rng(0).integers(0, 256, (42, 56, 3), dtype=np.uint8)
    cv2.imwrite(str(path), rgb)
    return str(path)


def test_image_demo_with_model_only(server, vits_file, tmp_path, capsys):  # noqa: F811
    serve_file(server, V2_PATH, vits_file)
    seg_head_file(tmp_path / 'head.pth', 384, 150)
    serve_file(server, HEAD_PATH, tmp_path / 'head.pth')
    demo = _load('demo/image_seg.py', 'image_seg_demo')
    out = tmp_path / 'overlay.png'
    demo.run_cli(demo.main, demo.parse_args([_image(tmp_path / 'img.png'), '--model',
                                             'dinov2_vits14_ade20k_linear', '--out', str(out)]))
    assert f'wrote {out}' in capsys.readouterr().out
    written = cv2.imread(str(out))
    assert written.shape[0] == 42 and written.shape[1] > 56  # the image and a class legend


def test_image_demo_model_name_errors_before_any_download(server, tmp_path, capsys):  # noqa: F811
    demo = _load('demo/image_seg.py', 'image_seg_demo')
    img = _image(tmp_path / 'img.png')
    for argv, expected in (
            ([img, '--model', 'dinov2_vits14_ade20k_lin'],
             'ValueError: --model dinov2_vits14_ade20k_lin is no released segmentation model; '
             'did you mean dinov2_vits14_ade20k_linear'),
            ([img, '--model', 'dinov2_vits14_nyu_dpt'],
             'ValueError: --model dinov2_vits14_nyu_dpt is no released segmentation model'),
            ([img, 'cfg.py', '--model', 'dinov2_vits14_ade20k_linear'],
             'ValueError: --model brings its config and weights')):
        with pytest.raises(SystemExit):
            demo.run_cli(demo.main, demo.parse_args(argv))
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f'error: {expected}'), err
    assert server.requests == []


def _nyu_linear_head_file(path) -> None:
    """The head of configs/depth/nyu_linear.py on ViT-S, in the released files' mmseg keys."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/depth/nyu_linear.py'))
    cfg.model.backbone.update(pretrained=False, checkpoint=None)
    with DefaultScope.overwrite_default_scope('densedino'):
        model = MODELS.build(cfg.model)
    torch.save({'state_dict': {k: v for k, v in model.state_dict().items()
                               if k.startswith('decode_head.')}}, path)


def test_webcam_demo_with_model_only(server, vits_file, tmp_path):  # noqa: F811
    serve_file(server, V2_PATH, vits_file)
    _nyu_linear_head_file(tmp_path / 'nyu_head.pth')
    serve_file(server, NYU_HEAD_PATH, tmp_path / 'nyu_head.pth')
    frames = tmp_path / 'frames'
    frames.mkdir()
    _image(frames / '000.png')
    demo = _load('demo/webcam_depth.py', 'webcam_depth_demo')
    args = demo.parse_args(['--source', str(frames), '--model', 'dinov2_vits14_nyu_linear',
                            '--no-show', '--out', str(tmp_path / 'depth.mp4')])
    stats = demo.run(args)
    assert stats['frames'] == 1 and osp.getsize(tmp_path / 'depth.mp4') > 0
    with pytest.raises(ValueError, match='no released depth model; did you mean '
                                         'dinov2_vits14_nyu_linear'):
        demo.run(demo.parse_args(['--source', str(frames), '--model', 'dinov2_vits14_nyu_lin']))


def test_pca_tool_with_the_released_backbone(server, vits_file, tmp_path, capsys):  # noqa: F811
    from tools.visualize_features import RANDOM_WARNING, cli
    serve_file(server, V2_PATH, vits_file)
    out = tmp_path / 'pca.png'
    cli('pca', [_image(tmp_path / 'a.png'), '--backbone', 'dinov2_vits14', '--pretrained',
                '--size', '56', '--out', str(out)])
    assert out.is_file() and RANDOM_WARNING not in capsys.readouterr().err
    assert server.requests == [V2_PATH]
    with pytest.raises(SystemExit):  # one source of weights at a time
        cli('pca', [str(tmp_path / 'a.png'), '--backbone', 'dinov2_vits14', '--pretrained',
                    '--checkpoint', str(vits_file)])
