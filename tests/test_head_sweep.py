"""Head sweeps (densedino/models/head_sweep.py): N heads on one frozen backbone pass.

Sharing the forward must change nothing but the cost: each head trained in a sweep equals the
head trained alone (same seed, data order, lr; with dropout, warm-up and gradient clipping in
play); the sweep's per-head metrics equal tools/test.py on the extracted heads, which load
strictly into the single-head config; a diverging head stops alone."""
import argparse
import os.path as osp
import subprocess
import sys

import pytest
import torch

from densedino.apis import init_model
from densedino.engine import build_runner
from densedino.models import sweep_head_names, sweep_head_state
from tools.test import run_test

from .depth_fixtures import write_nyu_split
from .seg_fixtures import write_ade20k_folder
from .test_depth_pipeline import tiny_depth_cfg
from .test_seg_pipeline import TINY_BACKBONE, tiny_cfg

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LRS = {'lr_1e-03': 1e-3, 'lr_3e-03': 3e-3, 'lr_3e-02': 3e-2}
ITERS = 4


def seg_cfg(data_root, work_dir, config='configs/seg/ade20k_linear_sweep.py', *, lr=None):
    """A tiny ADE20K linear config (sweep or single) where sharing could go wrong: dropout
    (random state), per-group warm-up, and clipping that binds (per head or global)."""
    cfg = tiny_cfg(data_root, work_dir, iters=ITERS, config=config)
    cfg.model.decode_head.dropout_ratio = 0.1
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0,
                                end=ITERS)]
    cfg.optim_wrapper.clip_grad = dict(max_norm=0.05)
    if 'heads' in cfg.model:
        cfg.model.heads = {name: dict(lr=value) for name, value in LRS.items()}
    else:
        cfg.optim_wrapper.optimizer.lr = lr
    return cfg


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    return write_ade20k_folder(str(tmp_path_factory.mktemp('ade')))


@pytest.fixture(scope='module')
def sweep(ade, tmp_path_factory):
    """A trained 3-head sweep: (runner, its final checkpoint)."""
    work = tmp_path_factory.mktemp('sweep')
    runner = build_runner(seg_cfg(ade, work))
    runner.train()
    return runner, osp.join(str(work), f'iter_{ITERS}.pth')


def test_each_head_equals_the_head_trained_alone(sweep, ade, tmp_path):
    runner, _ = sweep
    swept = runner.model.state_dict()
    for name, lr in LRS.items():
        single = build_runner(seg_cfg(ade, tmp_path / name, 'configs/seg/ade20k_linear.py',
                                      lr=lr))
        single.train()
        alone = single.model.state_dict()
        head = {k[len('decode_head.'):]: v for k, v in alone.items()
                if k.startswith('decode_head.')}
        assert head, 'the single-head model has decode_head weights'
        for key, value in head.items():
            torch.testing.assert_close(swept[f'heads.{name}.{key}'], value, rtol=1e-5,
                                       atol=1e-6, msg=f'{name}: {key}')
    # the heads did learn different things (different lrs), so equality is not trivial
    a, b = (swept[f'heads.{n}.conv_seg.weight'] for n in ('lr_1e-03', 'lr_3e-02'))
    assert (a - b).abs().max() > 1e-3


def test_backbone_runs_once_per_batch_in_training_and_evaluation(ade, tmp_path, monkeypatch):
    """One backbone forward per training batch and per test image, for all heads."""
    cfg = seg_cfg(ade, tmp_path)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    runner = build_runner(cfg)
    calls = []
    backbone = runner.model.backbone
    original = backbone.forward
    monkeypatch.setattr(backbone, 'forward', lambda x: calls.append(x.shape) or original(x))
    runner.train()
    images = len(runner.val_dataloader.dataset)
    assert calls[:2] == [(2, 3, 42, 56)] * 2  # the 2 training batches, once each
    assert sum(shape[0] for shape in calls[2:]) == images  # each val image once (whole mode)


def test_extracted_heads_load_strictly_and_match_tools_test(sweep, ade, tmp_path):
    """tools/extract_head.py writes each head as a checkpoint of ade20k_linear.py (loaded
    strictly); tools/test.py's figure for it equals the sweep's own figure for that head."""
    _, checkpoint = sweep
    sweep_cfg = seg_cfg(ade, tmp_path / 'sweep_test')
    _, sweep_metrics = run_test(sweep_cfg, argparse.Namespace(
        config='sweep', checkpoint=checkpoint, out=None, show_dir=None, tta=False))
    best = max(LRS, key=lambda n: sweep_metrics[f'{n}/mIoU'])
    assert sweep_metrics['mIoU'] == sweep_metrics[f'{best}/mIoU']
    for name in LRS:
        out = tmp_path / f'{name}.pth'
        proc = subprocess.run([sys.executable, 'tools/extract_head.py', checkpoint, '--head', name,
                               '--out', str(out)], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        single_cfg = seg_cfg(ade, tmp_path / f'test_{name}', 'configs/seg/ade20k_linear.py',
                             lr=LRS[name])
        model = init_model(single_cfg, device='cpu')
        state = torch.load(out, map_location='cpu', weights_only=True)['state_dict']
        model.load_state_dict(state, strict=True)
        _, metrics = run_test(single_cfg, argparse.Namespace(
            config='single', checkpoint=str(out), out=None, show_dir=None, tta=False))
        assert metrics['mIoU'] == pytest.approx(sweep_metrics[f'{name}/mIoU'], abs=1e-6)


def test_extract_head_lists_and_refuses_unknown_heads(sweep, tmp_path):
    _, checkpoint = sweep
    listed = subprocess.run([sys.executable, 'tools/extract_head.py', checkpoint, '--list'],
                            cwd=REPO, capture_output=True, text=True)
    assert listed.returncode == 0 and all(n in listed.stdout for n in LRS)
    bad = subprocess.run([sys.executable, 'tools/extract_head.py', checkpoint, '--head', 'lr_9',
                          '--out', str(tmp_path / 'x.pth')], cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "no head 'lr_9'" in bad.stderr
    assert bad.stderr.strip().count('\n') == 0 and not (tmp_path / 'x.pth').exists()


def test_a_diverging_head_stops_alone(ade, tmp_path):
    """A head whose loss is NaN is marked, logged and left out; the others train on and the
    run ends normally with finite checkpoints."""
    cfg = seg_cfg(ade, tmp_path)
    cfg.model.heads['broken'] = dict(lr=1e-3, loss_decode=dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=float('nan')))
    runner = build_runner(cfg)
    runner.train()
    names = runner.model.head_names
    assert runner.model.head_diverged.tolist() == [n == 'broken' for n in names]
    state = torch.load(osp.join(str(tmp_path), f'iter_{ITERS}.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert sweep_head_names(state) == names


def test_heads_on_different_blocks_share_one_tap_of_their_union(tmp_path):
    """Heads reading the last block, the last four (with the class token) and a DPT head on
    four even blocks: the backbone taps the union once and each head, extracted into its
    single-head config, predicts exactly what it predicted in the sweep."""
    root = write_nyu_split(str(tmp_path / 'nyu'), num_train=2, num_test=2)
    cfg = tiny_depth_cfg('configs/depth/nyu_linear_sweep.py', root, tmp_path / 'w')
    cfg.model.backbone.update(arch_overrides=dict(depth=6, embed_dim=32, num_heads=2),
                              out_indices='last')
    cfg.val_evaluator.metric.crop = cfg.test_evaluator.metric.crop = None
    dpt = dict(type='DPTDepthHead', embed_dims='auto', channels=16,
               post_process_channels=[4, 8, 16, 32], min_depth=1e-3, max_depth=10.0)
    cfg.model.heads = dict(last=dict(lr=1e-3), four=dict(out_indices='four_last'),
                           dpt=dict(out_indices=[1, 2, 4, 5], head=dpt))
    model = init_model(cfg, device='cpu')
    assert model.backbone.out_indices == [1, 2, 3, 4, 5]
    assert model.head_blocks == dict(last=[5], four=[2, 3, 4, 5], dpt=[1, 2, 4, 5])
    image = torch.rand(1, 3, 28, 42) * 255
    from mmseg.structures import SegDataSample
    meta = dict(ori_shape=(28, 42), img_shape=(28, 42), pad_shape=(28, 42), padding_size=[0] * 4)
    sample = SegDataSample(metainfo=meta)
    with torch.no_grad():
        swept = model.predict(model.data_preprocessor(dict(inputs=[image[0]]))['inputs'],
                              [sample])[0].head_preds
    state = model.state_dict()
    for name, blocks, head in (('last', 'last', None), ('four', 'four_last', None),
                               ('dpt', [1, 2, 4, 5], dpt)):
        single = tiny_depth_cfg('configs/depth/nyu_linear.py', root, tmp_path / name)
        single.model.backbone.update(arch_overrides=dict(depth=6, embed_dim=32, num_heads=2),
                                     out_indices=blocks)
        if head is not None:
            single.model.decode_head = head
        one = init_model(single, device='cpu')
        one.load_state_dict(sweep_head_state(state, name), strict=True)
        with torch.no_grad():
            alone = one.predict(one.data_preprocessor(dict(inputs=[image[0]]))['inputs'],
                                [SegDataSample(metainfo=meta)])[0].pred_depth_map.data
        torch.testing.assert_close(swept[name].data, alone, rtol=0, atol=0)


@pytest.mark.parametrize('change,message', [
    (dict(frozen=False), 'trains heads on a frozen backbone'),
    (dict(heads={'lr.1': dict(lr=1e-3)}), "without '.'"),
])
def test_bad_sweeps_fail_with_one_line(ade, tmp_path, change, message):
    cfg = seg_cfg(ade, tmp_path)
    if 'frozen' in change:
        cfg.model.backbone.frozen = False
    else:
        cfg.model.heads = change['heads']
    with pytest.raises((ValueError, TypeError), match=message):
        build_runner(cfg).train()


def test_train_tool_prints_every_head_and_the_best(tmp_path):
    """``python tools/train.py configs/seg/synthetic_linear_sweep.py`` (shrunk): the 4 heads'
    mIoU and the best one, in the output."""
    tiny = [f'model.backbone.arch_overrides.{k}={v}' for k, v in
            TINY_BACKBONE['arch_overrides'].items()]
    loaders = [f'{d}.{k}={v}' for d in ('train_dataloader', 'val_dataloader')
               for k, v in (('num_workers', 0), ('persistent_workers', False),
                            ('dataset.num_train', 8), ('dataset.num_val', 4))]
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/seg/synthetic_linear_sweep.py', '--work-dir',
         str(tmp_path), '--cfg-options', *tiny, *loaders, 'train_cfg.max_iters=6',
         'train_cfg.val_interval=6', 'default_hooks.checkpoint.interval=6'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for name in ('lr_3e-04', 'lr_1e-03', 'lr_3e-03', 'lr_1e-02'):
        assert f'{name}/mIoU' in text
    assert 'best head: lr_' in text and 'head sweep, 4 heads' in text


def test_benchmark_tool_builds_the_sweeps_it_names(tmp_path):
    """tools/benchmark_sweep.py (CI-sized): each row is a model with that many heads, the
    single-head row is the protocol config, and the JSON holds the ratios it printed."""
    import json

    from tools import benchmark_sweep
    args = benchmark_sweep.parse_args(['--heads', '2', '3'])
    cfgs = benchmark_sweep.configs(args)
    assert 'heads' not in cfgs['1 head'].model
    assert cfgs['1 head'].model.type == 'EncoderDecoder'
    assert [len(cfgs[f'{n} heads'].model.heads) for n in (2, 3)] == [2, 3]
    lrs = [h['lr'] for h in cfgs['3 heads'].model.heads.values()]
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2])  # two decades around the protocol's 1e-3
    out = tmp_path / 'sweep.json'
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark_sweep.py', '--heads', '2', '--iters', '1', '--warmup',
         '0', '--crop', '28', '28', '--no-memory', '--arch-overrides',
         '{"depth": 2, "embed_dim": 32, "num_heads": 2}', '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())['figures']
    assert set(figures) == {'1 head', '2 heads'} and figures['1 head']['ratio'] == 1.0
    assert figures['2 heads']['ratio'] == pytest.approx(
        figures['2 heads']['iteration_s'] / figures['1 head']['iteration_s'])
