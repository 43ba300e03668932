"""tools/plot_pretrain.py: curves from a work directory's scalars.json."""
import json

import cv2
import pytest

from tools import plot_pretrain


def _write_run(work_dir, stamp='20260101_000000'):
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    lines = [{'knn/top1_k10': 30.0, 'knn/top1_k20': 32.0, 'step': 0}]
    for it in (10, 20, 30):
        lines.append({'loss': 10.0 - it / 10, 'dino': 6.0 - it / 20, 'ibot': 3.0, 'koleo': 0.1,
                      'lr': 1e-3, 'iter': it, 'step': it})
    lines.append({'knn/top1_k10': 51.0, 'knn/top1_k20': 49.5, 'step': 30})
    (vis / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    return vis / 'scalars.json'


def test_reads_series_and_writes_the_figure(tmp_path, capsys):
    path = _write_run(tmp_path / 'work')
    series = plot_pretrain.read_scalars(str(path))
    assert series['loss'] == [(10, 9.0), (20, 8.0), (30, 7.0)]
    assert series['knn/top1_k20'] == [(0, 32.0), (30, 49.5)]
    out = tmp_path / 'curves.png'
    plot_pretrain.main([str(tmp_path / 'work'), '--out', str(out), '--dpi', '50'])
    printed = capsys.readouterr().out
    assert 'knn/top1_k10: 51.00 (initialisation 30.00)' in printed
    assert 'knn/top1_k20: 49.50 (initialisation 32.00)' in printed
    image = cv2.imread(str(out))
    assert image.shape[:2] == (int(3.8 * 50), int(11 * 50))


def test_a_resumed_run_continues_the_curve(tmp_path):
    _write_run(tmp_path / 'work')
    vis = tmp_path / 'work' / '20260101_010000' / 'vis_data'  # resumed from iteration 20
    vis.mkdir(parents=True)
    lines = [{'loss': 7.5, 'iter': 30, 'step': 30}, {'loss': 7.0, 'iter': 40, 'step': 40}]
    (vis / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    series = plot_pretrain.read_scalars(*plot_pretrain.find_scalars(str(tmp_path / 'work')))
    assert series['loss'] == [(10, 9.0), (20, 8.0), (30, 7.5), (40, 7.0)]
    assert series['knn/top1_k10'][0] == (0, 30.0)  # the initialisation point is kept


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot_pretrain.main([str(tmp_path / 'missing')])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'missing does not exist' in err[0]
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit):
        plot_pretrain.main([str(tmp_path / 'empty')])
    assert 'no */vis_data/scalars.json' in capsys.readouterr().err
    bad = tmp_path / 'bad.json'
    bad.write_text('{"loss": 1, "step": 1}\nnot json\n')
    with pytest.raises(SystemExit):
        plot_pretrain.main([str(bad)])
    assert 'bad.json:2: not a JSON line' in capsys.readouterr().err
