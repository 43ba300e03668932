"""Benchmark one DINO / iBOT / KoLeo pretraining iteration of ``DinoSSLModel``.

One ``DinoSSLModel.train_step`` is timed: teacher forward on the global crops, student forward
on the masked global crops and on the local crops, DINO / iBOT / KoLeo losses, backward, AdamW
step with gradient clipping (max norm 3), EMA teacher update and centre updates. The crops are
random tensors at the crop sizes (no dataset); the iBOT masks are real ones from
``collate_multicrop`` (block masking, half the global crops masked with ratios in [0.1, 0.5]).

Several variants of the same model and batch run in one process, interleaved iteration by
iteration (the order alternates): the attention path (``sdpa``: torch's fused
scaled_dot_product_attention kernel; ``math``: the same call forced onto the unfused math
backend with ``torch.nn.attention.sdpa_kernel``), the precision (``fp32``, or ``bf16`` autocast:
``BF16OptimWrapper`` on CPU, mmengine's ``AmpOptimWrapper`` with ``dtype='bfloat16'`` on CUDA)
and ``torch.compile`` of every student and teacher backbone block. All variants share the
weights and one AdamW optimiser.

Reported per variant: images/s and latency (median and p90 of the timed iterations), the split
of the iteration time (teacher forward, student forward, backward, optimiser step, rest), peak
memory of one extra, untimed iteration, achieved FLOP/s and MFU; plus the throughput ratio of
every pair of variants that differ in one setting.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one full, eager
iteration (teacher + student forward and backward: matmuls, convolutions, attention; 2 per
multiply-add). That iteration runs with the math attention backend, where attention is plain
matmuls: two in the forward and four in the backward, without the recomputation of the scores
that fused kernels do in their backward (model FLOPs, not hardware FLOPs), and the counter has
no formula for the CPU flash kernel at all. The count is the same for every variant.

MFU is achieved FLOP/s over a peak. On CPU the peak is this machine's fastest square matmul in
the variant's precision, measured in the same run (``densedino.benchmark.matmul_roofline``: for
bf16 on a CPU without bf16 arithmetic that is the fp32 rate).
On CUDA it is the datasheet dense peak of the detected GPU (bf16 tensor core; for fp32 the
TF32 tensor-core peak when ``torch.get_float32_matmul_precision()`` allows TF32, else the plain
fp32 peak); ``mfu_measured`` is always relative to the measured matmul rate.

Memory: on CPU the growth of the resident set size during the extra iteration (with glibc
serving allocations of 64 KiB or more by mmap; ``densedino.benchmark`` says why): activations,
gradients and temporaries, not the weights or the optimiser state, which exist before it; on
CUDA ``max_memory_allocated`` above the allocation before it.

Example::

    python tools/benchmark_pretrain.py --arch dinov2_vits14 --batch 8 --threads 2 \\
        --warmup 1 --iters 3 --out pretrain_vits14_cpu.json
    # a tiny smoke run
    python tools/benchmark_pretrain.py --override depth=1 --override embed_dim=32 \\
        --override num_heads=2 --global-size 56 --local-size 28 --n-local 2 --prototypes 64 \\
        --head-hidden 32 --head-bottleneck 16 --batch 2 --iters 2 --warmup 1
"""
import argparse
import contextlib
import functools
import itertools
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from densedino.cli import OverridesAction  # noqa: E402
from densedino.benchmark import (flop_counter, flop_rates, format_table, gpu_peak,  # noqa: E402
                                 log, machine_info, matmul_roofline, measure_peaks, print_table,
                                 run_interleaved, summarize, sync, time_call, to_mb, write_json)
from densedino.pretrain import DinoSSLModel, collate_multicrop  # noqa: E402

ATTENTIONS = ('sdpa', 'math')
PRECISIONS = ('fp32', 'bf16')
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
# Parts of one iteration; compute_losses contains the teacher forward, so the student forward
# (with the losses) is their difference, and the rest is EMA, centres and bookkeeping.
PHASES = ('teacher_forward', 'student_forward', 'backward', 'optimizer_step', 'rest')


# ------------------------------------------------------------------ setup
def build_model(args, device: torch.device) -> DinoSSLModel:
    """The SSL model (student + EMA teacher + heads) in fp32 on ``device``, in train mode."""
    overrides = {'img_size': args.global_size, **args.override}
    model = DinoSSLModel(
        args.arch, backbone_overrides=overrides, drop_path_rate=args.drop_path,
        head=dict(n_prototypes=args.prototypes, hidden_dim=args.head_hidden,
                  bottleneck_dim=args.head_bottleneck),
        ibot_head=None, centering=args.centering, freeze_last_layer_iters=0)
    return model.to(device).train()


def make_batch(args, patch_size: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """Random crops with real iBOT masks, collated crop-major like the training dataloader."""
    gen = torch.Generator().manual_seed(args.seed)
    g, loc = args.global_size, args.local_size
    samples = [dict(global_crops=[torch.randn(3, g, g, generator=gen) for _ in range(2)],
                    local_crops=[torch.randn(3, loc, loc, generator=gen)
                                 for _ in range(args.n_local)],
                    seed=args.seed * 100_003 + i)
               for i in range(args.batch)]
    batch = collate_multicrop(samples, mask_generator=dict(), patch_size=patch_size,
                              mask_probability=args.mask_probability,
                              mask_ratio_range=(0.1, 0.5))
    return {k: v.to(device) for k, v in batch.items()}


def make_wrappers(model: DinoSSLModel, precisions: List[str], device: torch.device,
                  lr: float) -> Dict[str, object]:
    """One mmengine optim wrapper per precision, all around one AdamW over the student."""
    from mmengine.optim import OptimWrapper
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.04)
    clip = dict(max_norm=3.0)
    wrappers = {}
    for precision in precisions:
        if precision == 'fp32':
            wrappers[precision] = OptimWrapper(optimizer, clip_grad=clip)
        elif device.type == 'cuda':
            from mmengine.optim import AmpOptimWrapper
            wrappers[precision] = AmpOptimWrapper(optimizer=optimizer, clip_grad=clip,
                                                  dtype='bfloat16')
        else:
            from densedino.engine import BF16OptimWrapper
            wrappers[precision] = BF16OptimWrapper(optimizer, clip_grad=clip)
    return wrappers


class BlockSwitch:
    """Swaps the student's and teacher's backbone blocks between eager and ``torch.compile``d.

    The compiled modules wrap the same block modules (same parameters), so the optimiser and the
    EMA update see the same tensors either way.
    """

    def __init__(self, model: DinoSSLModel, compile_blocks: bool) -> None:
        self.lists = [model.student['backbone'].blocks, model.teacher['backbone'].blocks]
        self.eager = [list(blocks) for blocks in self.lists]
        self.compiled = None
        if compile_blocks:
            # one graph per (grad mode, autocast, input dtype) and block kind: more than the
            # default limit of 8 when several precisions are timed
            import torch._dynamo
            config = torch._dynamo.config
            config.recompile_limit = max(config.recompile_limit, 64)
            self.compiled = [[torch.compile(b) for b in blocks] for blocks in self.eager]

    def use(self, compiled: bool) -> None:
        source = self.compiled if compiled else self.eager
        for blocks, modules in zip(self.lists, source):
            for i, module in enumerate(modules):
                blocks[i] = module


class PhaseTimer:
    """Time (or FLOPs) spent in named sub-steps of one iteration, from wrapped methods.

    ``clock`` is ``time.perf_counter`` (synced on CUDA) or any other running total, such as
    a ``FlopCounterMode``'s ``get_total_flops``.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.clock: Callable[[], float] = time.perf_counter
        self.totals: Dict[str, float] = {}

    def wrap(self, obj, method: str, phase: str) -> bool:
        """Measure ``obj.method`` as ``phase`` (an instance attribute shadows the method)."""
        fn = getattr(obj, method, None)
        if fn is None:
            return False

        @functools.wraps(fn)
        def measured(*args, **kwargs):
            sync(self.device)
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
                self.totals[phase] = self.totals.get(phase, 0.0) + self.clock() - start

        setattr(obj, method, measured)
        return True

    def split(self, total: float, totals: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """Amount per phase (``PHASES``) of an iteration that took ``total`` and measured
        ``totals`` (default: the last iteration's)."""
        t = self.totals if totals is None else totals
        losses = t.get('losses', 0.0)
        teacher = t.get('teacher_forward', 0.0)
        out = {'teacher_forward': teacher, 'student_forward': losses - teacher,
               'backward': t.get('backward', 0.0), 'optimizer_step': t.get('optimizer_step', 0.0)}
        out['rest'] = total - losses - out['backward'] - out['optimizer_step']
        return out


@contextlib.contextmanager
def attention_backend(name: str):
    """``math``: force the unfused SDPA backend; ``sdpa``: torch's default kernel choice."""
    if name == 'math':
        with sdpa_kernel(SDPBackend.MATH):
            yield
    else:
        yield


# ----------------------------------------------------------------- variants
def variant_list(args) -> List[Dict]:
    """Every combination of the requested attention paths, precisions and compile settings."""
    atts = ATTENTIONS if args.attention == 'both' else (args.attention,)
    precs = PRECISIONS if args.precision == 'both' else (args.precision,)
    comps = {'off': (False,), 'on': (True,), 'both': (False, True)}[args.compile]
    if True in comps and len(atts) > 1:
        raise SystemExit('error: --compile measures one attention path (--attention sdpa or '
                         'math): torch.compile does not guard on the sdpa_kernel context, so a '
                         'compiled block keeps the backend it was traced with')
    out = []
    for prec, att, comp in itertools.product(precs, atts, comps):
        name = f'{att} {prec}' + (' compiled' if comp else '')
        out.append(dict(name=name, attention=att, precision=prec, compiled=comp))
    return out


def variant_ratios(variants: List[Dict], results: Dict[str, Dict]) -> Dict[str, Dict]:
    """Throughput ratio of every pair of variants that differ in exactly one setting.

    ``ratio`` divides the median images/s; ``paired_ratio`` is the median over the timed
    iterations of the two variants' time ratio in the same iteration (robust to slow drifts).
    The numerator is sdpa, bf16 or compiled.
    """
    preferred = {'attention': 'sdpa', 'precision': 'bf16', 'compiled': True}
    out = {}
    for a, b in itertools.permutations(variants, 2):
        diff = [k for k in preferred if a[k] != b[k]]
        if len(diff) != 1 or a[diff[0]] != preferred[diff[0]]:
            continue
        ra, rb = results[a['name']], results[b['name']]
        pairs = [tb / ta for ta, tb in zip(ra['times'], rb['times'])]
        out[f"{a['name']} / {b['name']}"] = {
            'setting': diff[0], 'ratio': ra['images_per_s'] / rb['images_per_s'],
            'paired_ratio': statistics.median(pairs)}
    return out


# ---------------------------------------------------------------- measuring
class Bench:
    """The model, batch, wrappers and switches shared by all variants."""

    def __init__(self, args, device: torch.device) -> None:
        from mmengine.logging import MessageHub
        self.args, self.device = args, device
        self.model = build_model(args, device)
        backbone = self.model.student['backbone']
        self.batch = make_batch(args, backbone.patch_size, device)
        self.variants = variant_list(args)
        self.wrappers = make_wrappers(self.model, sorted({v['precision'] for v in self.variants}),
                                      device, args.lr)
        self.blocks = BlockSwitch(self.model, any(v['compiled'] for v in self.variants))
        self.timer = PhaseTimer(device)
        self.timer.wrap(self.model, '_teacher_forward', 'teacher_forward')
        self.timer.wrap(self.model, 'compute_losses', 'losses')
        for wrapper in self.wrappers.values():
            self.timer.wrap(wrapper, 'backward', 'backward')
            self.timer.wrap(wrapper, 'step', 'optimizer_step')
        self.hub = MessageHub.get_current_instance()
        self.hub.update_info('max_iters', args.schedule_iters)
        self.step = 0

    def _step(self, variant: Dict) -> Tuple[Dict[str, float], Dict[str, float]]:
        """(train_step logs, phase totals) of one training iteration of ``variant``."""
        self.blocks.use(variant['compiled'])
        self.hub.update_info('iter', self.step)
        self.step += 1
        self.timer.totals = {}
        with attention_backend(variant['attention']):
            logs = self.model.train_step(self.batch, self.wrappers[variant['precision']])
        return logs, self.timer.totals

    def iteration(self, variant: Dict) -> Tuple[float, Dict[str, float], Dict[str, float]]:
        """(seconds, phase split in seconds, train_step logs) of one training iteration."""
        seconds, (logs, totals) = time_call(functools.partial(self._step, variant), self.device)
        return seconds, self.timer.split(seconds, totals), logs

    def count_flops(self, variant: Dict) -> Dict:
        """FLOPs of one eager iteration with math attention (see the module docstring)."""
        self.blocks.use(False)
        wrapper = self.wrappers[variant['precision']]
        self.hub.update_info('iter', self.step)
        self.step += 1
        self.timer.totals = {}
        try:
            with flop_counter(math_attention=True) as counter:
                self.timer.clock = counter.get_total_flops
                self.model.train_step(self.batch, wrapper)
        finally:
            self.timer.clock = time.perf_counter
        total = counter.get_total_flops()
        return {'per_iteration': total, 'per_image': total / self.args.batch,
                'split': self.timer.split(total),
                'counted_with': f"math attention, eager, {variant['precision']}"}

    def run(self) -> Dict[str, Dict]:
        """Warm up, then time every variant in turn, alternating the order every iteration."""
        rec = {v['name']: {'times': [], 'splits': [], 'logs': None} for v in self.variants}

        def record(name: str, seconds: float, out: Tuple[Dict, Dict[str, float]]) -> None:
            logs, totals = out
            rec[name]['times'].append(seconds)
            rec[name]['splits'].append(self.timer.split(seconds, totals))
            rec[name]['logs'] = logs

        fns = {v['name']: functools.partial(self._step, v) for v in self.variants}
        run_interleaved(fns, self.args.iters, self.args.warmup, self.device,
                        self.args.max_seconds, on_timed=record)
        return rec

    def memory(self) -> Dict[str, int]:
        """Peak memory growth (bytes) of one extra iteration per variant."""
        fns = {v['name']: functools.partial(self.iteration, v) for v in self.variants}
        peaks = measure_peaks(fns, self.device, self.args.mem_interval)
        return {name: peak.bytes for name, peak in peaks.items()}


def summarize_variant(rec: Dict, flops: float, roof: Dict, peak: Optional[int],
                      device: torch.device, precision: str, batch: int) -> Dict:
    """Throughput, latency, FLOP/s, MFU, memory and the phase split of one variant."""
    out: Dict[str, Any] = summarize(rec['times'], batch)
    out.update(flop_rates(flops, statistics.median(rec['times']), roof))
    out['peak_mem_mb'] = to_mb(peak)
    out['tflops'] = out['gflops'] / 1e3
    out['mfu_measured'] = out.pop('roofline_fraction')
    sheet, desc = gpu_peak(device, precision)
    out['mfu'] = out['gflops'] / sheet if sheet else out['mfu_measured']
    measured = f"measured {precision} matmul {roof['roofline_gflops']:.1f} GFLOP/s"
    if roof['native_gflops'] < roof['roofline_gflops']:
        measured = (f"fastest measured matmul {roof['roofline_gflops']:.1f} GFLOP/s (fp32 "
                    f"arithmetic; native {precision} {roof['native_gflops']:.1f})")
    out['mfu_peak'] = desc if sheet else measured
    total = sum(rec['times'])
    out['split'] = {p: sum(s[p] for s in rec['splits']) / total for p in PHASES}
    out['split_ms'] = {p: 1e3 * sum(s[p] for s in rec['splits']) / len(rec['splits'])
                       for p in PHASES}
    out['times'] = rec['times']
    out['losses'] = rec['logs']
    return out


# ------------------------------------------------------------------- report
COLUMNS = ('variant', 'img/s', 'lat med ms', 'lat p90 ms', 'peak MB', 'GFLOP/s', 'MFU',
           'student f+b', 'teacher', 'opt step', 'rest')


def split_cells(sp: Dict[str, float]) -> Tuple[str, str, str, str]:
    """Student forward + backward, teacher forward, optimiser step and rest, in % of the time."""
    return (f"{100 * (sp['student_forward'] + sp['backward']):.0f}%",
            f"{100 * sp['teacher_forward']:.0f}%", f"{100 * sp['optimizer_step']:.0f}%",
            f"{100 * sp['rest']:.0f}%")


def print_report(result: Dict) -> None:
    """The per-variant table and the ratios, on stdout."""
    a, s = result['args'], result['setup']
    title = (f"{a['arch']} pretraining iteration on {a['device']}: batch {a['batch']} images "
             f"(2 x {a['global_size']} + {a['n_local']} x {a['local_size']} crops, "
             f"{s['masked_patches']} masked patches), {a['prototypes']} prototypes, "
             f"{result['flops']['per_iteration'] / 1e9:.4g} GFLOP per iteration")
    rows = []
    for name, r in result['variants'].items():
        mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}"
        rows.append((name, f"{r['images_per_s']:.3f}", f"{r['latency_median_ms']:.0f}",
                     f"{r['latency_p90_ms']:.0f}", mem, f"{r['gflops']:.1f}",
                     f"{100 * r['mfu']:.1f}%", *split_cells(r['split'])))
    print_table(COLUMNS, rows, title=title)
    for name, r in result['variants'].items():
        print(f"MFU of {name}: against {r['mfu_peak']}"
              + ('' if r['mfu'] == r['mfu_measured']
                 else f" ({100 * r['mfu_measured']:.1f}% of the measured matmul rate)"))
    for name, r in result['ratios'].items():
        print(f"{name}: {r['ratio']:.3f}x (paired per iteration {r['paired_ratio']:.3f}x)")


MARKDOWN_COLUMNS = ('arch', 'batch', 'crops', 'variant', 'img/s', 'latency ms (median / p90)',
                    'GFLOP/iter', 'GFLOP/s', 'MFU', 'peak MB',
                    'student f+b / teacher / step / rest')


def markdown_rows(paths: List[str]) -> str:
    """A markdown table with one row per variant of each result JSON (as in docs/benchmarks.md),
    then the ratios as HTML comments."""
    rows, comments = [], []
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        a = res['args']
        crops = f"2x{a['global_size']} + {a['n_local']}x{a['local_size']}"
        for name, r in res['variants'].items():
            mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}"
            rows.append((a['arch'], a['batch'], crops, name, f"{r['images_per_s']:.3f}",
                         f"{r['latency_median_ms']:.0f} / {r['latency_p90_ms']:.0f}",
                         f"{res['flops']['per_iteration'] / 1e9:.4g}", f"{r['gflops']:.1f}",
                         f"{100 * r['mfu']:.1f}%", mem, ' / '.join(split_cells(r['split']))))
        comments += [f"<!-- {path}: {name} = {r['ratio']:.3f}x "
                     f"(paired {r['paired_ratio']:.3f}x) -->" for name, r in res['ratios'].items()]
    table = format_table(MARKDOWN_COLUMNS, rows, markdown=True, align='lrll' + 'r' * 7)
    return '\n'.join([table] + comments)


# --------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='dinov2_vits14', help='backbone preset / hub name')
    p.add_argument('--override', nargs='+', action=OverridesAction, default={},
                   metavar='KEY=VALUE',
                   help='backbone preset override, e.g. depth=1 (repeatable)')
    p.add_argument('--batch', type=int, default=8, help='images per iteration')
    p.add_argument('--global-size', type=int, default=224)
    p.add_argument('--local-size', type=int, default=98)
    p.add_argument('--n-local', type=int, default=8, help='local crops per image')
    p.add_argument('--mask-probability', type=float, default=0.5,
                   help='fraction of the global crops with iBOT masks')
    p.add_argument('--prototypes', type=int, default=65536)
    p.add_argument('--head-hidden', type=int, default=2048)
    p.add_argument('--head-bottleneck', type=int, default=256)
    p.add_argument('--drop-path', type=float, default=0.3, help='student drop path rate')
    p.add_argument('--centering', choices=('softmax', 'sinkhorn'), default='softmax')
    p.add_argument('--precision', choices=PRECISIONS + ('both',), default='fp32')
    p.add_argument('--attention', choices=ATTENTIONS + ('both',), default='both',
                   help='sdpa: fused scaled_dot_product_attention; math: its unfused backend')
    p.add_argument('--compile', nargs='?', const='on', default='off',
                   choices=('off', 'on', 'both'),
                   help='torch.compile every student and teacher block (both: also time eager)')
    p.add_argument('--iters', type=int, default=5, help='timed iterations per variant (max)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--max-seconds', type=float, default=0.0,
                   help='stop timing once all variants together spent this long (0: no limit)')
    p.add_argument('--lr', type=float, default=1e-4)
    p.add_argument('--schedule-iters', type=int, default=125_000,
                   help='max_iters of the momentum schedule (MessageHub)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--tf32', action='store_true',
                   help='CUDA: allow TF32 tensor cores for fp32 matmuls and convolutions')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--roofline-seconds', type=float, default=1.0)
    p.add_argument('--mem-interval', type=float, default=0.001)
    p.add_argument('--no-memory', action='store_true', help='skip the extra memory iterations')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--table-from', nargs='+', metavar='JSON',
                   help='print markdown rows of earlier --out files and exit')
    return p.parse_args(argv)


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.table_from:
        print(markdown_rows(args.table_from))
        return {}
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if args.tf32:
        torch.set_float32_matmul_precision('high')
        torch.backends.cudnn.allow_tf32 = True
    variant_list(args)  # fail early on an invalid combination
    if args.batch < 2:
        raise SystemExit('error: --batch must be >= 2 (the KoLeo loss needs two images per crop)')
    log(f'building {args.arch} DinoSSLModel, batch {args.batch}')
    bench = Bench(args, device)
    roof = {}
    for precision in sorted({v['precision'] for v in bench.variants}):
        log(f'measuring the {precision} matmul rate on {device.type}')
        roof[precision] = matmul_roofline(DTYPES[precision], device, args.roofline_seconds)
    log('counting FLOPs of one iteration')
    flops = bench.count_flops(bench.variants[0])
    log(f"timing {', '.join(v['name'] for v in bench.variants)}: "
        f"{flops['per_iteration'] / 1e9:.4g} GFLOP per iteration, warmup {args.warmup}, "
        f'iters {args.iters}')
    rec = bench.run()
    peaks = dict.fromkeys(v['name'] for v in bench.variants) if args.no_memory else \
        bench.memory()
    bench.blocks.use(False)
    batch = bench.batch
    student = bench.model.student
    setup = {'global_crops': len(batch['global_crops']), 'local_crops': len(batch['local_crops']),
             'masked_patches': int(batch['n_masked_patches'].item()),
             'masked_crops': int(batch['masks'].any(dim=1).sum().item()),
             'student_params': sum(p.numel() for p in student.parameters()),
             'backbone_params': sum(p.numel() for p in student['backbone'].parameters())}
    result = {'args': vars(args), 'machine': machine_info(device), 'setup': setup,
              'flops': flops, 'roofline': roof,
              'float32_matmul_precision': torch.get_float32_matmul_precision(), 'variants': {}}
    for v in bench.variants:
        result['variants'][v['name']] = summarize_variant(
            rec[v['name']], flops['per_iteration'], roof[v['precision']], peaks[v['name']],
            device, v['precision'], args.batch)
    result['ratios'] = variant_ratios(bench.variants, result['variants'])
    print_report(result)
    if args.out:
        write_json(result, args.out)
    return result


if __name__ == '__main__':
    main()
