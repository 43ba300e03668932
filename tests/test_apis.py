"""densedino.apis and demo/image_seg.py on a tiny model trained 2 iterations on synthetic scenes.

Also the overlay drawing of densedino.visualization, which the demo uses.
"""
import glob
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

import densedino  # noqa: F401
from densedino import CheckpointError
from densedino.apis import InferenceError, inference_model, init_model
from densedino.datasets import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, ensure_synthetic_ade20k
from densedino.visualization import classes_present, draw_overlay, legend_width

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMAGE_SIZE = (60, 88)  # (H, W): non-square, not a multiple of the patch size 14
TINY_BACKBONE = dict(arch_overrides=dict(depth=2, embed_dim=32, num_heads=2), out_indices='last')


def tiny_synthetic_cfg(data_root: str, work_dir: str) -> Config:
    """configs/seg/synthetic_linear.py with a 2-block, 32-wide backbone, 2 iterations."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/seg/synthetic_linear.py'))
    cfg.work_dir = work_dir
    cfg.model.backbone.update(**TINY_BACKBONE)
    cfg.model.decode_head.in_channels = [32]
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomCrop', crop_size=(42, 56)),
        dict(type='PackSegInputs'),
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, 2
        dl.dataset.data_root = data_root
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny model trained 2 iterations; its config file, checkpoint and validation images."""
    tmp = tmp_path_factory.mktemp('apis')
    root = ensure_synthetic_ade20k(str(tmp / 'data'), num_train=4, num_val=2,
                                   scene=dict(image_size=IMAGE_SIZE))
    cfg = tiny_synthetic_cfg(str(tmp / 'data'), str(tmp / 'wd'))
    cfg_path = str(tmp / 'tiny_synthetic.py')
    cfg.dump(cfg_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return SimpleNamespace(tmp=tmp, cfg=cfg, cfg_path=cfg_path, runner=runner,
                           ckpt=str(tmp / 'wd' / 'iter_2.pth'),
                           images=sorted(glob.glob(osp.join(root, 'images/validation/*.jpg'))))


@pytest.fixture(scope='module')
def model(trained):
    return init_model(trained.cfg_path, trained.ckpt)


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert '\n' not in msg, msg
    return msg


def test_training_checkpoint_round_trips_dataset_meta(trained, model):
    meta = torch.load(trained.ckpt, map_location='cpu')['meta']
    assert meta['dataset_meta']['classes'] == SYNTHETIC_CLASSES  # written by CheckpointHook
    assert model.dataset_meta['classes'] == SYNTHETIC_CLASSES
    assert model.dataset_meta['palette'] == SYNTHETIC_PALETTE
    assert not model.training
    for k, v in trained.runner.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_prediction_has_image_size_and_equals_test_step(trained, model):
    """inference_model(files) == the trained model's test_step on the test dataloader's batch."""
    result = inference_model(model, trained.images[0])
    assert result.pred_sem_seg.data.shape == (1, *IMAGE_SIZE)
    assert result.seg_logits.data.shape == (len(SYNTHETIC_CLASSES), *IMAGE_SIZE)

    batch = next(iter(Runner.build_dataloader(trained.cfg.test_dataloader)))
    reference_model = trained.runner.model.eval()
    with torch.no_grad():
        reference = reference_model.test_step(batch)
    results = inference_model(model, trained.images)
    assert isinstance(results, list) and len(results) == len(reference) == 2
    for ours, ref in zip(results, reference):
        assert ours.img_path == ref.img_path
        torch.testing.assert_close(ours.seg_logits.data, ref.seg_logits.data)
        assert torch.equal(ours.pred_sem_seg.data, ref.pred_sem_seg.data)


def test_bgr_arrays_equal_files_in_any_order(trained, model):
    """Arrays are BGR like cv2.imread; calls with arrays do not break later calls with paths."""
    path = trained.images[1]
    bgr = cv2.imread(path)
    from_array, from_file = inference_model(model, [bgr, path])
    again = inference_model(model, path)
    for other in (from_file, again):
        assert torch.equal(from_array.pred_sem_seg.data, other.pred_sem_seg.data)
        torch.testing.assert_close(from_array.seg_logits.data, other.seg_logits.data)
    rgb = inference_model(model, np.ascontiguousarray(bgr[..., ::-1]))
    assert not torch.equal(rgb.seg_logits.data, from_array.seg_logits.data)


def test_checkpoint_without_dataset_meta_takes_the_config_classes(trained, tmp_path):
    """mmseg's init_model would fall back to Cityscapes' 19 names here."""
    state_dict = torch.load(trained.ckpt, map_location='cpu')['state_dict']
    no_meta = str(tmp_path / 'no_meta.pth')
    torch.save(dict(state_dict=state_dict, meta=dict(iter=2)), no_meta)
    bare = str(tmp_path / 'bare.pth')
    torch.save(state_dict, bare)
    for path in (no_meta, bare):
        model = init_model(trained.cfg_path, path)
        assert model.dataset_meta['classes'] == SYNTHETIC_CLASSES
        assert model.dataset_meta['palette'] == SYNTHETIC_PALETTE

    cfg = Config.fromfile(trained.cfg_path)  # a dataset type that names no classes
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset = ConfigDict(type='BaseSegDataset', data_root='x',
                                         pipeline=cfg[loader].dataset.pipeline)
    with pytest.raises(InferenceError) as e:
        init_model(cfg, no_meta)
    assert f'checkpoint {no_meta} has no meta.dataset_meta' in one_line(e)

    cfg.test_dataloader.dataset.metainfo = dict(classes=[f'c{i}' for i in range(9)])
    meta = init_model(cfg, no_meta).dataset_meta
    assert meta['classes'] == tuple(f'c{i}' for i in range(9)) and len(meta['palette']) == 9


def test_checkpoint_errors_are_one_line_and_name_the_file(trained, tmp_path):
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointError) as e:
        init_model(trained.cfg_path, missing)
    assert one_line(e) == f'checkpoint {missing} does not exist'

    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError) as e:
        init_model(trained.cfg_path, str(corrupt))
    assert one_line(e).startswith(f'cannot read checkpoint {corrupt}')

    wider = {'model.backbone.arch_overrides.embed_dim': 48, 'model.decode_head.in_channels': [48]}
    with pytest.raises(CheckpointError) as e:
        init_model(trained.cfg_path, trained.ckpt, cfg_options=wider)
    msg = one_line(e)
    assert msg.startswith(f'checkpoint {trained.ckpt} does not fit the model of config '
                          f'{trained.cfg_path}')
    assert '(1, 1, 32) vs (1, 1, 48)' in msg

    ckpt = torch.load(trained.ckpt, map_location='cpu')
    ckpt['meta']['dataset_meta']['classes'] = ('a', 'b', 'c')
    three = str(tmp_path / 'three.pth')
    torch.save(ckpt, three)
    with pytest.raises(InferenceError) as e:
        init_model(trained.cfg_path, three)
    assert one_line(e) == f"checkpoint {three} names 3 classes but the model's head predicts 9"


def test_image_errors_are_one_line_and_name_the_file(trained, model, tmp_path):
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(InferenceError) as e:
        inference_model(model, [trained.images[0], missing])
    assert one_line(e) == f'image file {missing} does not exist'

    garbage = tmp_path / 'garbage.jpg'
    garbage.write_bytes(b'\x00' * 100)
    with pytest.raises(InferenceError) as e:
        inference_model(model, str(garbage))
    assert one_line(e).startswith(f'cannot read image file {garbage}: not an image')

    with pytest.raises(InferenceError, match=r'\(H, W, 3\) in BGR order, got shape \(4, 5\)'):
        inference_model(model, np.zeros((4, 5), np.uint8))
    with pytest.raises(InferenceError) as e:
        init_model(str(tmp_path / 'nope.py'))
    assert one_line(e) == f'config file {tmp_path / "nope.py"} does not exist'


def test_init_model_leaves_the_given_config_alone(trained):
    cfg = Config.fromfile(trained.cfg_path)
    before = cfg.pretty_text
    init_model(cfg, trained.ckpt)
    assert cfg.pretty_text == before


def test_demo_writes_the_overlay_with_a_legend(trained, model, tmp_path):
    img = trained.images[0]
    out = tmp_path / 'sub' / 'overlay.png'
    headless = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY')}
    proc = subprocess.run(
        [sys.executable, 'demo/image_seg.py', img, trained.cfg_path, trained.ckpt, '--out',
         str(out), '--opacity', '0.6', '--show'],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=headless)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'wrote {out} ' in proc.stdout and 'segmented in' in proc.stdout

    written = cv2.imread(str(out))[..., ::-1]
    labels = inference_model(model, img).pred_sem_seg.data[0].numpy()
    names = [SYNTHETIC_CLASSES[i] for i in classes_present(labels)]
    h, w = IMAGE_SIZE
    assert written.shape == (h, w + legend_width(names, h), 3)
    image = cv2.imread(img)[..., ::-1].copy()
    expected = draw_overlay(image, labels, SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, opacity=0.6)
    np.testing.assert_array_equal(written, expected)


def _load_demo():
    spec = importlib.util.spec_from_file_location('image_seg_demo',
                                                  osp.join(REPO, 'demo/image_seg.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


@pytest.mark.parametrize('source', ['dataset palette', 'classes only'])
def test_demo_colours_each_class_with_the_dataset_palette(trained, tmp_path, source):
    """The overlay colour of class k is the k-th colour of the palette mmseg's dataset holds for
    the config's classes (what tools/test.py --show-dir draws with), also where the config
    names classes without a palette and mmseg's dataset makes one up."""
    from mmengine.registry import DefaultScope
    from densedino.registry import DATASETS
    cfg = Config.fromfile(trained.cfg_path)
    if source == 'classes only':
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[loader].dataset = ConfigDict(
                type='BaseSegDataset', data_root=str(trained.tmp / 'data'),
                metainfo=dict(classes=[f'thing {i}' for i in range(len(SYNTHETIC_CLASSES))]),
                pipeline=cfg[loader].dataset.pipeline)
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    bare = str(tmp_path / 'bare.pth')  # no meta.dataset_meta: the config's dataset decides
    torch.save(torch.load(trained.ckpt, map_location='cpu')['state_dict'], bare)
    with DefaultScope.overwrite_default_scope('densedino'):
        dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    palette = np.asarray(dataset.metainfo['palette'], np.uint8)

    img = trained.images[0]
    demo = _load_demo()
    args = demo.parse_args([img, cfg_path, bare, '--opacity', '1', '--no-legend'])
    overlay, _, _ = demo.segment(args, demo.check_inputs(args))
    labels = inference_model(init_model(cfg_path, bare), img).pred_sem_seg.data[0].numpy()
    present = classes_present(labels)
    assert present
    for k in present:
        np.testing.assert_array_equal(overlay[labels == k], palette[[k] * (labels == k).sum()],
                                      err_msg=f'class {k}')


def test_demo_errors_are_one_line_and_come_before_the_model_loads(trained, tmp_path, capsys,
                                                                   monkeypatch):
    """In process (a subprocess costs seconds of imports): run_cli's one-line stderr report,
    given before any model is built (a bad command line costs no model load)."""
    import densedino.apis

    def no_model(*args, **kwargs):
        raise AssertionError('the model was loaded before the inputs were checked')
    monkeypatch.setattr(densedino.apis, 'init_model', no_model)
    demo = _load_demo()
    out, missing = str(tmp_path / 'o.png'), str(tmp_path / 'no.jpg')
    not_image = tmp_path / 'notes.png'
    not_image.write_text('not an image')
    cases = [
        ([missing, trained.ckpt, '--out', out],
         f'FileNotFoundError: image {missing} does not exist'),
        ([str(not_image), trained.ckpt, '--out', out],
         f'ValueError: cannot read image {not_image}: not an image format'),
        ([trained.images[0], missing, '--out', out],
         f'FileNotFoundError: checkpoint file {missing} does not exist'),
        ([trained.images[0], trained.ckpt, '--out', str(tmp_path / 'o.txt')],
         f'ValueError: --out {tmp_path / "o.txt"}: use an image extension'),
        ([trained.images[0], trained.ckpt, '--out', out, '--opacity', '2'],
         'ValueError: --opacity must be in [0, 1], got 2.0'),
    ]
    for (img, ckpt, *options), expected in cases:
        args = demo.parse_args([img, trained.cfg_path, ckpt, *options])
        with pytest.raises(SystemExit) as e:
            demo.run_cli(demo.main, args)
        assert e.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f'error: {expected}'), err
    assert not osp.exists(out)


# ------------------------------------------------------------------------------------------
# Overlay drawing
# ------------------------------------------------------------------------------------------
def test_overlay_blends_labelled_pixels_and_keeps_ignored_ones():
    image = np.full((3, 4, 3), 100, np.uint8)
    labels = np.array([[0, 0, 1, 255]] * 3)
    out = draw_overlay(image, labels, ['a', 'b', 'c'], [[200, 0, 0], [0, 50, 250], [1, 2, 3]],
                       opacity=0.25, legend=False)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[0, 0], [125, 75, 75])  # 0.75 * 100 + 0.25 * colour
    np.testing.assert_array_equal(out[0, 2], [75, 88, 138])  # 87.5 rounds to even
    np.testing.assert_array_equal(out[0, 3], [100, 100, 100])


def test_legend_lists_only_present_classes_and_keeps_the_image_height():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    classes = [f'class number {i}' for i in range(30)]
    labels = rng.integers(0, 30, (50, 70))  # 30 entries need several columns at 50 px
    labels[:, :10] = 255
    out = draw_overlay(image, labels, classes)
    assert out.shape == (50, 70 + legend_width(classes, 50), 3)
    two = draw_overlay(image, np.where(labels < 15, 3, 17), classes)
    assert two.shape == (50, 70 + legend_width([classes[3], classes[17]], 50), 3)
    np.testing.assert_array_equal(out[:, :10], image[:, :10])
    assert legend_width(classes, 50) > legend_width(classes, 500)  # fewer columns when taller


def test_overlay_rejects_bad_inputs_showing_the_value():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match=r'values \[7\] outside the 3 classes'):
        draw_overlay(image, np.full((4, 4), 7), ['a', 'b', 'c'])
    with pytest.raises(ValueError, match=r'opacity must be in \[0, 1\], got 1.5'):
        draw_overlay(image, np.zeros((4, 4), int), ['a'], opacity=1.5)
    with pytest.raises(ValueError, match=r'image size \(4, 4\), got shape \(4, 5\)'):
        draw_overlay(image, np.zeros((4, 5), int), ['a'])
