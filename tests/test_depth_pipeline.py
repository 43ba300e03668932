"""Depth end to end: configs build, train -> test on NYU/KITTI-format folders, the numbers the
test loop reports equal a recomputation from the written predictions, a short training beats
the best constant depth, released head files load into the protocol configs, and the webcam
demo runs headless on a generated video."""
import glob
import re
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import densedino  # noqa: F401
from densedino.evaluation import depth_metrics
from densedino.models.heads import load_head_checkpoint

from .depth_fixtures import write_kitti_split, write_nyu_split

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = dict(arch_overrides=dict(depth=2, embed_dim=32, num_heads=2))
CROP = (42, 56)


def tiny_depth_cfg(config: str, data_root: str, work_dir, *, iters: int = 2,
                   crop=CROP) -> Config:
    """A depth config shrunk to a 2-block, 32-wide backbone on a fixture folder, no fixed crops."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.update(checkpoint=None, pretrained=False,
                              out_indices=[0, 1] if 'linear4' in config or 'dpt' in config
                              else 'last', **TINY)
    head = cfg.model.decode_head  # its input widths follow the backbone ('auto')
    if head.type == 'DPTDepthHead':
        cfg.model.backbone.out_indices = [0, 1, 1, 1]
        head.update(post_process_channels=[4, 8, 16, 32], channels=16)
    dataset_only = ('NYUCrop', 'KBCrop', 'RandomCrop')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, 2
        dl.dataset.data_root = data_root
        pipeline = [t for t in dl.dataset.pipeline if t['type'] not in dataset_only]
        if loader == 'train_dataloader':
            pipeline.insert(-1, dict(type='RandomCrop', crop_size=crop))
        dl.dataset.pipeline = pipeline
    for evaluator in ('val_evaluator', 'test_evaluator'):
        if cfg[evaluator].get('crop') == 'nyu_eigen':  # defined for 480 x 640 only
            cfg[evaluator].crop = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = iters
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    return cfg


@pytest.fixture(scope='module')
def nyu_root(tmp_path_factory):
    return write_nyu_split(str(tmp_path_factory.mktemp('nyu')), num_train=4, num_test=3)


@pytest.fixture(scope='module')
def kitti_root(tmp_path_factory):
    return write_kitti_split(str(tmp_path_factory.mktemp('kitti')), num_train=2, num_test=3)


@pytest.mark.parametrize('config', ['configs/depth/nyu_linear.py', 'configs/depth/nyu_linear4.py',
                                    'configs/depth/nyu_dpt.py'])
def test_nyu_train_then_test(config, nyu_root, tmp_path):
    """Every NYU head trains a few iterations and evaluates every test image, flip-averaged."""
    cfg = tiny_depth_cfg(config, nyu_root, tmp_path, iters=2)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert {'d1', 'abs_rel', 'rmse', 'silog', 'silog_mmseg'} <= set(metrics)
    assert all(np.isfinite(metrics[k]) for k in ('d1', 'rmse', 'abs_rel'))
    assert runner.model.test_cfg.flip is True


def test_cli_test_writes_predictions_matching_the_reported_metrics(nyu_root, tmp_path):
    """tools/test.py --out / --show-dir: PNG predictions (x256) give back the reported numbers."""
    cfg = tiny_depth_cfg('configs/depth/nyu_linear.py', nyu_root, tmp_path / 'work', iters=2)
    Runner.from_cfg(cfg).train()
    config_file = str(tmp_path / 'tiny.py')
    cfg.dump(config_file)
    out, show = tmp_path / 'pred', tmp_path / 'show'
    # A subprocess, as users run it (mmengine's visualiser is a per-process named singleton).
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', config_file, str(tmp_path / 'work' / 'iter_2.pth'),
         '--out', str(out), '--show-dir', str(show), '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', 'log_level=INFO'],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = re.findall(r'Iter\(test\).*rmse.*', proc.stdout + proc.stderr)[-1]
    reported = {k: float(v) for k, v in re.findall(r'(\w+): ([-\d.]+)', summary)}

    lines = open(osp.join(nyu_root, 'nyu_test.txt')).read().split('\n')
    per_image = []
    for line in filter(None, lines):
        rgb, depth, _ = line.split()
        # written at the image's path under the data root (KITTI frame names repeat)
        png = str(out / (osp.splitext(rgb)[0] + '.png'))
        pred = cv2.imread(png, cv2.IMREAD_UNCHANGED).astype(np.float64) / 256
        gt = cv2.imread(osp.join(nyu_root, depth), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000
        assert pred.shape == gt.shape
        per_image.append(depth_metrics(pred, gt, min_depth=1e-3, max_depth=10.0))
    for key in ('rmse', 'abs_rel', 'd1'):
        mean = np.mean([m[key] for m in per_image])
        # 1/256 m PNG quantisation: a few mm of rmse; d1 may flip on a handful of pixels.
        assert mean == pytest.approx(reported[key], abs=0.01 if key != 'd1' else 0.02), key
    drawn = glob.glob(str(show / '**' / '*.png'), recursive=True)
    assert len(drawn) == len(per_image)
    assert f'wrote {len(per_image)} prediction PNGs under {out}' in proc.stdout
    panel = cv2.imread(drawn[0])
    assert panel.shape[0] == 48 and panel.shape[1] > 3 * 64  # image | gt | prediction | bar


def test_kitti_eval_skips_lines_without_ground_truth(kitti_root, tmp_path):
    cfg = tiny_depth_cfg('configs/depth/kitti_linear.py', kitti_root, tmp_path, iters=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert len(runner.test_dataloader.dataset) == 2  # 3 lines, one without GT
    assert np.isfinite(metrics['rmse']) and metrics['rmse'] > 0
    assert runner.cfg.test_evaluator.crop == 'kitti_garg'


def test_kitti_kb_crop_at_full_size(tmp_path):
    """375 x 1242 frames through the real KITTI pipelines: KB crop in training and test, the
    predictions come back at the cropped ground truth's size, panels cut the same box."""
    root = write_kitti_split(str(tmp_path / 'data'), num_train=1, num_test=2, size=(375, 1242),
                             no_gt_lines=0)
    cfg = tiny_depth_cfg('configs/depth/kitti_linear.py', root, tmp_path / 'work', iters=1)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].batch_size = 1
        pipeline = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/kitti.py'))[
            'train_pipeline' if loader == 'train_dataloader' else 'test_pipeline']
        cfg[loader].dataset.pipeline = [t for t in pipeline if t['type'] != 'RandomCrop']
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert np.isfinite(metrics['rmse'])
    batch = next(iter(runner.test_dataloader))
    with torch.no_grad():
        sample = runner.model.test_step(batch)[0]
    assert sample.pred_depth_map.data.shape == sample.gt_depth_map.data.shape == (1, 352, 1216)
    assert sample.metainfo['crop_box'] == (23, 375, 13, 1229)


def test_short_training_beats_the_best_constant_depth(tmp_path):
    """200 iterations of a tiny ViT on the synthetic scenes: RMSE well below the best constant prediction."""
    from densedino.datasets import SyntheticDepthDataset
    root = str(tmp_path / 'data')
    scene = dict(image_size=(56, 84))
    cfg = tiny_depth_cfg('configs/depth/synthetic_linear.py', root, tmp_path, iters=200,
                         crop=(56, 84))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.update(num_train=24, num_test=8, scene=scene)
    cfg.train_dataloader.batch_size = 4
    cfg.model.backbone.frozen = False
    # Scale matters for RMSE: the plain log-RMS loss (lambda 0) fits it in few iterations.
    cfg.model.decode_head.loss_decode = dict(type='SigLoss', variant='lambda', lambd=0.0)
    cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=3e-3),
                             clip_grad=dict(max_norm=35, norm_type=2))
    runner = Runner.from_cfg(cfg)
    runner.train()
    rmse = runner.test()['rmse']

    # The best constant for RMSE is the mean training depth; score it per image like the model.
    train = SyntheticDepthDataset(root, split='train', num_train=24, num_test=8, scene=scene,
                                  pipeline=[])
    test = SyntheticDepthDataset(root, split='test', num_train=24, num_test=8, scene=scene,
                                 pipeline=[])
    read = [lambda i, ds=ds: cv2.imread(ds[i]['depth_map_path'], -1) / 1000.0
            for ds in (train, test)]
    constant = np.mean([read[0](i).mean() for i in range(len(train))])
    baseline = np.mean([depth_metrics(np.full_like(read[1](i), constant), read[1](i),
                                      min_depth=1e-3, max_depth=10.0)['rmse']
                        for i in range(len(test))])
    assert rmse < 0.8 * baseline, (rmse, baseline)


OFFICIAL_LINEAR = {'nyu_linear': 768, 'nyu_linear4': 3072, 'kitti_linear': 768,
                   'kitti_linear4': 3072}


@pytest.mark.parametrize('name', sorted(OFFICIAL_LINEAR))
def test_released_linear_heads_load_into_their_configs(name, tmp_path):
    """dinov2_vits14_{nyu,kitti}_linear{,4}_head.pth: decode_head.conv_depth (256 bins) only."""
    from densedino.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, f'configs/depth/{name}.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False, arch_overrides=dict(depth=4))
    with DefaultScope.overwrite_default_scope('densedino'):
        model = MODELS.build(cfg.model)
    channels = OFFICIAL_LINEAR[name]
    sd = {'decode_head.conv_depth.weight': torch.randn(256, channels, 1, 1),
          'decode_head.conv_depth.bias': torch.randn(256)}
    path = str(tmp_path / f'dinov2_vits14_{name}_head.pth')
    torch.save({'state_dict': sd}, path)
    load_head_checkpoint(model, path)
    assert torch.equal(model.decode_head.conv_depth.weight, sd['decode_head.conv_depth.weight'])
    max_depth = 80.0 if name.startswith('kitti') else 10.0
    assert model.decode_head.max_depth == max_depth


def _frames(count=5, size=(48, 64)):
    from densedino.datasets import SceneConfig, SceneGenerator
    gen = SceneGenerator(SceneConfig(image_size=size), seed=3)
    return [np.ascontiguousarray(gen[i].image[..., ::-1]) for i in range(count)]


def _write_video(path, frames, fps=5.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


@pytest.fixture(scope='module')
def trained_depth(tmp_path_factory, nyu_root):
    """A tiny NYU linear model trained 2 iterations: (config file, checkpoint)."""
    tmp = tmp_path_factory.mktemp('demo')
    cfg = tiny_depth_cfg('configs/depth/nyu_linear.py', nyu_root, tmp / 'work', iters=2)
    Runner.from_cfg(cfg).train()
    config_file = str(tmp / 'tiny.py')
    cfg.dump(config_file)
    return config_file, str(tmp / 'work' / 'iter_2.pth')


def _demo_args(**kw):
    import demo.webcam_depth as demo
    defaults = demo.parse_args(['--config', 'x'])
    return SimpleNamespace(**{**vars(defaults), **kw})


def test_webcam_demo_headless_on_a_video(trained_depth, tmp_path):
    import demo.webcam_depth as demo
    config, ckpt = trained_depth
    frames = _frames()
    video = str(tmp_path / 'in.mp4')
    _write_video(video, frames)
    out = str(tmp_path / 'out' / 'depth.mp4')
    stats = demo.run(_demo_args(source=video, config=config, checkpoint=ckpt, out=out,
                                show=False))
    assert stats['frames'] == len(frames) and stats['loop_fps'] > 0
    assert stats['precision'] in ('bf16', 'fp32')
    cap = cv2.VideoCapture(out)
    written = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = cap.read()
    cap.release()
    assert ok and written == len(frames)
    assert first.shape[0] == 48 and first.shape[1] > 2 * 64  # frame | depth | colour bar


def test_webcam_demo_fixed_range_on_an_image_folder(trained_depth, tmp_path):
    import demo.webcam_depth as demo
    config, ckpt = trained_depth
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i, f in enumerate(_frames(count=3)):
        cv2.imwrite(str(folder / f'{i:03d}.png'), f)
    cv2.imwrite(str(folder / '999.png'), _frames(count=1, size=(60, 90))[0])  # another size
    (folder / 'broken.png').write_bytes(b'not a png')
    out = str(tmp_path / 'folder.avi')
    stats = demo.run(_demo_args(source=str(folder), config=config, checkpoint=ckpt,
                                vmin=0.5, vmax=8.0, show=False, out=out))
    assert stats['frames'] == 4  # the broken file is skipped
    cap = cv2.VideoCapture(out)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4  # the odd-sized frame is fitted, not lost
    cap.release()


def test_webcam_demo_errors(trained_depth, tmp_path):
    import demo.webcam_depth as demo
    config, ckpt = trained_depth
    with pytest.raises(RuntimeError, match='cannot open camera 7'):
        demo.run(_demo_args(source='7', config=config, checkpoint=ckpt, show=False))
    with pytest.raises(RuntimeError, match='neither a camera index'):
        demo.run(_demo_args(source=str(tmp_path / 'nothing.mp4'), config=config, show=False))
    with pytest.raises(ValueError, match='both --vmin and --vmax'):
        demo.run(_demo_args(source='0', config=config, vmin=1.0, show=False))
    seg_cfg = osp.join(REPO, 'configs/seg/synthetic_linear.py')
    with pytest.raises(ValueError, match='not a depth model'):
        demo.DepthRunner(seg_cfg, None, 'cpu')


def test_inference_model_on_a_depth_model(trained_depth):
    from densedino.apis import inference_model, init_model
    config, ckpt = trained_depth
    model = init_model(config, ckpt)
    frame = _frames(count=1, size=(50, 70))[0]
    result = inference_model(model, frame)
    depth = result.pred_depth_map.data
    assert depth.shape == (1, 50, 70)
    assert float(depth.min()) >= 1e-3 and float(depth.max()) <= 10.0
    assert model.dataset_meta['classes'] == ('depth',)


def test_config_options_are_checked():
    from densedino.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs/depth/nyu_linear.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False, **TINY)
    cfg.model.decode_head.in_channels = [32]
    cfg.model.test_cfg = ConfigDict(mode='sliding')
    with DefaultScope.overwrite_default_scope('densedino'), \
            pytest.raises(ValueError, match="test_cfg.mode must be one of"):
        MODELS.build(cfg.model)


def test_depth_baseline_tool(nyu_root, tmp_path, capsys):
    """tools/depth_baseline.py: mean-constant scores equal a direct computation."""
    import tools.depth_baseline as baseline
    cfg = tiny_depth_cfg('configs/depth/nyu_linear.py', nyu_root, tmp_path)
    config_file = str(tmp_path / 'tiny.py')
    cfg.dump(config_file)
    baseline.main(baseline.parse_args([config_file]))
    printed = capsys.readouterr().out
    read = lambda rel: cv2.imread(osp.join(nyu_root, rel), cv2.IMREAD_UNCHANGED) / 1000.0  # noqa: E731
    split = lambda name: [line.split()[1] for line in open(osp.join(nyu_root, name)) if line.strip()]  # noqa: E731
    train = np.concatenate([read(p).ravel() for p in split('nyu_train.txt')])
    constant = train[(train > 1e-3) & (train < 10)].mean()
    rmse = np.mean([depth_metrics(np.full_like(read(p), constant), read(p), min_depth=1e-3,
                                  max_depth=10.0)['rmse'] for p in split('nyu_test.txt')])
    assert f'constant mean {constant:.3f} m: rmse {rmse:.4f}' in printed
