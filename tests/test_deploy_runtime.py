"""Deployed models at run time: the demos with --runtime onnx, INT8 quantisation through
OnnxModel, and tools/benchmark_deploy.py --smoke (tiny models throughout)."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from densedino.apis import init_model  # noqa: E402
from densedino.datasets import SceneConfig, SceneGenerator  # noqa: E402
from densedino.deploy import OnnxModel, export_onnx, quantize_dynamic_int8  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = {'model.backbone.arch_overrides': dict(depth=2, embed_dim=32, num_heads=2),
        'model.backbone.out_indices': [0, 1], 'model.backbone.pretrained': False,
        'model.backbone.checkpoint': None, 'model.test_cfg.mode': 'whole'}
SIZE = (56, 84)
#: INT8 vs fp32 on the tiny model: mean |depth difference| over the depth range's width
INT8_MEAN_BOUND = 0.01


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scenes(count, size=SIZE, seed=3):
    gen = SceneGenerator(SceneConfig(image_size=size), seed=seed)
    return [gen[i] for i in range(count)]


@pytest.fixture(scope='module')
def depth_files(tmp_path_factory):
    """A tiny synthetic_linear depth model exported at 56x84 (fixed) and its INT8 copy."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('depth_onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = init_model(osp.join(REPO, 'configs/depth/synthetic_linear.py'), device='cpu',
                           cfg_options=TINY)
        export_onnx(model, str(folder / 'depth.onnx'), height=SIZE[0], width=SIZE[1])
    counts = quantize_dynamic_int8(folder / 'depth.onnx', folder / 'depth_int8.onnx')
    return folder / 'depth.onnx', folder / 'depth_int8.onnx', counts


def test_depth_demo_onnx_writes_every_frame(depth_files, tmp_path):
    demo = _load('demo/webcam_depth.py', 'webcam_depth_onnx')
    frames = [np.ascontiguousarray(s.image[..., ::-1]) for s in _scenes(7, size=(60, 80))]
    video = str(tmp_path / 'in.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5.0, (80, 60))
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = str(tmp_path / 'depth.mp4')
    args = demo.parse_args(['--source', video, '--runtime', 'onnx', '--onnx',
                            str(depth_files[0]), '--no-show', '--out', out])
    stats = demo.run(args)  # 60x80 frames: resized to the export's 56x84
    assert stats['frames'] == len(frames) and stats['dropped'] == 0
    assert stats['precision'] == 'onnx' and stats['latency_p90_ms'] >= stats['latency_median_ms']
    cap = cv2.VideoCapture(out)
    read = 0
    while cap.read()[0]:
        read += 1
    assert read == len(frames)


def test_depth_demo_size_and_one_line_errors(depth_files, monkeypatch, tmp_path):
    demo = _load('demo/webcam_depth.py', 'webcam_depth_onnx_errors')
    assert demo.frame_size((240, 320, 3), [224]) == (224, 299)
    assert demo.frame_size((240, 320, 3), [224], multiple=14) == (224, 294)
    assert demo.frame_size((240, 320, 3), [100, 90], fixed=(56, 84)) == (56, 84)
    parse = demo.parse_args
    with pytest.raises(ValueError, match='--runtime onnx needs --onnx'):
        demo.check_inputs(parse(['--runtime', 'onnx']))
    with pytest.raises(ValueError, match='drop --model, --config'):
        demo.check_inputs(parse(['--runtime', 'onnx', '--onnx', str(depth_files[0]),
                                 '--config', 'x.py']))
    with pytest.raises(FileNotFoundError, match='ONNX file no/such.onnx does not exist'):
        demo.check_inputs(parse(['--runtime', 'onnx', '--onnx', 'no/such.onnx']))
    with pytest.raises(ValueError, match='--size takes H W or N'):
        demo.check_inputs(parse(['--onnx', 'a.onnx', '--runtime', 'onnx', '--size', '1', '2',
                                 '3']))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'onnxruntime' else real(name, *a))
    with pytest.raises(ImportError, match=r'pip install -e \.\[deploy\]'):
        demo.check_inputs(parse(['--runtime', 'onnx', '--onnx', str(depth_files[0])]))
    monkeypatch.undo()
    proc = subprocess.run([sys.executable, 'demo/webcam_depth.py', '--source', str(tmp_path),
                           '--runtime', 'onnx', '--onnx', 'no/such.onnx', '--no-show'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1 and 'does not exist' in err[0], proc.stderr


def test_image_seg_onnx_writes_the_torch_labels(tmp_path):
    demo = _load('demo/image_seg.py', 'image_seg_onnx')
    config = tmp_path / 'tiny_seg.py'
    overrides = {k.split('.', 2)[2]: v for k, v in TINY.items() if k.startswith('model.backbone')}
    config.write_text(f"_base_ = [{osp.join(REPO, 'configs/seg/synthetic_linear.py')!r}]\n"
                      f"model = dict(backbone={overrides!r}, test_cfg=dict(mode='whole'))\n")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = init_model(str(config), device='cpu')
        torch.save({'state_dict': model.state_dict(),
                    'meta': {'dataset_meta': model.dataset_meta}}, tmp_path / 'tiny.pth')
        export_onnx(model, str(tmp_path / 'seg.onnx'), height=SIZE[0], width=SIZE[1])
    image = str(tmp_path / 'scene.png')
    cv2.imwrite(image, np.ascontiguousarray(_scenes(1)[0].image[..., ::-1]))
    outs = {}
    for runtime, extra in (('torch', [str(config), str(tmp_path / 'tiny.pth')]),
                           ('onnx', ['--onnx', str(tmp_path / 'seg.onnx')])):
        outs[runtime] = str(tmp_path / f'{runtime}.png')
        args = demo.parse_args([image, *extra, '--runtime', runtime, '--out', outs[runtime],
                                '--opacity', '1', '--no-legend'])
        demo.main(args)
    torch_png, onnx_png = cv2.imread(outs['torch']), cv2.imread(outs['onnx'])
    assert torch_png.shape == onnx_png.shape == (*SIZE, 3)
    assert np.array_equal(torch_png, onnx_png)
    with pytest.raises(ValueError, match='drop CONFIG, CHECKPOINT'):
        demo.check_inputs(demo.parse_args([image, str(config), '--runtime', 'onnx', '--onnx',
                                           str(tmp_path / 'seg.onnx')]))


def test_int8_stays_within_the_bound(depth_files):
    fp32_path, int8_path, counts = depth_files
    assert counts['quantized'] >= 8  # qkv, proj, fc1, fc2 of both blocks
    fp32, int8 = OnnxModel(fp32_path), OnnxModel(int8_path)
    assert int8.metadata['densedino.quantized'].startswith('dynamic int8')
    assert int8.task == 'depth' and int8.export_size == fp32.export_size
    low, high = fp32.depth_range
    for scene in _scenes(3):
        bgr = np.ascontiguousarray(scene.image[..., ::-1])
        a = fp32(bgr).pred_depth_map.data[0].numpy()
        b = int8(bgr).pred_depth_map.data[0].numpy()
        assert a.shape == b.shape == SIZE
        assert np.abs(a - b).mean() <= INT8_MEAN_BOUND * (high - low)
    with pytest.raises(ValueError, match='not a densedino export'):
        import onnx
        bare = onnx.load(str(fp32_path))
        del bare.metadata_props[:]
        onnx.save(bare, str(fp32_path) + '.bare.onnx')
        quantize_dynamic_int8(str(fp32_path) + '.bare.onnx', str(fp32_path) + '.q.onnx')


def test_benchmark_smoke_has_every_variant(tmp_path):
    from densedino.models.backbones import bf16_matmul_mode
    out = tmp_path / 'smoke.json'
    proc = subprocess.run([sys.executable, 'tools/benchmark_deploy.py', '--smoke', '--out',
                           str(out), '--workdir', str(tmp_path / 'files')], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    expected = {'torch_fp32', 'torch_compile', 'ort_fp32', 'ort_int8'}
    if bf16_matmul_mode(torch.device('cpu')) == 'native':
        expected.add('torch_bf16')
    (case,) = result['cases']
    assert set(case['variants']) == expected
    for row in case['variants'].values():
        assert row['images_per_s'] > 0 and row['max_abs_diff_m'] >= 0
    assert case['variants']['ort_fp32']['max_abs_diff_m'] < 1e-3
    assert result['demo']['ort_fp32']['frames'] == 4 and result['demo']['ort_int8']['fps'] > 0
    assert result['machine']['cpu']
