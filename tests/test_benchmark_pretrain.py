"""tools/benchmark_pretrain.py on a tiny ViT: the JSON it writes and how its FLOPs scale."""
import json
import os
import statistics
import subprocess
import sys

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from tools.benchmark_pretrain import (PHASES, Bench, build_model, make_batch, markdown_rows,
                                      parse_args, variant_list, variant_ratios)

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


VARIANT_KEYS = {'images_per_s', 'latency_median_ms', 'latency_p90_ms', 'iters', 'gflops',
                'native_roofline_fraction', 'peak_mem_mb', 'tflops', 'mfu_measured', 'mfu',
                'mfu_peak', 'split', 'split_ms', 'times', 'losses'}


def test_json_report(runs):
    res = runs[2]
    assert {'args', 'machine', 'setup', 'flops', 'roofline', 'float32_matmul_precision',
            'variants', 'ratios'} <= set(res)
    assert set(res['variants']) == {'sdpa fp32', 'math fp32'}
    assert res['setup']['masked_patches'] > 0
    roof = res['roofline']['fp32']
    for name, r in res['variants'].items():
        assert VARIANT_KEYS <= set(r) and r['iters'] == 2 == len(r['times'])
        # of 2 timed iterations the median is their mean and the p90 the slower one
        med_s = statistics.mean(r['times'])
        assert r['latency_median_ms'] == pytest.approx(1e3 * med_s)
        assert r['latency_p90_ms'] == pytest.approx(1e3 * max(r['times']))
        assert r['images_per_s'] == pytest.approx(2 / med_s)
        # the rates are the counted FLOPs over the median time, against the measured matmul
        assert r['gflops'] == pytest.approx(res['flops']['per_iteration'] / med_s / 1e9)
        assert r['tflops'] == pytest.approx(r['gflops'] / 1e3)
        assert r['mfu_measured'] == pytest.approx(r['gflops'] / roof['roofline_gflops'])
        assert r['mfu'] == r['mfu_measured']  # CPU: no datasheet peak
        assert r['mfu_peak'] == f"measured fp32 matmul {roof['roofline_gflops']:.1f} GFLOP/s"
        assert 0 < r['mfu'] <= 1
        assert r['peak_mem_mb'] is not None  # measured here; --no-memory gives None
        # every measured phase ran and took time, and they do not add up to more than the
        # iteration (the rest, EMA and centres, is what is left)
        assert list(r['split_ms']) == list(PHASES)
        assert all(r['split_ms'][p] > 0 for p in PHASES if p != 'rest')
        assert r['split_ms']['rest'] >= 0
        assert {'dino', 'ibot', 'koleo'} <= set(r['losses'])
        # the printed row carries the JSON's figures
        assert f"| {name} | {r['images_per_s']:.3f} |" in ' '.join(res['stdout'].split())
    (name, ratio), = res['ratios'].items()
    assert name == 'sdpa fp32 / math fp32' and ratio['setting'] == 'attention'
    sdpa, math = res['variants']['sdpa fp32'], res['variants']['math fp32']
    assert ratio['ratio'] == pytest.approx(sdpa['images_per_s'] / math['images_per_s'])
    assert ratio['paired_ratio'] == pytest.approx(
        statistics.median(m / s for s, m in zip(sdpa['times'], math['times'])))
    split = res['flops']['split']
    assert split['teacher_forward'] > 0 and split['student_forward'] > split['teacher_forward']
    assert split['backward'] > split['student_forward']  # about 2x the student forward
    assert 'sdpa fp32 / math fp32' in res['stdout']
    markdown = markdown_rows(runs['paths'])
    assert markdown.count('| dinov2_vits14 |') == 3
    assert f"| {sdpa['images_per_s']:.3f} |" in ' '.join(markdown.split())
    assert runs[4]['variants']['sdpa fp32']['peak_mem_mb'] is None  # --no-memory


def test_flops_match_an_independent_count(runs):
    """FlopCounterMode around one plain train_step of the same model and batch (math attention)."""
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper
    args = parse_args([*TINY, '--batch', '2'])
    model = build_model(args, torch.device('cpu'))
    batch = make_batch(args, model.student['backbone'].patch_size, torch.device('cpu'))
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.AdamW(params, lr=1e-4), clip_grad=dict(max_norm=3.0))
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', args.schedule_iters)
    hub.update_info('iter', 0)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.train_step(batch, wrapper)
    flops = runs[2]['flops']
    assert flops['per_iteration'] == counter.get_total_flops()
    assert flops['per_image'] == counter.get_total_flops() / 2
    split = flops['split']
    assert split['rest'] == 0  # EMA, centres and the optimiser step have no matmuls


def test_peak_memory_sees_a_large_allocation():
    """The extra memory iteration reports at least what it allocated (64 MiB, then freed)."""
    import time
    args = parse_args([*TINY, '--batch', '2', '--attention', 'sdpa'])
    bench = Bench(args, torch.device('cpu'))
    size = 64 * 2 ** 20

    def iteration(variant):
        x = torch.ones(size // 4)  # touches every page
        time.sleep(0.05)  # several samples while it is alive
        return float(x[-1])

    bench.iteration = iteration
    peak = bench.memory()['sdpa fp32']
    assert size * 0.95 <= peak < 3 * size


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
