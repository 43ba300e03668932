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
from densedino.evaluation import DEPTH_METRIC_KEYS
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


def test_smoke_figures_equal_a_recomputation_from_the_written_predictions(smoke):
    """The suite writes each entry's predictions; mIoU (and every class's IoU) and the depth
    metrics recomputed from those files and the dataset's ground truth with plain numpy equal
    results.json: label PNGs exactly (mmseg rounds to 2 decimals), depth PNGs (metres x 256)
    to their 1/256 m steps."""
    import cv2
    import numpy as np
    work, _ = smoke
    with open(osp.join(work, 'results.json')) as f:
        entries = json.load(f)['entries']
    data = osp.join(work, 'data', 'synthetic')
    seg = entries['seg_synthetic_linear']
    classes = list(seg['per_class_iou'])
    counts = np.zeros((3, len(classes)))  # intersection, predicted, labelled
    names = sorted(os.listdir(seg['predictions']))
    assert len(names) == 8  # every validation image, not only the drawn ones
    for name in names:
        # written in the label space of the files: reduce_zero_label undone (0 = ignored)
        pred = cv2.imread(osp.join(seg['predictions'], name), cv2.IMREAD_UNCHANGED).astype(int) - 1
        gt = cv2.imread(osp.join(data, 'ADEChallengeData2016', 'annotations', 'validation', name),
                        cv2.IMREAD_UNCHANGED).astype(int) - 1
        pred, gt = pred[gt >= 0], gt[gt >= 0]
        for c in range(len(classes)):
            counts[:, c] += [np.sum((pred == c) & (gt == c)), np.sum(pred == c), np.sum(gt == c)]
    union = counts[1] + counts[2] - counts[0]
    with np.errstate(invalid='ignore'):
        iou = 100 * counts[0] / union
    assert np.nanmean(iou) == pytest.approx(seg['value'], abs=0.005)
    for c, name in enumerate(classes):
        recorded = seg['per_class_iou'][name]
        assert (recorded is None) if union[c] == 0 else recorded == pytest.approx(iou[c], abs=1e-3)
    assert len(seg['panels']) == benchmark_suite.PANELS and len(seg['figures']) == 2
    assert all(cv2.imread(p) is not None for p in seg['panels'] + seg['figures'])

    depth = entries['depth_synthetic_linear']
    rmse, abs_rel = [], []
    with open(osp.join(data, 'nyu', 'nyu_test.txt')) as f:
        for line in f:
            rgb, gt_file, _ = line.split()
            pred = cv2.imread(osp.join(depth['predictions'], 'nyu', rgb[:-4] + '.png'),
                              cv2.IMREAD_UNCHANGED) / 256.0
            gt = cv2.imread(osp.join(data, 'nyu', gt_file), cv2.IMREAD_UNCHANGED) / 1000.0
            valid = (gt > 1e-3) & (gt < 10.0)
            p, g = np.clip(pred[valid], 1e-3, 10.0), gt[valid]
            rmse.append(np.sqrt(np.mean((p - g) ** 2)))
            abs_rel.append(np.mean(np.abs(p - g) / g))
    assert np.mean(rmse) == pytest.approx(depth['metrics']['rmse'], abs=2e-3)
    assert np.mean(abs_rel) == pytest.approx(depth['metrics']['abs_rel'], abs=1e-3)
    assert cv2.imread(osp.join(work, 'results.png')) is not None


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
        assert entry['metric'] in ('mIoU', *DEPTH_METRIC_KEYS)
        assert entry['target'] is None or isinstance(entry['target'], float)
        assert entry['source']
        if entry.get('zoo'):
            assert entry['zoo'] in densedino.list_models()
            # the released model is built from the zoo's config: the entry's must define the
            # same model, or its checkpoint would not load into the evaluated one
            released = Config.fromfile(osp.join(REPO, densedino.zoo.get(entry['zoo']).config))
            assert Config.fromfile(osp.join(REPO, entry['config'])).model == released.model
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


def test_depth_anything_suite_scores_relative_and_metric_models(tmp_path, monkeypatch):
    """The depth_anything_v2_small suite on NYU and KITTI fixtures (stand-in released models of
    the same configs, shrunk): every entry is scored, the relative model after a per-image
    least-squares scale and shift in disparity, which a plain numpy recomputation from the
    model's own predictions reproduces."""
    import cv2
    import numpy as np

    from densedino.apis import inference_model, init_model
    from tests.depth_fixtures import write_kitti_split, write_nyu_split
    data = tmp_path / 'data'
    nyu_root, _ = write_nyu_split(str(data)), write_kitti_split(str(data))
    tiny = {'model.backbone.arch_overrides': dict(depth=4, embed_dim=32, num_heads=2),
            'model.decode_head.channels': 16,
            'model.decode_head.post_process_channels': [8, 16, 32, 32]}
    loader = {'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False}
    fixture = {'nyu': {'test_evaluator.crop': None},  # the Eigen crop needs 480x640 frames
               'kitti': {'test_dataloader.dataset.pipeline.2.height': 32,  # KB crop of 40x136
                         'test_dataloader.dataset.pipeline.2.width': 128}}
    entries, _ = benchmark_suite.load_suite('depth_anything_v2_small')
    for e in entries:
        e['cfg_options'] = {**tiny, **loader, **fixture[e['name'].split('_')[0]]}
    models = {}

    def released(name):  # one stand-in per zoo model, built from an entry's config
        if name not in models:
            e = next(e for e in entries if e['zoo'] == name)
            models[name] = init_model(osp.join(REPO, e['config']), cfg_options=tiny)
        return models[name]
    monkeypatch.setattr(benchmark_suite, 'load_suite', lambda name: (entries, False))
    monkeypatch.setattr(densedino, 'init_model', released)
    monkeypatch.setattr(densedino.zoo, 'files', lambda name: [name])
    weights = tmp_path / 'released.pth'
    weights.write_bytes(b'released')
    monkeypatch.setattr(densedino.zoo, 'fetch', lambda part: str(weights))
    work = tmp_path / 'work'
    benchmark_suite.main(benchmark_suite.parse_args(
        ['--suite', 'depth_anything_v2_small', '--work-dir', str(work), '--data-root',
         str(data)]))
    with open(work / 'results.json') as f:
        records = json.load(f)['entries']
    assert [r['status'] for r in records.values()] == ['done'] * 4
    for name, r in records.items():
        assert set(r['metrics']) >= {'abs_rel', 'd1', 'rmse'}
        assert r['value'] == r['metrics'][r['metric']]
        assert len(r['panels']) == 2 and all(osp.isfile(p) for p in r['panels'])
    table = (work / 'results.md').read_text()
    assert '| nyu_relative | abs_rel |' in table and '| kitti_metric_outdoor | rmse |' in table
    assert cv2.imread(str(work / 'results.png')) is not None
    # the relative figure by hand: disparity -> least squares against 1 / gt -> depth
    abs_rel = []
    with open(osp.join(nyu_root, 'nyu_test.txt')) as f:
        for line in f:
            rgb, depth, _ = line.split()
            gt = cv2.imread(osp.join(nyu_root, depth), cv2.IMREAD_UNCHANGED) / 1000.0
            disp = inference_model(models['depth_anything_v2_small'],
                                   osp.join(nyu_root, rgb)).pred_depth_map.data[0].numpy()
            valid = (gt > 1e-3) & (gt < 10.0)
            x, y = disp[valid].astype(np.float64), 1.0 / gt[valid]
            (s, t), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
            pred = 1.0 / np.clip(s * x + t, 1 / 10.0, 1 / 1e-3)
            abs_rel.append(np.mean(np.abs(pred - gt[valid]) / gt[valid]))
    assert records['nyu_relative']['value'] == pytest.approx(np.mean(abs_rel), rel=1e-5)
