"""tools/benchmark_suite.py: the synthetic suite end to end (--smoke), resuming, skipped
datasets, one-line errors for unknown names, and every suite file pointing at real configs and
zoo models."""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

import densedino
from tools import benchmark_suite
from tools.test import run_test

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_suite(*args: str) -> subprocess.CompletedProcess:
    """The tool as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, 'tools/benchmark_suite.py', *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    """One --smoke --train run of the synthetic suite: (work dir, process)."""
    work = str(tmp_path_factory.mktemp('suite'))
    proc = run_suite('--suite', 'synthetic', '--smoke', '--train', '--work-dir', work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


def test_smoke_suite_writes_results_that_tools_test_reproduces(smoke):
    """results.json's figures are those of tools/test.py's path on the saved checkpoint, with
    the config as the training run stored it."""
    work, proc = smoke
    with open(osp.join(work, 'results.json')) as f:
        results = json.load(f)
    assert set(results['versions']) == {'torch', 'mmengine', 'mmseg', 'densedino'}
    assert results['device']
    table = open(osp.join(work, 'results.md')).read()
    assert '| entry | metric | ours | paper | difference |' in table
    assert '| seg_synthetic_linear | mIoU |' in proc.stdout
    for name, metric in (('seg_synthetic_linear', 'mIoU'), ('depth_synthetic_linear', 'rmse')):
        record = results['entries'][name]
        assert record['status'] == 'done' and record['runtime_s'] > 0
        assert len(record['files'][record['checkpoint']]) == 64  # sha256
        assert record['value'] == record['metrics'][metric]
        config = osp.join(work, name, 'synthetic_linear.py')  # written by the training run
        cfg = Config.fromfile(config)
        cfg.work_dir = osp.join(work, name, 'recheck')
        _, metrics = run_test(cfg, argparse.Namespace(
            config=config, checkpoint=record['checkpoint'], out=None, show_dir=None, tta=False))
        assert metrics[metric] == pytest.approx(record['value'], rel=1e-6)


def test_resume_skips_finished_entries(smoke):
    work, _ = smoke
    checkpoint = osp.join(work, 'seg_synthetic_linear', 'iter_10.pth')
    before = os.stat(checkpoint).st_mtime_ns
    proc = run_suite('--suite', 'synthetic', '--smoke', '--work-dir', work, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count('finished in an earlier run, skipped (--resume)') == 2
    assert 'Iter(train)' not in proc.stderr + proc.stdout
    assert os.stat(checkpoint).st_mtime_ns == before
    assert '| depth_synthetic_linear | rmse |' in proc.stdout
    # results lost, checkpoints kept: the finished training is not run again, only the test
    os.remove(osp.join(work, 'results.json'))
    proc = run_suite('--suite', 'synthetic', '--smoke', '--work-dir', work, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count('already trained') == 2 and 'Iter(train)' not in proc.stderr
    assert os.stat(checkpoint).st_mtime_ns == before


def test_missing_dataset_is_skipped_with_one_line(tmp_path):
    proc = run_suite('--suite', 'dinov2_vits14', '--only', 'ade20k_linear', 'nyu_dpt',
                     '--data-root', str(tmp_path / 'data'), '--work-dir', str(tmp_path / 'w'))
    lines = [ln for ln in proc.stderr.splitlines() if 'skipped' in ln]
    assert len(lines) == 2, proc.stderr
    ade = osp.join(str(tmp_path / 'data'), 'ade', 'ADEChallengeData2016')
    assert f'no test data at {ade}' in lines[0] and 'images/validation' in lines[0]
    assert 'nyu_test.txt' in lines[1]
    assert proc.returncode == 1  # nothing ran
    with open(tmp_path / 'w' / 'results.json') as f:
        assert json.load(f)['entries']['nyu_dpt']['status'] == 'skipped'


@pytest.mark.parametrize('args, expected', [
    (('--suite', 'synthtic'), "unknown suite 'synthtic'; did you mean synthetic?"),
    (('--suite', 'dinov2_vits14', '--only', 'ade20k_lin'),
     "suite dinov2_vits14 has no entry 'ade20k_lin'; did you mean ade20k_linear"),
])
def test_unknown_names_give_one_line_with_the_nearest(args, expected):
    proc = run_suite(*args)
    assert proc.returncode != 0
    assert proc.stderr.strip().count('\n') == 0 and expected in proc.stderr, proc.stderr


@pytest.mark.parametrize('suite', benchmark_suite.suite_names())
def test_suite_entries_name_existing_configs_and_zoo_models(suite):
    entries, _ = benchmark_suite.load_suite(suite)
    assert entries
    assert len({e['name'] for e in entries}) == len(entries)
    for entry in entries:
        assert osp.isfile(osp.join(REPO, entry['config'])), entry
        assert entry['metric'] in ('mIoU', 'rmse') and isinstance(entry['target'], float)
        assert entry['source']
        if entry.get('zoo'):
            assert entry['zoo'] in densedino.list_models()
    if suite.startswith('dinov2_'):
        assert len(entries) == 10 and sum(e['tta'] for e in entries) == 2


def test_zoo_figures_are_read_not_restated():
    """The targets come from the zoo's figure text."""
    entries, _ = benchmark_suite.load_suite('dinov2_vits14')
    by_name = {e['name']: e for e in entries}
    assert by_name['ade20k_linear']['target'] == 44.3
    assert by_name['ade20k_ms']['tta'] and by_name['ade20k_ms']['source'] == 'DINOv2 Table 10'
    assert by_name['kitti_dpt']['metric'] == 'rmse' and by_name['kitti_dpt']['target'] == 2.34


def test_released_model_path_evaluates_through_tools_test(tmp_path, monkeypatch):
    """Without --train an entry's zoo model is assembled by densedino.init_model, saved as one
    checkpoint, evaluated by tools/test.py's function and deleted; the released files' sha256
    are recorded. (A stand-in zoo model: the released files are not on this machine.)"""
    synthetic, _ = benchmark_suite.load_suite('synthetic')
    seg = dict(synthetic[0], name='seg_released', zoo='fake_model')
    released = tmp_path / 'fake_head.pth'
    released.write_bytes(b'released weights')
    config = osp.join(REPO, seg['config'])
    data = str(tmp_path / 'data')
    options = {**seg['smoke'], **{f'{loader}.dataset.data_root': osp.join(data, 'synthetic')
                                  for loader in ('train_dataloader', 'val_dataloader',
                                                 'test_dataloader')}}
    ade = next(e for e in benchmark_suite.load_suite('dinov2_vits14')[0]
               if e['name'] == 'ade20k_linear')
    monkeypatch.setattr(benchmark_suite, 'load_suite',
                        lambda name: ([seg, dict(ade, smoke={})], False))
    monkeypatch.setattr(densedino, 'init_model',
                        lambda name: densedino.apis.init_model(config, cfg_options=options))
    monkeypatch.setattr(densedino.zoo, 'files', lambda name: ['part'])
    monkeypatch.setattr(densedino.zoo, 'fetch', lambda part: str(released))
    work = tmp_path / 'work'
    benchmark_suite.main(benchmark_suite.parse_args(
        ['--suite', 'synthetic', '--smoke', '--work-dir', str(work), '--data-root', data]))
    with open(work / 'results.json') as f:
        record = json.load(f)['entries']['seg_released']
    assert record['status'] == 'done' and record['zoo'] == 'fake_model'
    assert record['files'] == {str(released): benchmark_suite.sha256(str(released))}
    assert 0 <= record['value'] <= 100 and 'aAcc' in record['metrics']
    assert not (work / 'seg_released' / 'released_model.pth').exists()
    # the entry without its dataset was skipped, and the suite still finished (exit code 0:
    # main returned without SystemExit)
    with open(work / 'results.json') as f:
        assert json.load(f)['entries']['ade20k_linear']['status'] == 'skipped'


def test_train_on_another_backbone_records_its_hash(tmp_path):
    """--checkpoint: the heads train on the given backbone file, whose sha256 is recorded."""
    import torch
    backbone = str(tmp_path / 'backbone.pth')
    torch.save(densedino.create_backbone('dinov2_vits14', depth=4, embed_dim=32,
                                         num_heads=2).state_dict(), backbone)
    work = tmp_path / 'work'
    proc = run_suite('--suite', 'synthetic', '--smoke', '--only', 'seg_synthetic_linear',
                     '--checkpoint', backbone, '--work-dir', str(work))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(work / 'results.json') as f:
        record = json.load(f)['entries']['seg_synthetic_linear']
    assert record['backbone_checkpoint'] == backbone
    assert record['files'][backbone] == benchmark_suite.sha256(backbone)
    as_run = Config.fromfile(str(work / 'seg_synthetic_linear' / 'synthetic_linear.py'))
    assert as_run.model.backbone.checkpoint == backbone
    assert as_run.model.backbone.pretrained is False
