"""tools/gpu_report.py end to end on the CPU at smoke sizes: every section reports numbers or an
error, the markdown table is written, and the MFU figures are the arithmetic they claim."""
import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SECTIONS = ('matmul', 'backbone', 'seg_train', 'pretrain', 'depth_demo')


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_report')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'gpu_report.py'), '--device',
                           'cpu', '--smoke', '--out', str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / 'gpu_report.json') as f:
        return json.load(f), (out / 'gpu_report.md').read_text(), proc.stdout


def measured(entry: dict) -> bool:
    """A part either measured (no error / skip) or says why not in a string."""
    reason = entry.get('error', entry.get('skipped'))
    assert reason is None or (isinstance(reason, str) and reason), entry
    return reason is None


def test_every_section_has_numbers_or_an_error(report):
    rep, _, _ = report
    assert rep['device'] == 'cpu' and rep['smoke'] is True
    s = rep['sections']
    assert set(SECTIONS) <= set(s)
    for name in SECTIONS:
        assert isinstance(s[name]['seconds'], float)
    assert measured(s['matmul']) and s['matmul']['matmul_gflops'] > 0
    assert measured(s['seg_train']) and s['seg_train']['ratio'] > 0
    assert s['seg_train']['train_images_per_s'] > 0
    assert measured(s['depth_demo']) and s['depth_demo']['model_fps'] > 0
    assert s['depth_demo']['loop_fps'] <= s['depth_demo']['model_fps']
    first = s['backbone']['dinov2_vitl14']  # the first preset always runs
    assert measured(first) and measured(first['eager'])
    assert first['eager']['densedino']['images_per_s'] > 0
    assert first['eager']['hf']['images_per_s'] > 0
    assert measured(s['pretrain']['dinov2_vits14'])


def test_markdown_table_lists_every_section(report):
    _, md, stdout = report
    assert md in stdout + '\n' or md.strip() in stdout
    lines = [ln for ln in md.splitlines() if ln.startswith('|')]
    assert lines[0].split('|')[1].strip() == 'section'
    for name in SECTIONS:
        assert any(ln.split('|')[1].strip() == name for ln in lines[2:]), name


def test_mfu_is_flops_over_time_over_the_matmul_rate(report):
    rep, _, _ = report
    s = rep['sections']
    rate = s['matmul']['matmul_gflops']
    checked = 0
    for preset in s['backbone'].values():
        if not isinstance(preset, dict) or not measured(preset):
            continue
        for mode in ('eager', 'compiled'):
            if mode not in preset or not measured(preset[mode]):
                continue
            for model in ('densedino', 'hf'):
                r = preset[mode][model]
                gflops = preset['flops_per_image'] * preset['batch'] / r['median_s'] / 1e9
                assert r['achieved_gflops'] == pytest.approx(gflops, rel=1e-9)
                assert r['mfu'] == pytest.approx(gflops / rate, rel=1e-9)
                assert r['images_per_s'] == pytest.approx(preset['batch'] / r['median_s'])
                checked += 1
    for r in s['pretrain'].values():
        if not isinstance(r, dict) or not measured(r):
            continue
        gflops = r['flops_per_iteration'] / r['median_s'] / 1e9
        assert r['mfu'] == pytest.approx(gflops / rate, rel=1e-9)
        assert r['flops_per_iteration'] > 0
        checked += 1
    assert checked >= 3
