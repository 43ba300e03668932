"""Benchmark a densedino ViT backbone against Hugging Face transformers on the same weights.

Both models are built from one preset with the same random weights (the HF model is saved with
``save_pretrained`` and loaded into densedino through ``create_backbone(name, checkpoint=dir)``),
then timed in one process, interleaved iteration by iteration, at the same resolution, batch and
precision. Reported per model: images/s, latency (median, p90), peak memory during a forward,
achieved GFLOP/s and the fraction of this machine's measured matmul rate; plus the densedino / HF
ratio and the difference of the normed patch tokens.

Example::

    python tools/benchmark_backbone.py --preset dinov2_vits14 --size 224 --batch 8 --dtype bf16 \\
        --threads 2 --out bench.json
    # a tiny smoke run
    python tools/benchmark_backbone.py --override depth=1 --override embed_dim=32 \\
        --override num_heads=2 --size 56 --batch 1 --iters 2 --warmup 1

The measuring is ``densedino.benchmark``'s (its docstring has the details). FLOPs are those of one
eager densedino forward of the benchmark batch, counted by ``FlopCounterMode`` with attention on
SDPA's math backend: matmuls and the patch-embedding convolution, 2 per multiply-add (patch
embedding plus, per block, qkv, q k^T, attn v, proj and FFN); norms, softmax, GELU, residuals and
position embeddings count 0. Both models do the same matmuls, so one count serves both.

Memory is measured in one extra, untimed forward per model after the timing loop. On CPU it is the
growth of the process resident set size (RSS, /proc/self/statm, sampled every ``--mem-interval``
seconds) above its value just before the forward, with glibc told to serve every allocation of
64 KiB or more by mmap (``mallopt(M_MMAP_THRESHOLD)``) so that freed tensors leave the RSS at once:
it then follows the live activations and temporaries (not the weights), plus allocator and library
scratch, and sampling can miss very short peaks. In brackets: the live-tensor peak from
torch.profiler's memory events. On CUDA it is ``torch.cuda.max_memory_allocated`` above the
allocation before the forward.
"""
import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from densedino.cli import OverridesAction  # noqa: E402
from densedino import create_backbone  # noqa: E402
from densedino.benchmark import (MemoryPeak, count_flops, flop_rates, log,  # noqa: E402
                                 machine_info, matmul_roofline, measure_peaks, print_table,
                                 format_table, run_interleaved, to_mb, write_json)
from densedino.benchmark import summarize as harness_summary  # noqa: E402
from densedino.models.backbones import get_preset, to_bf16  # noqa: E402

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
HF_CLASSES = {'dinov1': 'ViTModel', 'dinov2': 'Dinov2Model',
              'dinov2_reg': 'Dinov2WithRegistersModel', 'dinov3': 'DINOv3ViTModel'}


# ----------------------------------------------------------------- models


def hf_config(family: str, kw: Dict):
    """The transformers config matching resolved densedino constructor options ``kw``."""
    import transformers
    common = dict(hidden_size=kw['embed_dim'], num_hidden_layers=kw['depth'],
                  num_attention_heads=kw['num_heads'], patch_size=kw['patch_size'],
                  layer_norm_eps=kw['norm_eps'])
    if family == 'dinov1':
        return transformers.ViTConfig(**common, image_size=kw['img_size'], hidden_act='gelu',
                                      intermediate_size=int(kw['embed_dim'] * kw['ffn_ratio']),
                                      qkv_bias=kw['qkv_bias'])
    if family in ('dinov2', 'dinov2_reg'):
        ratio = kw['ffn_ratio']
        ratio = int(ratio) if float(ratio).is_integer() else ratio  # transformers wants an int
        opts = dict(common, image_size=kw['img_size'], mlp_ratio=ratio,
                    use_swiglu_ffn=kw['ffn_layer'] != 'mlp', qkv_bias=kw['qkv_bias'],
                    layerscale_value=kw['layerscale_init'])
        if family == 'dinov2':
            return transformers.Dinov2Config(**opts)
        return transformers.Dinov2WithRegistersConfig(
            **opts, num_register_tokens=kw['num_register_tokens'])
    from densedino.models.layers import swiglu_hidden_dim
    gated = kw['ffn_layer'] != 'mlp'
    hidden = int(kw['embed_dim'] * kw['ffn_ratio'])
    hidden = swiglu_hidden_dim(hidden, kw['ffn_align']) if gated else hidden
    # LayerScale 1 (not DINOv3's 1e-5 init) so that random blocks change the tokens.
    return transformers.DINOv3ViTConfig(
        **common, intermediate_size=hidden, use_gated_mlp=gated,
        hidden_act='silu' if gated else 'gelu', rope_theta=kw['rope_base'],
        num_register_tokens=kw['num_register_tokens'], layerscale_value=1.0,
        query_bias=kw['qkv_bias'], value_bias=kw['qkv_bias'], proj_bias=kw['proj_bias'],
        mlp_bias=kw['ffn_bias'])


def build_models(name: str, overrides: Dict) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """(densedino model, HF model), fp32, same random weights, eval mode."""
    import transformers
    preset = get_preset(name)
    if preset.family not in HF_CLASSES:
        raise SystemExit(f'{name}: no Hugging Face counterpart for family {preset.family!r}')
    if preset.family in ('dinov1', 'dinov2'):
        # transformers resamples positions with size= (no +0.1 offset); match it to compare.
        overrides = {'interpolate_offset': 0.0, **overrides}
    kw = {**preset.kwargs, **overrides}
    kw.setdefault('ffn_ratio', 4.0)
    kw.setdefault('ffn_align', 8)
    kw.setdefault('qkv_bias', True)
    kw.setdefault('proj_bias', True)
    kw.setdefault('ffn_bias', True)
    kw.setdefault('num_register_tokens', 0)
    cfg = hf_config(preset.family, kw)
    cls = getattr(transformers, HF_CLASSES[preset.family])
    hf = cls(cfg, add_pooling_layer=False) if preset.family == 'dinov1' else cls(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = create_backbone(name, checkpoint=tmp, **overrides)
    return ours.eval(), hf.eval()


def forward_fns(ours, hf, family: str) -> Tuple[Callable, Callable]:
    """Callables image batch -> normed patch tokens (B, h * w, D) for both models."""
    n_prefix = ours.num_prefix_tokens
    hf_kwargs = {'interpolate_pos_encoding': True} if family == 'dinov1' else {}

    def run_ours(x):
        return ours.forward_features(x)['x_norm_patchtokens']

    def run_hf(x):
        return hf(pixel_values=x, **hf_kwargs).last_hidden_state[:, n_prefix:]

    return run_ours, run_hf


def profile_ops(fns: Dict[str, Callable], x: torch.Tensor, rows: int) -> Dict[str, List]:
    """torch.profiler of one forward per model: the ``rows`` ops with the most self time."""
    from torch.profiler import ProfilerActivity, profile
    tables = {}
    for k, fn in fns.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(x)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        tables[k] = [{'op': e.key, 'calls': e.count, 'self_ms': e.self_cpu_time_total / 1e3,
                      'share': e.self_cpu_time_total / total} for e in events[:rows]]
        log(f'  profile {k}: ' + ', '.join(
            f"{r['op']} {100 * r['share']:.0f}%" for r in tables[k]))
    return tables


def summarize(times: List[float], batch: int, flops: float, roof: Dict,
              peak: Optional[MemoryPeak]) -> Dict:
    """Throughput, latency (median, p90), GFLOP/s, roofline fractions and memory (MB)."""
    out = harness_summary(times, batch)
    out.update(flop_rates(flops, statistics.median(times), roof))
    out['peak_mem_mb'] = None if peak is None else to_mb(peak.bytes)
    out['peak_tensor_mb'] = None if peak is None else to_mb(peak.tensor_bytes)
    return out


def compare(a: torch.Tensor, b: torch.Tensor) -> Dict:
    """Max / mean abs difference and per-token cosine similarity (mean, min) of two (B, N, D)."""
    a, b = a.float(), b.float()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    return {'max_abs': (a - b).abs().max().item(), 'mean_abs': (a - b).abs().mean().item(),
            'cosine_mean': cos.mean().item(), 'cosine_min': cos.min().item()}


# ------------------------------------------------------------------ report
COLUMNS = ('model', 'img/s', 'lat med ms', 'lat p90 ms', 'peak MB', 'GFLOP/s', 'roofline')


def table_title(result: Dict) -> str:
    """The run's setting and the matmul rates the roofline column is relative to."""
    a, roof = result['args'], result['roofline']
    title = (f"{a['preset']} {a['size']}px batch {a['batch']} {a['dtype']} on {a['device']}"
             f" | matmul roofline {roof['roofline_gflops']:.1f} GFLOP/s")
    variants = roof['variants']
    if 'fp32_compute' in variants:
        title += (f" (native bf16 {roof['native_gflops']:.1f}, bf16 via fp32 "
                  f"{variants['fp32_compute']['gflops']:.1f}, "
                  f"fp32 {variants['fp32']['gflops']:.1f})")
    return title


def report(result: Dict) -> None:
    """The per-model table, the ratio and the output differences, on stdout."""
    rows = []
    for k in [k for k in ('densedino', 'hf', 'densedino_compiled', 'hf_compiled') if k in result]:
        r = result[k]
        mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}"
        if r['peak_tensor_mb'] is not None:
            mem += f" ({r['peak_tensor_mb']:.0f})"
        rows.append((k, f"{r['images_per_s']:.2f}", f"{r['latency_median_ms']:.1f}",
                     f"{r['latency_p90_ms']:.1f}", mem, f"{r['gflops']:.1f}",
                     f"{100 * r['roofline_fraction']:.0f}%"))
    print_table(COLUMNS, rows, title=table_title(result))
    if result['hf']['peak_tensor_mb'] is not None:
        print('peak MB: RSS growth during a forward (live tensor peak from torch.profiler)')
    for k, v in result.get('compile_speedup', {}).items():
        print(f'{k}: torch.compile {v:.2f}x eager')
    print(f"densedino / HF throughput: {result['ratio']:.2f}x   "
          f"patch-token max |diff| vs HF: {result['diff_vs_hf']['max_abs']:.3g}")
    for k, v in result.get('vs_fp32', {}).items():
        print(f"{k} {result['args']['dtype']} vs densedino fp32: max {v['max_abs']:.3g} "
              f"mean {v['mean_abs']:.3g} cosine mean {v['cosine_mean']:.5f} "
              f"min {v['cosine_min']:.5f}")


MARKDOWN_COLUMNS = ('preset', 'size', 'batch', 'dtype', 'img/s ours', 'img/s HF', 'ours / HF',
                    'GFLOP/s ours', 'GFLOP/s HF', 'roofline GFLOP/s', 'ours % roofline',
                    'HF % roofline', 'max abs diff vs HF')


def markdown_table(paths: List[str]) -> str:
    """One markdown row per result JSON (the table of docs/benchmarks.md)."""
    rows = []
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        a, o, h = r['args'], r['densedino'], r['hf']
        rows.append((a['preset'], a['size'], a['batch'], a['dtype'], f"{o['images_per_s']:.2f}",
                     f"{h['images_per_s']:.2f}", f"{r['ratio']:.2f}x", f"{o['gflops']:.0f}",
                     f"{h['gflops']:.0f}", f"{r['roofline']['roofline_gflops']:.0f}",
                     f"{100 * o['roofline_fraction']:.0f}%",
                     f"{100 * h['roofline_fraction']:.0f}%",
                     f"{r['diff_vs_hf']['max_abs']:.2g}"))
    return format_table(MARKDOWN_COLUMNS, rows, markdown=True, align='lrrl' + 'r' * 9)


# -------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--preset', default='dinov2_vits14')
    p.add_argument('--size', type=int, default=224, help='square input side in pixels')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    p.add_argument('--iters', type=int, default=10, help='timed iterations per model (max)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--max-seconds', type=float, default=0.0,
                   help='stop timing once both models together spent this long (0: no limit)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--compile', action='store_true', help='torch.compile both models')
    p.add_argument('--compare-compile', action='store_true', help='time eager and '
                   'torch.compile\'d forwards of both models side by side (densedino_compiled, '
                   'hf_compiled rows and their speed-ups over eager)')
    p.add_argument('--matmul', choices=('auto', 'native', 'fp32'), default='auto',
                   help='densedino bf16 GEMM mode (see densedino/models/backbones/precision.py)')
    p.add_argument('--override', nargs='+', action=OverridesAction, default={},
                   metavar='KEY=VALUE',
                   help='preset option override for both models, e.g. depth=1 (repeatable)')
    p.add_argument('--roofline-seconds', type=float, default=1.0)
    p.add_argument('--mem-interval', type=float, default=0.001)
    p.add_argument('--no-memory', action='store_true', help='skip the extra memory forward')
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='after timing, profile one forward per model and list its top N ops')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--table-from', nargs='+', metavar='JSON',
                   help='print a markdown table of earlier --out files and exit')
    return p.parse_args(argv)


def prepare(args, device):
    """Models in the benchmark precision: the eager forwards, the timed ones (compiled with
    ``--compile``), the input, and fp32 reference outputs (bf16 only)."""
    family = get_preset(args.preset).family
    ours, hf = build_models(args.preset, args.override)
    ours, hf = ours.to(device), hf.to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    refs = None
    if args.dtype == 'bf16':
        with torch.inference_mode():
            refs = forward_fns(ours, hf, family)[0](x)
        to_bf16(ours, matmul=args.matmul)
        hf = hf.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    eager = dict(zip(('densedino', 'hf'), forward_fns(ours, hf, family)))
    fns = {k: torch.compile(f) for k, f in eager.items()} if args.compile else dict(eager)
    if args.compare_compile:
        fns.update({f'{k}_compiled': torch.compile(f) for k, f in eager.items()})
    return ours, eager, fns, x, refs


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.table_from:
        print(markdown_table(args.table_from))
        return {}
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    log(f'building {args.preset} (densedino + transformers, same random weights)')
    ours, eager, fns, x, refs = prepare(args, device)
    log(f"measuring the {args.dtype} matmul rate on {device.type}")
    roof = matmul_roofline(DTYPES[args.dtype], device, args.roofline_seconds)
    calls = {k: functools.partial(f, x) for k, f in fns.items()}
    with torch.inference_mode():
        flops = count_flops(functools.partial(eager['densedino'], x))
        log(f'timing: {flops / 1e9:.1f} GFLOP per forward, warmup {args.warmup}, '
            f'iters {args.iters}')
        run = run_interleaved(calls, args.iters, args.warmup, device, args.max_seconds)
        peaks = dict.fromkeys(fns) if args.no_memory else \
            measure_peaks(calls, device, args.mem_interval, tensors=True)
        prof = profile_ops(fns, x, args.profile) if args.profile else None
    result = {'args': vars(args), 'machine': machine_info(device), 'roofline': roof,
              'gflop_per_forward': flops / 1e9,
              'flops_counted_with': 'FlopCounterMode, one eager densedino forward, math attention',
              'bf16_matmul': getattr(ours, 'bf16_matmul', None)}
    for k in fns:
        result[k] = summarize(run.times[k], args.batch, flops, roof, peaks[k])
    if prof is not None:
        result['profile'] = prof
    result['ratio'] = result['densedino']['images_per_s'] / result['hf']['images_per_s']
    if args.compare_compile:
        result['compile_speedup'] = {k: result[f'{k}_compiled']['images_per_s']
                                     / result[k]['images_per_s'] for k in ('densedino', 'hf')}
    result['diff_vs_hf'] = compare(run.last['densedino'], run.last['hf'])
    if refs is not None:
        result['vs_fp32'] = {k: compare(run.last[k], refs) for k in fns}
    report(result)
    if args.out:
        write_json(result, args.out)
    return result


if __name__ == '__main__':
    main()
