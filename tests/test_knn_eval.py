"""k-NN evaluation: CLS feature extraction, the knn_eval tool and the KNNMonitorHook."""
import json
import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from torch import nn

from densedino import create_backbone
from densedino.datasets import DatasetError, ensure_synthetic_ade20k
from densedino.pretrain import (KNNMonitorHook, extract_cls_features, find_backbone,
                                knn_eval_folders, knn_transform)
from densedino.registry import HOOKS
from tools.knn_eval import RANDOM_WARNING, build_parser, main

TINY = dict(embed_dim=32, depth=2, num_heads=2)
SIZES = dict(size=28, resize=32)
COLOURS = {0: (230, 20, 20), 1: (20, 20, 230)}


class MeanColour(nn.Module):
    """A stub backbone whose CLS feature is the mean normalised colour (plus a constant)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward_features(self, x: torch.Tensor) -> dict:
        mean = x.mean(dim=(2, 3)) * self.scale
        return {'x_norm_clstoken': torch.cat([mean, torch.ones_like(mean[:, :1])], 1)}


@pytest.fixture(scope='module')
def tiny_vit():
    torch.manual_seed(0)
    return create_backbone('dinov2_vits14', **TINY)


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('knn_synth'))
    ensure_synthetic_ade20k(root, num_train=8, num_val=4, scene=dict(image_size=(56, 84)))
    return root


@pytest.fixture
def colour_folders(tmp_path):
    """Flat-colour images labelled by colour, with slight noise so no two are identical."""
    rng = np.random.default_rng(0)
    for split, count in (('train', 6), ('val', 4)):
        lines = []
        for i in range(count):
            label = i % 2
            image = np.clip(np.array(COLOURS[label]) + rng.integers(-15, 16, (40, 50, 3)), 0, 255)
            os.makedirs(tmp_path / split, exist_ok=True)
            cv2.imwrite(str(tmp_path / split / f'im{i}.png'), image.astype(np.uint8)[..., ::-1])
            lines.append(f'im{i} {label}\n')
        (tmp_path / f'{split}.txt').write_text(''.join(lines))
    return {'train_dir': str(tmp_path / 'train'), 'train_labels': str(tmp_path / 'train.txt'),
            'val_dir': str(tmp_path / 'val'), 'val_labels': str(tmp_path / 'val.txt')}


def test_knn_transform_resizes_short_side_and_centre_crops():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 30:50] = 255  # a white centre band survives the crop, the black sides partly
    x = knn_transform(image, size=16, resize=20, mean=(0, 0, 0), std=(1, 1, 1))
    assert x.shape == (3, 16, 16)
    assert x[:, :, 8].min() > 0.9 and x[:, :, 0].max() < 0.1
    with pytest.raises(ValueError, match='resize=10'):
        knn_transform(image, size=16, resize=10)


def test_extract_cls_features_shapes_determinism_and_mode(tiny_vit):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (30 + 7 * i, 45, 3), dtype=np.uint8) for i in range(5)]
    tiny_vit.train()
    a = extract_cls_features(tiny_vit, images, batch_size=2, **SIZES)
    assert tiny_vit.training  # restored
    b = extract_cls_features(tiny_vit, images, batch_size=5, **SIZES)
    assert a.shape == (5, 32) and a.dtype == torch.float32 and not a.requires_grad
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # batching does not matter
    x = knn_transform(images[3], mean=tiny_vit.preset.mean, std=tiny_vit.preset.std, **SIZES)
    with torch.no_grad():
        ref = tiny_vit.eval().forward_features(x[None])['x_norm_clstoken']
    torch.testing.assert_close(a[3:4], ref, rtol=1e-5, atol=1e-5)


def test_extract_cls_features_reads_paths_like_arrays(tiny_vit, tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (33, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), image[..., ::-1])
    from_path = extract_cls_features(tiny_vit, [str(tmp_path / 'a.png')], **SIZES)
    torch.testing.assert_close(from_path, extract_cls_features(tiny_vit, [image], **SIZES))


def test_separable_colours_give_100_percent(colour_folders):
    results = knn_eval_folders(MeanColour(), ks=(1, 3), **colour_folders, **SIZES)
    assert results == {'knn_top1_k1': 100.0, 'knn_top1_k3': 100.0}


def test_tool_on_synthetic_scenes_writes_json(synthetic, tmp_path, capsys):
    out = tmp_path / 'r' / 'knn.json'
    args = build_parser().parse_args(
        ['--backbone', 'dinov2_vits14', '--synthetic', synthetic, '--k', '1', '5',
         '--size', '28', '--resize', '32', '--out', str(out), '--device', 'cpu',
         '--no-progress'])
    with pytest.MonkeyPatch.context() as mp:  # the tool builds a tiny ViT of the same family
        mp.setattr('densedino.create_backbone',
                   lambda name, checkpoint=None, **kw: create_backbone(
                       name, checkpoint=checkpoint, **kw, **TINY))
        main(args)
    captured = capsys.readouterr()
    assert RANDOM_WARNING in captured.err and 'k-NN top-1 (k=5)' in captured.out
    record = json.loads(out.read_text())
    for k in (1, 5):
        assert 0.0 <= record[f'knn_top1_k{k}'] <= 100.0
    assert record['backbone'] == 'dinov2_vits14' and record['checkpoint'] is None


def test_tool_missing_inputs_give_one_line_errors(colour_folders, tmp_path):
    parse = build_parser().parse_args
    base = ['--backbone', 'dinov2_vits14']
    with pytest.raises(SystemExit, match='--train-labels, --val'):
        main(parse(base + ['--train', colour_folders['train_dir']]))
    missing = str(tmp_path / 'nope.txt')
    flags = ['--train', colour_folders['train_dir'], '--train-labels', missing,
             '--val', colour_folders['val_dir'], '--val-labels', colour_folders['val_labels']]
    with pytest.raises(SystemExit, match=f'--train-labels file {missing} does not exist'):
        main(parse(base + flags))
    flags[1] = str(tmp_path / 'nodir')
    with pytest.raises(SystemExit, match='--train folder .*nodir does not exist'):
        main(parse(base + flags))


def test_library_errors_name_the_label_file(colour_folders, tmp_path):
    folders = dict(colour_folders, val_labels=str(tmp_path / 'missing_labels.txt'))
    with pytest.raises(DatasetError, match='missing_labels.txt'):
        knn_eval_folders(MeanColour(), **folders, **SIZES)


def _runner(model, name):
    return SimpleNamespace(model=model, iter=0, visualizer=None,
                           message_hub=MessageHub.get_instance(name),
                           logger=MMLogger.get_instance(name))


def test_hook_logs_the_teacher_knn_scalar(colour_folders):
    model = nn.Module()
    model.teacher = nn.Module()
    model.teacher.backbone = MeanColour()
    model.student = MeanColour()
    hook = HOOKS.build(dict(type='KNNMonitorHook', interval=2, ks=(1, 20), **colour_folders,
                            **SIZES))
    # a student that cannot tell the colours apart (constant features): 100% below is the teacher
    model.student.scale.data.zero_()
    assert knn_eval_folders(model.student, ks=(1,), **colour_folders, **SIZES)['knn_top1_k1'] < 100
    runner = _runner(model, 'knn_hook_test')
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)  # iteration 1 of interval 2: nothing
    assert 'knn/top1_k20' not in runner.message_hub.log_scalars
    runner.iter = 1
    hook.after_train_iter(runner, 1)
    assert runner.message_hub.get_scalar('knn/top1_k20').current() == 100.0
    assert runner.message_hub.get_scalar('knn/top1_k1').current() == 100.0
    runner.iter = 2  # the loop has stepped: 2 iterations done
    hook.after_train(runner)  # just ran after iteration 2: not again
    assert len(runner.message_hub.get_scalar('knn/top1_k20').data[0]) == 1


def test_find_backbone_paths_and_errors():
    model = nn.Module()
    model.teacher_backbone = MeanColour()
    model.ema = nn.Module()
    model.ema.net = MeanColour()
    assert find_backbone(model) is model.teacher_backbone
    assert find_backbone(model, 'ema.net') is model.ema.net
    with pytest.raises(AttributeError, match="'teacher.encoder'"):
        find_backbone(model, 'teacher.encoder')
    with pytest.raises(ValueError, match='interval'):
        KNNMonitorHook(interval=0, train_dir='a', train_labels='b', val_dir='c', val_labels='d')


def test_extract_cls_features_convnext_pooled_norm():
    convnext = create_backbone('dinov3_convnext_tiny', depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    image = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    feats = extract_cls_features(convnext, [image, image[::-1]], size=64, resize=72)
    assert feats.shape == (2, 32) and torch.isfinite(feats).all()


def test_hook_at_start_evaluates_the_initialisation_once(colour_folders):
    model = nn.Module()
    model.teacher = nn.Module()
    model.teacher.backbone = MeanColour()
    hook = HOOKS.build(dict(type='KNNMonitorHook', interval=5, ks=(1,), at_start=True,
                            **colour_folders, **SIZES))
    runner = _runner(model, 'knn_hook_start_test')
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert len(runner.message_hub.get_scalar('knn/top1_k1').data[0]) == 1
    hook.before_train_iter(runner, 0)  # called again at iteration 0: no second evaluation
    runner.iter = 1
    hook.before_train_iter(runner, 1)
    assert len(runner.message_hub.get_scalar('knn/top1_k1').data[0]) == 1

    resumed = HOOKS.build(dict(type='KNNMonitorHook', interval=5, ks=(1,), at_start=True,
                               **colour_folders, **SIZES))
    runner = _runner(model, 'knn_hook_resume_test')
    runner.iter = 3  # a resumed run does not re-evaluate the initialisation
    resumed.before_train_iter(runner, 0)
    assert 'knn/top1_k1' not in runner.message_hub.log_scalars


def test_hook_is_off_for_a_sharded_model(colour_folders):
    model = nn.Module()
    model.fsdp = dict(reshard_after_forward=True, mixed_precision=None)  # as SSLDistributedWrapper
    model.module = nn.Module()
    hook = HOOKS.build(dict(type='KNNMonitorHook', interval=1, ks=(1,), at_start=True,
                            **colour_folders, **SIZES))
    runner = _runner(model, 'knn_hook_fsdp_test')
    hook.before_train(runner)  # no backbone lookup, no error: a warning
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    assert hook.disabled and 'knn/top1_k1' not in runner.message_hub.log_scalars
