"""Benchmark a densedino ViT backbone against Hugging Face transformers on the same weights.

Both models are built from one preset with the same random weights (the HF model is saved with
``save_pretrained`` and loaded into densedino through ``create_backbone(name, checkpoint=dir)``),
then timed in one process, interleaved iteration by iteration, at the same resolution, batch and
precision. Reported per model: images/s, latency (median, p90), peak memory during a forward,
achieved GFLOP/s (analytic matmul FLOPs) and the fraction of this machine's measured matmul
rate; plus the densedino / HF ratio and the difference of the normed patch tokens.

Example::

    python tools/benchmark_backbone.py --preset dinov2_vits14 --size 224 --batch 8 --dtype bf16 \\
        --threads 2 --out bench.json
    # a tiny smoke run
    python tools/benchmark_backbone.py --override depth=1 --override embed_dim=32 \\
        --override num_heads=2 --size 56 --batch 1 --iters 2 --warmup 1

Memory is measured in one extra, untimed forward per model after the timing loop. On CPU it is the
growth of the process resident set size (RSS, /proc/self/statm, sampled every ``--mem-interval``
seconds) above its value just before the forward, with glibc told to serve every allocation of
64 KiB or more by mmap (``mallopt(M_MMAP_THRESHOLD)``) so that freed tensors leave the RSS at once:
it then follows the live activations and temporaries (not the weights), plus allocator and library
scratch, and sampling can miss very short peaks. On CUDA it is ``torch.cuda.max_memory_allocated``
above the allocation before the forward.
"""
import argparse
import ctypes
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from tools._cli import parse_overrides  # noqa: E402
from densedino import create_backbone  # noqa: E402
from densedino.models.backbones import get_preset  # noqa: E402
from densedino.models.backbones.precision import to_bf16  # noqa: E402

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
HF_CLASSES = {'dinov1': 'ViTModel', 'dinov2': 'Dinov2Model',
              'dinov2_reg': 'Dinov2WithRegistersModel', 'dinov3': 'DINOv3ViTModel'}


def write_json(result: Dict, path: str) -> None:
    """Write a benchmark's result dict as indented JSON and say so on stderr."""
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    log(f'wrote {path}')


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def model_flops(model, height: int, width: int, batch: int) -> float:
    """Matmul FLOPs of one forward (2 per MAC): patch embed + per block qkv, attention, proj, FFN.

    Norms, softmax, GELU, residuals and position embeddings are not counted.
    """
    p, d = model.patch_size, model.embed_dim
    patches = (height // p) * (width // p)
    n = model.num_prefix_tokens + patches
    in_chans = model.patch_embed.proj.in_channels
    macs = patches * d * in_chans * p * p
    for blk in model.blocks:
        qkv = blk.attn.qkv
        macs += n * qkv.in_features * qkv.out_features          # qkv projection
        macs += 2 * n * n * d                                   # q k^T and attn @ v
        macs += n * d * blk.attn.proj.out_features              # output projection
        macs += sum(n * m.in_features * m.out_features          # FFN linears
                    for m in blk.mlp.modules() if isinstance(m, torch.nn.Linear))
    return 2.0 * macs * batch


# --------------------------------------------------------------- measuring
def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_matmul(a, b, fn, device, seconds: float) -> float:
    """GFLOP/s of the fastest ``fn(a, b)`` (square n x n) in repeats over about ``seconds``."""
    n = a.shape[0]
    fn(a, b)
    best, start = float('inf'), time.perf_counter()
    while time.perf_counter() - start < seconds:
        sync(device)
        t0 = time.perf_counter()
        fn(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def _matmul_size(dtype, device, seconds: float, fn) -> int:
    """Largest n in 512 .. 2048 (8192 on GPU) whose n x n product takes under ``seconds / 4``."""
    n, largest = 512, 8192 if device.type == 'cuda' else 2048
    while n < largest:
        a = torch.randn(n, n, device=device).to(dtype)
        sync(device)
        start = time.perf_counter()
        fn(a, a)
        sync(device)
        if 8 * (time.perf_counter() - start) > seconds / 4:  # 2n is 8x the work
            break
        n *= 2
    return n


def matmul_roofline(dtype: torch.dtype, device: torch.device, seconds: float) -> Dict:
    """This machine's peak square-matmul rate in ``dtype``, best of the A @ B and A @ B^T layouts.

    For bf16 on CPU it also measures bf16 operands multiplied in fp32 (upcast, sgemm, round back;
    the arithmetic of ``to_bf16(matmul='fp32')``) and plain fp32 operands, the hardware's FMA
    ceiling; ``roofline_gflops`` is the fastest variant, ``native_gflops`` the faster bf16 layout.
    """
    variants = {'nn': lambda a, b: a @ b, 'nt': lambda a, b: a @ b.t()}
    dtypes = dict.fromkeys(variants, dtype)
    if dtype == torch.bfloat16 and device.type == 'cpu':
        variants['fp32_compute'] = lambda a, b: (a.float() @ b.float().t()).to(a.dtype)
        variants['fp32'] = variants['nt']
        dtypes.update(fp32_compute=dtype, fp32=torch.float32)
    rates = {}
    for key, fn in variants.items():
        n = _matmul_size(dtypes[key], device, seconds, fn)
        a = torch.randn(n, n, device=device).to(dtypes[key])
        b = torch.randn(n, n, device=device).to(dtypes[key])
        rates[key] = {'n': n, 'gflops': _time_matmul(a, b, fn, device, seconds)}
    native = max(rates[k]['gflops'] for k in ('nn', 'nt'))
    return {'variants': rates, 'native_gflops': native,
            'roofline_gflops': max(v['gflops'] for v in rates.values())}


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _libc():
    try:
        return ctypes.CDLL('libc.so.6')
    except OSError:
        return None


def _malloc_trim() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def mmap_large_allocations(threshold: int = 64 * 1024) -> None:
    """Make glibc mmap (and on free, unmap) every allocation >= ``threshold`` bytes."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD; also stops glibc from raising it


class PeakMemory:
    """Peak memory growth during a ``with`` block: RSS sampling on CPU, allocator stats on CUDA."""

    def __init__(self, device: torch.device, interval: float) -> None:
        self.device, self.interval, self.peak = device, interval, 0

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        _malloc_trim()
        self.base = self.high = _rss_bytes()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(self.interval):
            self.high = max(self.high, _rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
            return
        self.stop.set()
        self.thread.join()
        self.peak = max(self.high, _rss_bytes()) - self.base


def timed_call(fn: Callable, x: torch.Tensor, device: torch.device) -> Tuple[float, torch.Tensor]:
    """(seconds, output) of one forward."""
    sync(device)
    start = time.perf_counter()
    out = fn(x)
    sync(device)
    return time.perf_counter() - start, out


def run_interleaved(fns: Dict[str, Callable], x: torch.Tensor, args, device) -> Dict:
    """Warm up then time each model in turn, alternating which goes first every iteration."""
    names = list(fns)
    times = {k: [] for k in names}
    outs, last = {}, {}
    total = args.warmup + args.iters
    spent = 0.0
    for i in range(total):
        warm = i < args.warmup
        for k in (names if i % 2 == 0 else names[::-1]):
            last[k], outs[k] = timed_call(fns[k], x, device)
            if not warm:
                times[k].append(last[k])
                spent += last[k]
        label = 'warmup' if warm else 'iter'
        log(f'  [{i + 1}/{total}] {label:6s} ' + '  '.join(f'{k} {last[k]:.3f}s' for k in names))
        if not warm and args.max_seconds and spent > args.max_seconds:
            log(f'  stopping after {len(times[names[0]])} timed iterations (--max-seconds)')
            break
    return {'times': times, 'outputs': outs}


def _allocator_peak(prof) -> Optional[int]:
    """Peak of live tensor bytes from a ``profile_memory=True`` profile (None if unavailable)."""
    try:  # kineto_results is not a documented attribute
        events = prof.profiler.kineto_results.events()
        allocs = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == '[memory]')
    except AttributeError:
        return None
    live = peak = 0
    for _, nbytes in allocs:
        live += nbytes
        peak = max(peak, live)
    return peak


def measure_memory(fns: Dict[str, Callable], x: torch.Tensor, device: torch.device,
                   interval: float) -> Dict[str, Tuple[int, Optional[int]]]:
    """(peak memory growth, torch CPU allocator peak) in bytes of one extra forward per model.

    The first is RSS growth on CPU and ``max_memory_allocated`` growth on CUDA (see the module
    docstring); the second, CPU only, is the peak of live tensor bytes that torch.profiler's
    memory events show, which no allocator caching or library scratch can blur.
    """
    from torch.profiler import ProfilerActivity, profile
    if device.type == 'cpu':
        mmap_large_allocations()  # after the timing loop: it changes allocation costs
    peaks = {}
    for k, fn in fns.items():
        alloc = None
        with PeakMemory(device, interval) as mem:
            if device.type == 'cpu':
                with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                    fn(x)
                alloc = _allocator_peak(prof)
            else:
                fn(x)
                sync(device)
        peaks[k] = (mem.peak, alloc)
        log(f'  memory {k}: {mem.peak / 2 ** 20:.1f} MB' + (
            '' if alloc is None else f', tensors {alloc / 2 ** 20:.1f} MB'))
    return peaks


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
              peaks: Tuple[int, Optional[int]]) -> Dict:
    """Throughput, latency (median, p90), GFLOP/s, roofline fractions and memory (MB)."""
    med = statistics.median(times)
    p90 = sorted(times)[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)]
    gflops = flops / med / 1e9
    mem, alloc = peaks
    return {'images_per_s': batch / med, 'latency_median_ms': 1e3 * med,
            'latency_p90_ms': 1e3 * p90, 'iters': len(times), 'gflops': gflops,
            'roofline_fraction': gflops / roof['roofline_gflops'],
            'native_roofline_fraction': gflops / roof['native_gflops'],
            'peak_mem_mb': mem / 2 ** 20 if mem >= 0 else None,
            'peak_tensor_mb': None if alloc is None else alloc / 2 ** 20}


def compare(a: torch.Tensor, b: torch.Tensor) -> Dict:
    """Max / mean abs difference and per-token cosine similarity (mean, min) of two (B, N, D)."""
    a, b = a.float(), b.float()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    return {'max_abs': (a - b).abs().max().item(), 'mean_abs': (a - b).abs().mean().item(),
            'cosine_mean': cos.mean().item(), 'cosine_min': cos.min().item()}


# ------------------------------------------------------------------ report
def machine_info(device: torch.device) -> Dict:
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        pass
    try:
        import transformers
        hf_version = transformers.__version__
    except ImportError:  # only the HF comparison needs it
        hf_version = None
    info = {'cpu': cpu, 'logical_cpus': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'torch': torch.__version__, 'transformers': hf_version,
            'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'python': platform.python_version()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def print_table(result: Dict) -> None:
    rows = [('model', 'img/s', 'lat med ms', 'lat p90 ms', 'peak MB', 'GFLOP/s', 'roofline')]
    for k in ('densedino', 'hf'):
        r = result[k]
        mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}"
        if r['peak_tensor_mb'] is not None:
            mem += f" ({r['peak_tensor_mb']:.0f})"
        rows.append((k, f"{r['images_per_s']:.2f}", f"{r['latency_median_ms']:.1f}",
                     f"{r['latency_p90_ms']:.1f}", mem, f"{r['gflops']:.1f}",
                     f"{100 * r['roofline_fraction']:.0f}%"))
    a = result['args']
    title = (f"{a['preset']} {a['size']}px batch {a['batch']} {a['dtype']} on {a['device']}"
             f" | matmul roofline {result['roofline']['roofline_gflops']:.1f} GFLOP/s")
    variants = result['roofline']['variants']
    if 'fp32_compute' in variants:
        title += (f" (native bf16 {result['roofline']['native_gflops']:.1f}, bf16 via fp32 "
                  f"{variants['fp32_compute']['gflops']:.1f}, "
                  f"fp32 {variants['fp32']['gflops']:.1f})")
    try:
        from rich.console import Console
        from rich.table import Table
        table = Table(title=title)
        for col in rows[0]:
            table.add_column(col, justify='right')
        for row in rows[1:]:
            table.add_row(*row)
        Console().print(table)
    except ImportError:
        print(title)
        for row in rows:
            print('  '.join(f'{c:>11s}' for c in row))
    if result['hf']['peak_tensor_mb'] is not None:
        print('peak MB: RSS growth during a forward (live tensor peak from torch.profiler)')
    print(f"densedino / HF throughput: {result['ratio']:.2f}x   "
          f"patch-token max |diff| vs HF: {result['diff_vs_hf']['max_abs']:.3g}")
    for k, v in result.get('vs_fp32', {}).items():
        print(f"{k} {a['dtype']} vs densedino fp32: max {v['max_abs']:.3g} mean {v['mean_abs']:.3g}"
              f" cosine mean {v['cosine_mean']:.5f} min {v['cosine_min']:.5f}")


def markdown_table(paths: List[str]) -> str:
    """One markdown row per result JSON (the table of docs/benchmarks.md)."""
    lines = ['| preset | size | batch | dtype | img/s ours | img/s HF | ours / HF | GFLOP/s ours | '
             'GFLOP/s HF | roofline GFLOP/s | ours % roofline | HF % roofline | '
             'max abs diff vs HF |',
             '|' + '---|' * 13]
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        a, o, h = r['args'], r['densedino'], r['hf']
        lines.append(
            f"| {a['preset']} | {a['size']} | {a['batch']} | {a['dtype']} | "
            f"{o['images_per_s']:.2f} | {h['images_per_s']:.2f} | {r['ratio']:.2f}x | "
            f"{o['gflops']:.0f} | {h['gflops']:.0f} | {r['roofline']['roofline_gflops']:.0f} | "
            f"{100 * o['roofline_fraction']:.0f}% | {100 * h['roofline_fraction']:.0f}% | "
            f"{r['diff_vs_hf']['max_abs']:.2g} |")
    return '\n'.join(lines)


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
    p.add_argument('--matmul', choices=('auto', 'native', 'fp32'), default='auto',
                   help='densedino bf16 GEMM mode (see densedino/models/backbones/precision.py)')
    p.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
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
    """Models in the benchmark precision, the input, and fp32 reference outputs (bf16 only)."""
    family = get_preset(args.preset).family
    ours, hf = build_models(args.preset, parse_overrides(args.override, '--override'))
    ours, hf = ours.to(device), hf.to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    refs = None
    if args.dtype == 'bf16':
        with torch.inference_mode():
            refs = forward_fns(ours, hf, family)[0](x)
        to_bf16(ours, matmul=args.matmul)
        hf = hf.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    fns = dict(zip(('densedino', 'hf'), forward_fns(ours, hf, family)))
    if args.compile:
        fns = {k: torch.compile(f) for k, f in fns.items()}
    return ours, fns, x, refs


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
    ours, fns, x, refs = prepare(args, device)
    log(f"measuring the {args.dtype} matmul rate on {device.type}")
    roof = matmul_roofline(DTYPES[args.dtype], device, args.roofline_seconds)
    flops = model_flops(ours, args.size, args.size, args.batch)
    log(f'timing: {flops / 1e9:.1f} GFLOP per forward, warmup {args.warmup}, iters {args.iters}')
    with torch.inference_mode():
        run = run_interleaved(fns, x, args, device)
        peaks = {k: (-1, None) for k in fns} if args.no_memory else \
            measure_memory(fns, x, device, args.mem_interval)
        prof = profile_ops(fns, x, args.profile) if args.profile else None
    result = {'args': vars(args), 'machine': machine_info(device), 'roofline': roof,
              'gflop_per_forward': flops / 1e9,
              'bf16_matmul': getattr(ours, 'bf16_matmul', None)}
    for k in fns:
        result[k] = summarize(run['times'][k], args.batch, flops, roof, peaks[k])
    if prof is not None:
        result['profile'] = prof
    result['ratio'] = result['densedino']['images_per_s'] / result['hf']['images_per_s']
    result['diff_vs_hf'] = compare(run['outputs']['densedino'], run['outputs']['hf'])
    if refs is not None:
        result['vs_fp32'] = {k: compare(run['outputs'][k], refs) for k in fns}
    print_table(result)
    if args.out:
        write_json(result, args.out)
    return result


if __name__ == '__main__':
    main()
