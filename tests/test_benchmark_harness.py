"""densedino.benchmark: the figures it computes, against hand-computed ones."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from densedino import benchmark, create_backbone
from densedino.benchmark import (PeakMemory, count_flops, flop_rates, format_table,
                                 machine_info, matmul_roofline, measure_peaks,
                                 mmap_large_allocations, percentile, run_interleaved, summarize,
                                 time_call, to_mb)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2 ** 20
CPU = torch.device('cpu')


# ------------------------------------------------------------------ figures
def test_percentile_and_summary_by_hand():
    values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]
    assert percentile(values, 0.9) == 9  # nearest rank: the 9th of 10 sorted values
    assert percentile(values, 0.5) == 5
    assert percentile(values, 1.0) == 10
    assert percentile([0.2, 0.1], 0.9) == 0.2  # of two, the slower one
    assert percentile([0.3], 0.9) == 0.3
    s = summarize([0.1, 0.3, 0.2], batch=4)
    assert s == pytest.approx({'images_per_s': 20.0, 'latency_median_ms': 200.0,
                               'latency_p90_ms': 300.0, 'iters': 3})
    s = summarize([0.4, 0.1, 0.2, 0.3], batch=1)  # even count: the median is interpolated
    assert s['latency_median_ms'] == pytest.approx(250.0)
    assert s['latency_p90_ms'] == pytest.approx(400.0)
    assert s['images_per_s'] == pytest.approx(4.0)
    roof = {'roofline_gflops': 200.0, 'native_gflops': 50.0}
    assert flop_rates(3e9, 0.03, roof) == pytest.approx(
        {'gflops': 100.0, 'roofline_fraction': 0.5, 'native_roofline_fraction': 2.0})
    assert to_mb(3 * MIB) == 3.0 and to_mb(-1) is None and to_mb(None) is None


# ------------------------------------------------------------------ FLOPs
def test_flop_count_of_known_ops():
    m, k, n = 16, 64, 32
    lin = torch.nn.Linear(k, n)
    x = torch.randn(m, k)
    with torch.no_grad():
        assert count_flops(lambda: lin(x)) == 2 * m * n * k  # the bias add counts 0
    a, b = torch.randn(3, m, k), torch.randn(3, k, n)
    assert count_flops(lambda: a @ b) == 3 * 2 * m * n * k
    q = k_ = v = torch.randn(2, 4, 10, 8)  # (B, heads, L, head dim)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    # math backend: q k^T and attn v, 2 * B * heads * L * L * head dim each
    assert count_flops(lambda: sdpa(q, k_, v)) == 2 * (2 * 2 * 4 * 10 * 10 * 8)


def test_backbone_flops_equal_the_analytic_matmul_count():
    """What tools/benchmark_backbone.py reports equals its former hand-written formula."""
    p, d, depth, size, batch = 14, 32, 2, 56, 3
    model = create_backbone('dinov2_vits14', img_size=size, embed_dim=d, depth=depth,
                            num_heads=2).eval()
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        counted = count_flops(lambda: model.forward_features(x))
    patches = (size // p) ** 2
    n = patches + 1  # + class token
    macs = patches * d * 3 * p * p  # patch embedding
    macs += depth * (n * d * 3 * d + 2 * n * n * d + n * d * d + 2 * n * d * 4 * d)
    assert counted == 2 * macs * batch


# ------------------------------------------------------------------ timing
def test_interleaved_timer_alternates_and_skips_warmup():
    calls, seen = [], []

    def candidate(name):
        def fn():
            calls.append(name)
            return f'{name}{len(calls)}'
        return fn

    run = run_interleaved({'a': candidate('a'), 'b': candidate('b')}, iters=3, warmup=1,
                          on_timed=lambda name, s, out: seen.append((name, out)), progress=None)
    assert calls == ['a', 'b', 'b', 'a', 'a', 'b', 'b', 'a']
    assert seen == [('b', 'b3'), ('a', 'a4'), ('a', 'a5'), ('b', 'b6'), ('b', 'b7'),
                    ('a', 'a8')]  # the warm-up iteration is not recorded
    assert {k: len(v) for k, v in run.times.items()} == {'a': 3, 'b': 3}
    assert run.last == {'a': 'a8', 'b': 'b7'}


def test_interleaved_timer_times_each_call_and_stops_at_max_seconds(monkeypatch):
    clock = [0.0]  # a fake perf_counter that only the candidates advance
    monkeypatch.setattr(benchmark.time, 'perf_counter', lambda: clock[0])

    def takes(seconds):
        return lambda: clock.__setitem__(0, clock[0] + seconds)

    run = run_interleaved({'slow': takes(0.03), 'fast': takes(0.001)}, iters=5, warmup=1,
                          max_seconds=0.05, progress=None)
    # the warm-up does not count; 0.031 s per timed iteration: past 0.05 s after the second
    assert run.times['slow'] == pytest.approx([0.03, 0.03])
    assert run.times['fast'] == pytest.approx([0.001, 0.001])


def test_time_call_returns_the_result_and_its_duration():
    seconds, out = time_call(lambda: time.sleep(0.02) or 7, CPU)
    assert out == 7 and 0.02 <= seconds < 1.0


# ------------------------------------------------------------------ memory
def test_rss_probe_sees_a_live_allocation_and_not_a_freed_one():
    mmap_large_allocations()
    size = 64 * MIB
    with PeakMemory(CPU, interval=0.001) as mem:
        x = torch.ones(size // 4)  # touches every page
        time.sleep(0.05)
        del x
    assert 0.95 * size <= mem.peak < size + 16 * MIB
    x = torch.ones(size // 4)
    del x
    with PeakMemory(CPU, interval=0.001) as mem:
        time.sleep(0.05)
    assert mem.peak < 8 * MIB


def test_measure_peaks_reports_rss_and_live_tensor_bytes():
    n = 4 * MIB // 4  # 4 MiB of float32

    def two_tensors():
        a = torch.ones(n)
        b = a + 1  # both alive at once: 8 MiB
        time.sleep(0.02)
        return float(b[0])

    peak = measure_peaks({'two': two_tensors}, CPU, tensors=True, progress=None)['two']
    assert 8 * MIB <= peak.tensor_bytes < 8 * MIB + 64 * 1024
    assert 0.9 * 8 * MIB <= peak.bytes < 8 * MIB + 16 * MIB
    plain = measure_peaks({'two': two_tensors}, CPU, progress=None)['two']
    assert plain.tensor_bytes is None


# ------------------------------------------------------------------ roofline, machine
def test_matmul_roofline_is_the_best_variant():
    roof = matmul_roofline(torch.bfloat16, CPU, seconds=0.01)
    rates = {k: v['gflops'] for k, v in roof['variants'].items()}
    assert set(rates) == {'nn', 'nt', 'fp32_compute', 'fp32'}  # bf16 on CPU: also via fp32
    assert roof['native_gflops'] == max(rates['nn'], rates['nt'])
    assert roof['roofline_gflops'] == max(rates.values())
    assert all(512 <= v['n'] <= 2048 for v in roof['variants'].values())


def test_machine_info_names_this_machine():
    info = machine_info(CPU, packages=('pytest', 'no-such-package-densedino'))
    with open('/proc/cpuinfo') as f:
        name = next(ln for ln in f if ln.startswith('model name')).split(':', 1)[1].strip()
    assert info['cpu'] == name
    assert info['torch'] == torch.__version__ and info['pytest'] == pytest.__version__
    assert info['torch_threads'] == torch.get_num_threads()
    assert info['no-such-package-densedino'] is None
    assert 'gpu' not in info


# ------------------------------------------------------------------ tables
def _cells(line):
    return [c for c in line.split('|')[1:-1]]


def test_markdown_table_keeps_cells_and_alignment():
    long = 'x' * 150  # never cut, whatever the terminal width
    text = format_table(('name', 'img/s', 'note'), [('densedino', '12.48', long), ('hf', 1.5, 'a')],
                        title='a title', markdown=True, align='lrl')
    lines = text.splitlines()
    assert lines[0] == 'a title'
    header, rule, *rows = lines[1:]
    assert [c.strip() for c in _cells(header)] == ['name', 'img/s', 'note']
    assert [c.strip() for c in _cells(rows[0])] == ['densedino', '12.48', long]
    assert [c.strip() for c in _cells(rows[1])] == ['hf', '1.5', 'a']
    left, right, _ = _cells(rule)
    assert left.strip().startswith(':') and right.strip().endswith(':')
    name, fig, _ = _cells(rows[1])
    assert name.startswith(' hf ') and fig.endswith(' 1.5 ')  # left- and right-aligned


def test_plain_table_right_aligns_figures():
    text = format_table(('model', 'GFLOP/s'), [('densedino', '153.0'), ('hf', '18.1')])
    rows = [ln for ln in text.splitlines() if ln.startswith('|')]
    assert [c.strip() for c in _cells(rows[1])] == ['densedino', '153.0']
    assert _cells(rows[2])[0].startswith(' hf ') and _cells(rows[2])[1].endswith(' 18.1 ')


# ------------------------------------------------------------------ seg tool
def test_seg_train_benchmark_smoke(tmp_path):
    out = tmp_path / 'seg.json'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'benchmark_seg_train.py'),
           'configs/seg/ade20k_linear.py', '--iters', '2', '--warmup', '1', '--batch', '1',
           '--threads', '1', '--arch-overrides', '{"depth": 1}', '--out', str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res['batch'] == 1 and res['crop'] == [512, 512] and res['loss'] == 'fused'
    assert res['ratio'] == pytest.approx(res['train_step_s'] / res['backbone_forward_s'])
    assert res['train_step_s'] > res['backbone_forward_s']  # the step includes the forward
    assert f"ratio {res['ratio']:.3f}" in proc.stdout
    assert f"backbone forward {res['backbone_forward_s'] * 1e3:.0f} ms" in proc.stdout
    # one timed call of each per iteration, interleaved
    assert proc.stderr.count('] iter ') == 2 and proc.stderr.count('] warmup ') == 1
