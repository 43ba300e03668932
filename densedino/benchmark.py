"""The measuring half of the benchmark tools: timing, memory, FLOPs, matmul roofline, report.

``tools/benchmark_backbone.py``, ``tools/benchmark_pretrain.py`` and
``tools/benchmark_seg_train.py`` build what they measure and call this module to measure it, so
every tool times, counts and prints the same way.

**Timing.** :func:`run_interleaved` warms up, then calls every candidate once per iteration,
flipping the order on every iteration, in one process: background load and clock drift hit all
candidates alike, and none always runs first. Each call is timed on its own with
``time.perf_counter``, synchronised before and after on CUDA (kernels run asynchronously).
Latency is the median and the p90 of the timed calls (:func:`percentile`: nearest rank);
images/s is the batch over the median.

**Memory** (:class:`PeakMemory`, :func:`measure_peaks`: one extra, untimed call per candidate
after the timing loop). On CPU it is the growth of the process resident set size (RSS, read from
``/proc/self/statm`` by a thread every ``interval`` seconds) above its value just before the call.
Before that call glibc is told to serve every allocation of 64 KiB or more by mmap
(``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc from raising the threshold by itself), so a
freed tensor leaves the RSS at once: without it, glibc's heap keeps freed pages and which
candidate runs second changes its figure. The RSS then follows the live activations and
temporaries (not what existed before, such as weights), plus allocator rounding and library
scratch (MKL, oneDNN, OpenMP); sampling can miss peaks shorter than ``interval``. This is set only
after timing, since an mmap per allocation makes allocating slower, and it lasts for the rest of
the process. Optionally also the peak of live tensor bytes from torch.profiler's memory events,
which no allocator or library scratch blurs. ``tracemalloc`` does not see torch's allocations.
On CUDA it is ``torch.cuda.max_memory_allocated`` above the allocation before the call.

**FLOPs** (:func:`count_flops`) are what ``torch.utils.flop_counter.FlopCounterMode`` counts in
one eager call: matmuls, convolutions and attention, 2 FLOPs per multiply-add; norms,
activations and other element-wise work count 0. Attention is forced onto SDPA's math backend
while counting, where it is plain matmuls (q k^T and attn v; four in the backward): torch 2.13 has
no formula for the CPU flash kernel (it counts 0), and counts the CUDA fused kernels' backward as
2.5x the forward (they recompute the scores). These are model FLOPs, not hardware FLOPs. For the
ViT backbones this equals the analytic count that tools/benchmark_backbone.py used before it
moved here (patch embedding plus, per block, qkv, q k^T, attn v, proj and FFN linears), exactly:
checked on dinov1/v2/v2-reg/v3 presets in fp32 and in bf16 (``to_bf16(matmul='fp32')``).

**Roofline** (:func:`matmul_roofline`): the machine's best square matmul rate, measured in the
same run, the ceiling that achieved FLOP/s is compared with; :func:`gpu_peak` gives datasheet
peaks of known GPUs for MFU.

**Report.** :func:`format_table` uses prettytable rather than rich: rich fits a table to the
terminal width (80 columns when output is piped into a file) and wraps or cuts cells, while
prettytable never changes a figure and also writes markdown (it comes with mmsegmentation).
"""
import contextlib
import ctypes
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from importlib import metadata
from typing import (Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

import torch

__all__ = [
    'log', 'sync', 'time_call', 'Interleaved', 'run_interleaved', 'percentile', 'summarize',
    'flop_rates', 'to_mb', 'rss_bytes', 'mmap_large_allocations', 'PeakMemory', 'MemoryPeak',
    'measure_peaks', 'flop_counter', 'count_flops', 'matmul_roofline', 'GPU_PEAKS_TFLOPS',
    'gpu_peak', 'cpu_model_name', 'machine_info', 'write_json', 'format_table', 'print_table',
]

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


# ------------------------------------------------------------------ timing
def log(msg: str) -> None:
    """Progress goes to stderr, so that stdout holds only the report."""
    print(msg, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA kernels, so that a clock read after them includes them."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> Tuple[float, Any]:
    """(seconds, result) of one call of ``fn``, synchronised on CUDA."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


class Interleaved(NamedTuple):
    """What :func:`run_interleaved` measured."""

    times: Dict[str, List[float]]  # seconds of every timed call, per candidate
    last: Dict[str, Any]  # each candidate's result of its last call


def run_interleaved(fns: Mapping[str, Callable[[], Any]], iters: int, warmup: int = 0,
                    device: torch.device = torch.device('cpu'), max_seconds: float = 0.0,
                    on_timed: Optional[Callable[[str, float, Any], None]] = None,
                    progress: Optional[Callable[[str], None]] = log) -> Interleaved:
    """Warm up, then time every candidate once per iteration, alternating which goes first.

    Iterations 0, 2, 4, ... call the candidates in ``fns`` order, the others in reverse. The
    first ``warmup`` iterations are not recorded. ``on_timed(name, seconds, result)`` sees every
    timed call (for per-call bookkeeping such as a phase split). With ``max_seconds`` > 0 timing
    stops after the iteration in which all candidates together passed that many timed seconds.
    """
    names = list(fns)
    times: Dict[str, List[float]] = {k: [] for k in names}
    last: Dict[str, Any] = {}
    seconds: Dict[str, float] = {}
    total, spent = warmup + iters, 0.0
    for i in range(total):
        warm = i < warmup
        for k in (names if i % 2 == 0 else names[::-1]):
            seconds[k], last[k] = time_call(fns[k], device)
            if not warm:
                times[k].append(seconds[k])
                spent += seconds[k]
                if on_timed is not None:
                    on_timed(k, seconds[k], last[k])
        if progress is not None:
            label = 'warmup' if warm else 'iter'
            progress(f'  [{i + 1}/{total}] {label:6s} '
                     + '  '.join(f'{k} {seconds[k]:.3f}s' for k in names))
        if not warm and max_seconds and spent > max_seconds:
            if progress is not None:
                progress(f'  stopping after {len(times[names[0]])} timed iterations '
                         '(--max-seconds)')
            break
    return Interleaved(times, last)


# ------------------------------------------------------------------ figures
def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1): the smallest value with at least a fraction
    ``q`` of the values at or below it. Always one of the values, so a p90 of few samples is an
    observed time, not an extrapolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summarize(times: Sequence[float], batch: int) -> Dict[str, float]:
    """images/s (batch over the median time), latency median and p90 in ms, timed calls."""
    med = statistics.median(times)
    return {'images_per_s': batch / med, 'latency_median_ms': 1e3 * med,
            'latency_p90_ms': 1e3 * percentile(times, 0.9), 'iters': len(times)}


def flop_rates(flops: float, seconds: float, roof: Dict) -> Dict[str, float]:
    """Achieved GFLOP/s and its fraction of a :func:`matmul_roofline` result (fastest and native).
    """
    gflops = flops / seconds / 1e9
    return {'gflops': gflops, 'roofline_fraction': gflops / roof['roofline_gflops'],
            'native_roofline_fraction': gflops / roof['native_gflops']}


def to_mb(nbytes: Optional[int]) -> Optional[float]:
    """Bytes as MiB; None for not measured (None or negative)."""
    return None if nbytes is None or nbytes < 0 else nbytes / 2 ** 20


# ------------------------------------------------------------------ memory
def rss_bytes() -> int:
    """The process resident set size (Linux)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _libc() -> Optional[ctypes.CDLL]:
    try:
        return ctypes.CDLL('libc.so.6')
    except OSError:  # not glibc: the RSS figures are then less exact
        return None


def _malloc_trim() -> None:
    """Hand glibc's free heap pages back to the kernel, so the baseline holds no dead pages."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def mmap_large_allocations(threshold: int = 64 * 1024) -> None:
    """Make glibc mmap (and on free, unmap) every allocation >= ``threshold`` bytes.

    For RSS figures that follow live memory (module docstring); for the rest of the process.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, threshold)  # also stops glibc from raising it


class PeakMemory:
    """Peak memory growth (``.peak``, bytes) during a ``with`` block: RSS sampled every
    ``interval`` seconds on CPU, allocator statistics on CUDA."""

    def __init__(self, device: torch.device, interval: float = 0.001) -> None:
        self.device, self.interval, self.peak = device, interval, 0

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        _malloc_trim()
        self.base = self.high = rss_bytes()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(self.interval):
            self.high = max(self.high, rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
            return
        self.stop.set()
        self.thread.join()
        self.peak = max(self.high, rss_bytes()) - self.base


class MemoryPeak(NamedTuple):
    """One call's peak growth in bytes and (CPU, if asked) its peak of live tensor bytes."""

    bytes: int
    tensor_bytes: Optional[int] = None


def _tensor_peak(prof) -> Optional[int]:
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


def measure_peaks(fns: Mapping[str, Callable[[], Any]], device: torch.device,
                  interval: float = 0.001, tensors: bool = False,
                  progress: Optional[Callable[[str], None]] = log) -> Dict[str, MemoryPeak]:
    """Peak memory of one call per candidate; call it after the timing loop (module docstring).

    ``tensors`` (CPU only) also records the live-tensor peak from torch.profiler.
    """
    from torch.profiler import ProfilerActivity, profile
    if device.type == 'cpu':
        mmap_large_allocations()
    peaks = {}
    for name, fn in fns.items():
        tensor = None
        with PeakMemory(device, interval) as mem:
            if tensors and device.type == 'cpu':
                with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                    fn()
                tensor = _tensor_peak(prof)
            else:
                fn()
                sync(device)
        peaks[name] = MemoryPeak(mem.peak, tensor)
        if progress is not None:
            progress(f'  memory {name}: {mem.peak / 2 ** 20:.1f} MB' + (
                '' if tensor is None else f', tensors {tensor / 2 ** 20:.1f} MB'))
    return peaks


# ------------------------------------------------------------------ FLOPs
@contextlib.contextmanager
def flop_counter(math_attention: bool = True) -> Iterator[Any]:
    """A running ``torch.utils.flop_counter.FlopCounterMode``; with ``math_attention`` SDPA runs
    on its math backend, whose matmuls the counter sees (module docstring)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    with contextlib.ExitStack() as stack:
        if math_attention:
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        yield stack.enter_context(FlopCounterMode(display=False))


def count_flops(fn: Callable[[], Any], math_attention: bool = True) -> int:
    """FLOPs of one call of ``fn`` (2 per multiply-add; what ``FlopCounterMode`` counts)."""
    with flop_counter(math_attention) as counter:
        fn()
    return counter.get_total_flops()


# ------------------------------------------------------------------ roofline
def _time_matmul(a: torch.Tensor, b: torch.Tensor, fn: Callable, device: torch.device,
                 seconds: float) -> float:
    """GFLOP/s of the fastest ``fn(a, b)`` (square n x n) in repeats over about ``seconds``."""
    n = a.shape[0]
    fn(a, b)
    best, start = float('inf'), time.perf_counter()
    while time.perf_counter() - start < seconds:
        elapsed, _ = time_call(lambda: fn(a, b), device)
        best = min(best, elapsed)
    return 2.0 * n ** 3 / best / 1e9


def _matmul_size(dtype: torch.dtype, device: torch.device, seconds: float, fn: Callable) -> int:
    """Largest n in 512 .. 2048 (8192 on GPU) whose n x n product takes under ``seconds / 4``."""
    n, largest = 512, 8192 if device.type == 'cuda' else 2048
    while n < largest:
        a = torch.randn(n, n, device=device).to(dtype)
        elapsed, _ = time_call(lambda: fn(a, a), device)
        if 8 * elapsed > seconds / 4:  # 2n is 8x the work
            break
        n *= 2
    return n


def matmul_roofline(dtype: torch.dtype, device: torch.device, seconds: float = 1.0) -> Dict:
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


# Datasheet dense peaks in TFLOP/s (no sparsity): (name substrings, bf16, tf32, fp32 without
# tensor cores). Matched against torch.cuda.get_device_name, first match wins.
GPU_PEAKS_TFLOPS = (
    (('H100', 'PCIe'), 756.0, 378.0, 51.2),
    (('NVL',), 835.5, 417.5, 60.0),     # H100 NVL, H200 NVL
    (('H100',), 989.4, 494.7, 66.9),   # SXM5 (HBM3)
    (('H200',), 989.4, 494.7, 66.9),   # SXM
    (('A100',), 312.0, 156.0, 19.5),
)


def gpu_peak(device: torch.device, precision: str) -> Tuple[Optional[float], str]:
    """(datasheet dense peak in GFLOP/s or None, its description) for the detected GPU.

    fp32 gets the TF32 tensor-core peak when ``torch.get_float32_matmul_precision()`` allows
    TF32, else the plain fp32 peak.
    """
    if device.type != 'cuda':
        return None, ''
    name = torch.cuda.get_device_name(device)
    for keys, bf16, tf32, fp32 in GPU_PEAKS_TFLOPS:
        if all(k in name for k in keys):
            if precision == 'bf16':
                return 1e3 * bf16, f'{name} datasheet dense bf16 {bf16} TFLOP/s'
            if torch.get_float32_matmul_precision() != 'highest':
                return 1e3 * tf32, f'{name} datasheet dense TF32 {tf32} TFLOP/s'
            return 1e3 * fp32, f'{name} datasheet fp32 (no tensor cores) {fp32} TFLOP/s'
    return None, f'{name}: no datasheet peak known'


# ------------------------------------------------------------------ report
def cpu_model_name() -> str:
    """The CPU's name as /proc/cpuinfo gives it (``platform.processor()`` elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor()


def machine_info(device: torch.device, packages: Sequence[str] = ('transformers',)) -> Dict:
    """What the figures depend on: CPU, threads, torch and ``packages`` versions, GPU name."""
    info: Dict[str, Any] = {'cpu': cpu_model_name(), 'logical_cpus': os.cpu_count(),
                            'torch_threads': torch.get_num_threads(), 'torch': torch.__version__}
    for package in packages:  # None when not installed
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    info.update(cpu_capability=torch.backends.cpu.get_cpu_capability(),
                python=platform.python_version())
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def write_json(result: Dict, path: str) -> None:
    """Write a result dict as indented JSON and say so on stderr."""
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    log(f'wrote {path}')


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 title: Optional[str] = None, markdown: bool = False,
                 align: Optional[str] = None) -> str:
    """A text (boxed) or markdown (GitHub pipes) table; cells as given (``str()``), never cut.

    ``align`` has one letter per column, ``l`` or ``r``; by default the first column (names) is
    left-aligned, the others (figures) right-aligned. ``title`` is a line of its own above.
    """
    from prettytable import PrettyTable, TableStyle
    table = PrettyTable(list(columns))
    for row in rows:
        table.add_row([str(c) for c in row])
    for column, side in zip(columns, align or 'l' + 'r' * (len(columns) - 1)):
        table.align[column] = side
    if markdown:
        table.set_style(TableStyle.MARKDOWN)
    text = table.get_string()
    return text if title is None else f'{title}\n{text}'


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                title: Optional[str] = None, markdown: bool = False,
                align: Optional[str] = None) -> None:
    """:func:`format_table` on stdout."""
    print(format_table(columns, rows, title, markdown, align))
