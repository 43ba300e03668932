"""One run, one report of the GPU path: matmul rate, backbone forward against Hugging Face,
frozen ADE linear training, pretraining and the depth demo; one JSON and one markdown table.

    python tools/gpu_report.py --out work_dirs/gpu_report            # on a GPU: real sizes
    python tools/gpu_report.py --device cpu --smoke --out /tmp/rep   # CI-sized, under a minute

Sections (each catches its own failure, records it under ``error`` and the run goes on, so a
GPU run always ends with a report):

* ``matmul``: the device's measured bf16 square-matmul rate (``densedino.benchmark.
  matmul_roofline``; the fastest variant), the denominator of every MFU below.
* ``backbone``: forward of ViT-S/14, ViT-B/14 and ViT-L/14 at 518 px, batch 32, bf16 autocast,
  densedino against transformers' ``Dinov2Model`` holding the same random weights (built by
  tools/benchmark_backbone.py's ``build_models``), timed interleaved in one process, eager and
  ``torch.compile``-d. images/s, and MFU = FLOPs per batch / median seconds / matmul rate; FLOPs
  from ``densedino.benchmark.count_flops`` (one eager forward, math attention: model FLOPs).
* ``seg_train``: a frozen-backbone ADE20K linear training iteration (ViT-L/14, batch 16, crop
  512, bf16 autocast) against the backbone forward alone (tools/benchmark_seg_train.py's
  ``build``): images/s and the ratio.
* ``pretrain``: one DINO / iBOT / KoLeo iteration of ViT-S/14 and ViT-L/14 at the standard crops
  (2 x 224 + 8 x 98), bf16, sdpa attention (tools/benchmark_pretrain.py's ``main``), with MFU
  against the same measured matmul rate.
* ``depth_demo``: demo/webcam_depth.py's ``DepthRunner`` (ViT-S/14 + DPT, bf16 on GPUs) on
  generated 518 x 518 frames: the model's frame rate and the loop's with the panel drawing.

``--smoke`` shrinks every model (2 blocks, width 32), the batches and the images (56 px) so that
``--device cpu --smoke`` checks the whole script in CI. ``--budget`` seconds bound the run: a
part that would start past the point where it can still finish (the compiled forwards, the
ViT-L pretraining) is recorded as skipped.
"""
import argparse
import contextlib
import functools
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import traceback
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
from densedino.benchmark import (count_flops, format_table, log, machine_info,  # noqa: E402
                                 matmul_roofline, run_interleaved, summarize, write_json)

TINY = dict(depth=2, embed_dim=32, num_heads=2)
BACKBONES = ('dinov2_vitl14', 'dinov2_vits14', 'dinov2_vitb14')  # the target first
PRETRAIN = (('dinov2_vits14', 64), ('dinov2_vitl14', 32))  # (arch, images per iteration)
# Real-size estimates (an H100; times 0.1 with --smoke) of what a part needs to finish.
COMPILE_RESERVE_S = 75.0  # compiling and timing a densedino / HF pair
PRESET_RESERVE_S = 30.0  # building and timing one eager pair
LATER_SECTIONS_S = 60.0  # seg_train, pretrain ViT-S/14 and depth_demo together


# ----------------------------------------------------------------- helpers
class Clock:
    """The run's time budget: what is left, and whether a part may still start."""

    def __init__(self, budget: float, scale: float = 1.0) -> None:
        self.start, self.budget, self.scale = time.perf_counter(), budget, scale

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def allows(self, seconds: float) -> bool:
        """Whether more than ``seconds`` (a real-size estimate, times ``scale``) are left."""
        return self.left() > seconds * self.scale


def section(name: str, fn: Callable[[], Dict]) -> Dict:
    """``fn()``'s result, or ``{'error': ...}``; always with its wall seconds."""
    log(f'== {name}')
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 (every section must leave a report)
        log(f'!! {name} failed: {type(e).__name__}: {e}')
        out = {'error': f'{type(e).__name__}: {e}',
               'traceback': traceback.format_exc(limit=6)}
    out['seconds'] = time.perf_counter() - start
    log(f'== {name} done in {out["seconds"]:.1f} s')
    return out


def mfu_fields(flops: float, seconds: float, matmul_gflops: Optional[float]) -> Dict:
    """Achieved TFLOP/s and MFU (achieved / measured matmul rate) of ``flops`` in ``seconds``."""
    achieved = flops / seconds / 1e9
    return {'achieved_gflops': achieved,
            'mfu': achieved / matmul_gflops if matmul_gflops else None}


def free(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def bf16_autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16)


# ----------------------------------------------------------------- sections
def matmul_section(args, device: torch.device) -> Dict:
    roof = matmul_roofline(torch.bfloat16, device, 0.25 if args.smoke else 0.5)
    log(f"   bf16 matmul: {roof['roofline_gflops'] / 1e3:.2f} TFLOP/s (fastest variant)")
    return {'matmul_gflops': roof['roofline_gflops'], 'native_gflops': roof['native_gflops'],
            'variants': roof['variants']}


def time_pair(fns: Dict[str, Callable], args, device, warmup: int) -> Dict[str, List[float]]:
    """Interleaved timing of the densedino / HF forwards under bf16 autocast."""
    with torch.inference_mode(), bf16_autocast(device):
        return run_interleaved(fns, args.iters, warmup, device, args.max_seconds).times


def backbone_preset(name: str, args, device, rate, clock: Clock) -> Dict:
    """Eager and compiled forwards of one preset, densedino and HF, with MFU."""
    from tools.benchmark_backbone import build_models, forward_fns
    from densedino.models.backbones import get_preset
    ours, hf = build_models(name, TINY if args.smoke else {})
    ours, hf = ours.to(device), hf.to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    eager = dict(zip(('densedino', 'hf'), forward_fns(ours, hf, get_preset(name).family)))
    with torch.inference_mode(), bf16_autocast(device):
        flops = count_flops(functools.partial(eager['densedino'], x[:1])) * args.batch
    out: Dict[str, Any] = {'batch': args.batch, 'size': args.size,
                           'flops_per_image': flops / args.batch}
    modes = [('eager', eager, args.warmup)]
    if args.compile and (not args.smoke or name == BACKBONES[0]):  # smoke: one compile
        modes.append(('compiled', {k: torch.compile(f) for k, f in eager.items()}, 1))
    for mode, fns, warmup in modes:
        if mode == 'compiled' and not clock.allows(COMPILE_RESERVE_S + LATER_SECTIONS_S):
            out[mode] = {'skipped': f'time budget ({clock.left():.0f} s left)'}
            continue
        log(f'   {name} {mode}: batch {args.batch} at {args.size} px')
        try:
            times = time_pair({k: functools.partial(f, x) for k, f in fns.items()}, args,
                              device, warmup)
        except Exception as e:  # noqa: BLE001 (e.g. a compile failure: keep the eager figures)
            out[mode] = {'error': f'{type(e).__name__}: {e}'}
            continue
        res = {}
        for k, t in times.items():
            res[k] = summarize(t, args.batch)
            res[k]['median_s'] = statistics.median(t)
            res[k].update(mfu_fields(flops, res[k]['median_s'], rate))
        res['ratio_vs_hf'] = res['densedino']['images_per_s'] / res['hf']['images_per_s']
        out[mode] = res
    del ours, hf, x
    free(device)
    return out


def backbone_section(args, device, rate, clock: Clock) -> Dict:
    out = {}
    for name in BACKBONES:
        if name != BACKBONES[0] and not clock.allows(PRESET_RESERVE_S + LATER_SECTIONS_S):
            out[name] = {'skipped': f'time budget ({clock.left():.0f} s left)'}
            continue
        try:
            out[name] = backbone_preset(name, args, device, rate, clock)
        except Exception as e:  # noqa: BLE001
            out[name] = {'error': f'{type(e).__name__}: {e}'}
            free(device)
    return out


def write_config(folder: str, name: str, base: str, body: str) -> str:
    """A config file inheriting ``base`` (a repo config) with ``body`` on top."""
    path = osp.join(folder, name)
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.join(REPO, base)!r}]\n{body}")
    return path


def amp_wrapper(optimizer, device: torch.device):
    """bf16 autocast around a training step, as ``tools/train.py --amp`` runs it on bf16 GPUs
    and CPUs: densedino's BF16OptimWrapper (autocast on the model's device, no loss scaling)."""
    from densedino.engine import BF16OptimWrapper
    return BF16OptimWrapper(optimizer)


def seg_train_section(args, device, tmp: str) -> Dict:
    from tools.benchmark_seg_train import build
    crop = (56, 56) if args.smoke else (512, 512)
    config = write_config(tmp, 'ade_linear.py', 'configs/seg/ade20k_linear_dinov2_vitl14.py',
                          f'model = dict(data_preprocessor=dict(size={crop}))\n')
    model, optim, data = build(SimpleNamespace(
        config=config, batch=2 if args.smoke else 16,
        arch_overrides=json.dumps(TINY) if args.smoke else None))
    model = model.to(device)
    wrapper = amp_wrapper(optim.optimizer, device)
    inputs = model.data_preprocessor(data, training=True)['inputs']

    def backbone_forward():
        with torch.no_grad(), bf16_autocast(device):
            model.backbone(inputs)

    def train_step():
        return model.train_step(data, wrapper)

    run = run_interleaved({'backbone_forward': backbone_forward, 'train_step': train_step},
                          args.iters, args.warmup, device, args.max_seconds)
    batch = len(data['inputs'])
    fwd, step = (statistics.median(run.times[k]) for k in ('backbone_forward', 'train_step'))
    loss = {k: float(v) for k, v in run.last['train_step'].items()}
    return {'arch': 'dinov2_vitl14', 'batch': batch, 'crop': list(crop),
            'backbone_forward_s': fwd, 'train_step_s': step, 'ratio': step / fwd,
            'train_images_per_s': batch / step, 'forward_images_per_s': batch / fwd,
            'last_logs': loss}


def pretrain_argv(arch: str, batch: int, args, device) -> List[str]:
    argv = ['--arch', arch, '--device', str(device), '--precision', 'bf16', '--attention',
            'sdpa', '--compile', 'off', '--iters', str(args.iters), '--warmup', '1',
            '--max-seconds', str(args.max_seconds), '--no-memory', '--roofline-seconds', '0.25']
    if args.smoke:
        return argv + ['--override', 'depth=1', 'embed_dim=32', 'num_heads=2', '--global-size',
                       '56', '--local-size', '28', '--n-local', '2', '--prototypes', '64',
                       '--head-hidden', '32', '--head-bottleneck', '16', '--batch', '2']
    return argv + ['--batch', str(batch), '--global-size', '224', '--local-size', '98',
                   '--n-local', '8', '--tf32']


def pretrain_section(args, device, rate, clock: Clock) -> Dict:
    from tools.benchmark_pretrain import main as pretrain_main
    out = {}
    for arch, batch in PRETRAIN:
        if arch != PRETRAIN[0][0] and not clock.allows(40.0):
            out[arch] = {'skipped': f'time budget ({clock.left():.0f} s left)'}
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):  # its table is progress here
                res = pretrain_main(pretrain_argv(arch, batch, args, device))
        except (Exception, SystemExit) as e:  # noqa: BLE001
            out[arch] = {'error': f'{type(e).__name__}: {e}'}
            free(device)
            continue
        a = res['args']
        (name, var), = res['variants'].items()
        median = var['latency_median_ms'] / 1e3
        flops = res['flops']['per_iteration']
        out[arch] = {'batch': a['batch'], 'variant': name,
                     'crops': f"2x{a['global_size']} + {a['n_local']}x{a['local_size']}",
                     'flops_per_iteration': flops, 'median_s': median,
                     'images_per_s': var['images_per_s'], **mfu_fields(flops, median, rate),
                     'mfu_datasheet': var['mfu'] if var['mfu'] != var['mfu_measured'] else None,
                     'losses': var['losses']}
        free(device)
    return out


def depth_config(tmp: str, smoke: bool) -> str:
    body = 'model = dict(backbone=dict(pretrained=False, checkpoint=None'
    if smoke:
        body += (f', arch_overrides={TINY!r}, out_indices=[0, 1, 1, 1]), decode_head=dict('
                 'post_process_channels=[4, 8, 16, 32], channels=16))\n')
    else:
        body += '))\n'
    return write_config(tmp, 'nyu_dpt.py', 'configs/depth/nyu_dpt.py', body)


def depth_demo_section(args, device, tmp: str) -> Dict:
    import numpy as np
    from demo.webcam_depth import DepthRunner
    from densedino.visualization import depth_panel
    size = 56 if args.smoke else 518
    runner = DepthRunner(depth_config(tmp, args.smoke), None, str(device),
                         'bf16' if device.type == 'cuda' else 'auto')
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(8)]
    for frame in frames[:3]:  # warm-up
        runner(frame)
    model_s, loop_s, n = 0.0, 0.0, 0
    limit = 5 if args.smoke else 200
    while n < limit and loop_s < args.max_seconds:
        frame = frames[n % len(frames)]
        t0 = time.perf_counter()
        depth = runner(frame)  # ends with .cpu(): synchronised
        t1 = time.perf_counter()
        depth_panel(np.ascontiguousarray(frame[..., ::-1]), depth, vmin=float(depth.min()),
                    vmax=float(depth.max()) + 1e-3, relative=runner.relative)
        model_s += t1 - t0
        loop_s += time.perf_counter() - t0
        n += 1
    del runner
    free(device)
    return {'arch': 'dinov2_vits14 + DPT', 'frame': [size, size], 'frames': n,
            'model_fps': n / model_s, 'loop_fps': n / loop_s,
            'precision': 'bf16' if device.type == 'cuda' else 'auto'}


# ------------------------------------------------------------------- report
COLUMNS = ('section', 'what', 'img/s (FPS)', 'GFLOP/img', 'TFLOP/s', 'MFU', 'note')


def pct(value: Optional[float]) -> str:
    return '-' if value is None else f'{100 * value:.3g}%'


def num(value: float) -> str:
    """Three significant digits (smoke runs have tiny figures), no exponent above 1000."""
    return f'{value:.0f}' if abs(value) >= 1000 else f'{value:.3g}'


def backbone_rows(name: str, r: Dict) -> List[tuple]:
    if 'error' in r or 'skipped' in r:
        return [('backbone', name, '-', '-', '-', '-', r.get('error') or r['skipped'])]
    rows = []
    for mode in ('eager', 'compiled'):
        m = r.get(mode)
        if m is None:
            continue
        if 'error' in m or 'skipped' in m:
            rows.append(('backbone', f'{name} {mode}', '-', '-', '-', '-',
                         m.get('error') or m['skipped']))
            continue
        for k in ('densedino', 'hf'):
            v = m[k]
            note = f"{m['ratio_vs_hf']:.2f}x HF" if k == 'densedino' else ''
            rows.append(('backbone', f"{name} {mode} {k} b{r['batch']} {r['size']}px",
                         num(v['images_per_s']), num(r['flops_per_image'] / 1e9),
                         num(v['achieved_gflops'] / 1e3), pct(v['mfu']), note))
    return rows


def table_rows(report: Dict) -> List[tuple]:
    """One markdown row per measured figure (errors and skips in the note column)."""
    s = report['sections']
    rows = []
    m = s['matmul']
    rows.append(('matmul', 'bf16 square matmul', '-', '-',
                 '-' if 'error' in m else num(m['matmul_gflops'] / 1e3), '100%',
                 m.get('error', 'the MFU denominator')))
    for name, r in s['backbone'].items():
        if isinstance(r, dict):
            rows += backbone_rows(name, r)
    if 'error' in s['backbone']:
        rows.append(('backbone', '-', '-', '-', '-', '-', s['backbone']['error']))
    g = s['seg_train']
    rows.append(('seg_train', f"ADE linear, frozen ViT-L/14, b{g.get('batch', '-')}", '-' if
                 'error' in g else num(g['train_images_per_s']), '-', '-', '-',
                 g.get('error') or f"{g['ratio']:.3f}x the backbone forward"))
    for arch, r in s['pretrain'].items():
        if not isinstance(r, dict):
            continue
        if 'error' in r or 'skipped' in r:
            rows.append(('pretrain', arch, '-', '-', '-', '-', r.get('error') or r['skipped']))
            continue
        rows.append(('pretrain', f"{arch} b{r['batch']} {r['crops']}",
                     num(r['images_per_s']), num(r['flops_per_iteration'] / r['batch'] / 1e9),
                     num(r['achieved_gflops'] / 1e3), pct(r['mfu']),
                     '' if r['mfu_datasheet'] is None else
                     f"{pct(r['mfu_datasheet'])} of the datasheet peak"))
    if 'error' in s['pretrain']:
        rows.append(('pretrain', '-', '-', '-', '-', '-', s['pretrain']['error']))
    d = s['depth_demo']
    rows.append(('depth_demo', 'ViT-S/14 + DPT, ' + ('-' if 'error' in d else
                                                     'x'.join(map(str, d['frame']))),
                 '-' if 'error' in d else num(d['model_fps']), '-', '-', '-',
                 d.get('error') or f"loop with drawing {d['loop_fps']:.1f} FPS"))
    return [tuple(str(c).replace('|', '/').replace('\n', ' ')[:160] for c in row) for row in rows]


def markdown(report: Dict) -> str:
    m = report['machine']
    head = (f"GPU report on {m.get('gpu') or m['cpu']} ({report['device']}"
            f"{', smoke sizes' if report['smoke'] else ''}), torch {m['torch']}, "
            f"{report['seconds']:.0f} s")
    return head + '\n\n' + format_table(COLUMNS, table_rows(report), markdown=True,
                                          align='ll' + 'r' * 4 + 'l') + '\n'


# --------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                   help='cuda or cpu (default: cuda when there is one)')
    p.add_argument('--smoke', action='store_true', help='tiny models and inputs (CI)')
    p.add_argument('--out', default=osp.join(REPO, 'work_dirs', 'gpu_report'),
                   help='folder for gpu_report.json and gpu_report.md')
    p.add_argument('--budget', type=float, default=None,
                   help='seconds for the whole run (default: 200, smoke 45); parts that '
                   'would not finish in time are skipped')
    p.add_argument('--no-compile', dest='compile', action='store_false',
                   help='skip the torch.compile forwards')
    p.add_argument('--threads', type=int, help='torch.set_num_threads')
    args = p.parse_args(argv)
    args.budget = args.budget or (45.0 if args.smoke else 200.0)
    args.batch, args.size = (2, 56) if args.smoke else (32, 518)
    args.iters, args.warmup = (2, 1) if args.smoke else (5, 2)
    args.max_seconds = 1.0 if args.smoke else 4.0
    return args


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)
    clock = Clock(args.budget, 0.1 if args.smoke else 1.0)
    sections: Dict[str, Dict] = {}
    sections['matmul'] = section('matmul', lambda: matmul_section(args, device))
    rate = sections['matmul'].get('matmul_gflops')
    with tempfile.TemporaryDirectory() as tmp:
        sections['backbone'] = section(
            'backbone', lambda: backbone_section(args, device, rate, clock))
        sections['seg_train'] = section('seg_train', lambda: seg_train_section(args, device, tmp))
        free(device)
        sections['pretrain'] = section('pretrain',
                                       lambda: pretrain_section(args, device, rate, clock))
        sections['depth_demo'] = section('depth_demo',
                                         lambda: depth_demo_section(args, device, tmp))
    report = {'device': str(device), 'smoke': args.smoke, 'budget_s': args.budget,
              'seconds': time.perf_counter() - clock.start,
              'machine': machine_info(device, packages=('transformers', 'mmengine', 'mmsegmentation')),
              'sections': sections}
    write_json(report, osp.join(args.out, 'gpu_report.json'))
    text = markdown(report)
    with open(osp.join(args.out, 'gpu_report.md'), 'w') as f:
        f.write(text)
    log(f"wrote {osp.join(args.out, 'gpu_report.md')}")
    print(text)
    return report


if __name__ == '__main__':
    main()
