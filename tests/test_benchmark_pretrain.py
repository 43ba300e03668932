"""tools/benchmark_pretrain.py on a tiny ViT: the JSON it writes and how its FLOPs scale."""
import json
import os
import subprocess
import sys

import pytest

from tools.benchmark_pretrain import markdown_rows, parse_args, variant_list, variant_ratios

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'tools', 'benchmark_pretrain.py')
# 56 / 28 px crops: a 4 x 4 patch grid is the smallest on which block masking (at least 4
# patches a block) masks anything, so the iBOT path runs.
TINY = ['--override', 'depth=1', '--override', 'embed_dim=32', '--override', 'num_heads=2',
        '--global-size', '56', '--local-size', '28', '--n-local', '2', '--prototypes', '64',
        '--head-hidden', '32', '--head-bottleneck', '16', '--threads', '1',
        '--roofline-seconds', '0.02']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """JSON results of batch 2 (sdpa and math attention) and batch 4 (sdpa), run in parallel."""
    tmp = tmp_path_factory.mktemp('bench')
    jobs = {2: ['--attention', 'both', '--warmup', '1', '--iters', '2'],
            4: ['--attention', 'sdpa', '--no-memory', '--warmup', '0', '--iters', '1']}
    procs = {}
    for batch, extra in jobs.items():
        cmd = [sys.executable, BENCH, *TINY, '--batch', str(batch), *extra,
               '--out', str(tmp / f'b{batch}.json')]
        procs[batch] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=ROOT)
    out = {}
    for batch, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-2000:]
        out[batch] = json.loads((tmp / f'b{batch}.json').read_text())
        out[batch]['stdout'] = stdout
    out['paths'] = [str(tmp / f'b{b}.json') for b in jobs]
    return out


def test_json_report(runs):
    res = runs[2]
    assert set(res['variants']) == {'sdpa fp32', 'math fp32'}
    assert res['flops']['per_iteration'] > 0
    assert res['setup']['masked_patches'] > 0
    for r in res['variants'].values():
        assert r['images_per_s'] > 0 and r['iters'] == 2
        assert r['latency_p90_ms'] >= r['latency_median_ms'] > 0
        assert 0 < r['mfu'] <= 1 and 0 < r['mfu_measured'] <= 1
        assert r['peak_mem_mb'] is not None and r['peak_mem_mb'] >= 0
        assert sum(r['split'].values()) == pytest.approx(1.0)
        assert {'dino', 'ibot', 'koleo'} <= set(r['losses'])
    (name, ratio), = res['ratios'].items()
    assert name == 'sdpa fp32 / math fp32' and ratio['ratio'] > 0 and ratio['setting'] == 'attention'
    split = res['flops']['split']
    assert split['teacher_forward'] > 0 and split['student_forward'] > split['teacher_forward']
    assert split['backward'] > split['student_forward']  # about 2x the student forward
    assert 'sdpa fp32 / math fp32' in res['stdout']
    assert markdown_rows(runs['paths']).count('| dinov2_vits14 |') == 3


def test_flops_scale_with_batch(runs):
    ratio = runs[4]['flops']['per_iteration'] / runs[2]['flops']['per_iteration']
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_variants_and_ratios():
    args = parse_args(['--precision', 'both', '--attention', 'sdpa', '--compile', 'both'])
    names = [v['name'] for v in variant_list(args)]
    assert names == ['sdpa fp32', 'sdpa fp32 compiled', 'sdpa bf16', 'sdpa bf16 compiled']
    with pytest.raises(SystemExit, match='one attention path'):
        variant_list(parse_args(['--compile']))
    results = {n: {'images_per_s': 10.0 / (i + 1), 'times': [0.1 * (i + 1)] * 2}
               for i, n in enumerate(names)}
    ratios = variant_ratios(variant_list(args), results)
    assert set(ratios) == {'sdpa fp32 compiled / sdpa fp32', 'sdpa bf16 / sdpa fp32',
                           'sdpa bf16 compiled / sdpa fp32 compiled',
                           'sdpa bf16 compiled / sdpa bf16'}
    assert ratios['sdpa bf16 / sdpa fp32']['ratio'] == pytest.approx(1 / 3)
    assert ratios['sdpa bf16 / sdpa fp32']['paired_ratio'] == pytest.approx(1 / 3)
