"""Benchmark the pretraining step with the flat vs the overlapped gradient all-reduce.

Spawns ``--nproc`` gloo processes on this machine (``--threads`` torch threads each) that run
``DinoSSLModel.train_step`` (teacher forward, student forward, backward, gradient averaging,
AdamW step with clipping, EMA, centres) on random crops with real iBOT masks, once with
``grad_sync='flat'`` (every gradient in one blocking all-reduce after backward,
``densedino.pretrain.collectives.average_gradients``) and once with ``grad_sync='overlap'``
(bucketed asynchronous all-reduces started during backward, ``OverlappedGradientSync``). Both
variants share one model and optimiser, and run interleaved iteration by iteration
(``densedino.benchmark.run_interleaved``); every iteration ends with a barrier so the ranks
time the same thing. Rank 0 reports the median and p90 time per iteration and the paired
ratio flat / overlap (above 1: overlap is faster).

Example::

    python tools/benchmark_grad_sync.py --arch dinov2_vits14 --global-size 112 \\
        --local-size 56 --n-local 4 --batch 4 --warmup 2 --iters 10 --out grad_sync.json
"""
import argparse
import datetime
import os
import statistics
import sys
import tempfile
from typing import Dict

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from densedino.benchmark import (log, machine_info, percentile, print_table,  # noqa: E402
                                 run_interleaved, write_json)

MODES = ('flat', 'overlap')


def build(args, rank: int):
    """(model, optim wrapper, batch): the SSL model as the wrapper sees it, and this rank's
    crops."""
    from mmengine.optim import OptimWrapper

    from densedino.pretrain import DinoSSLModel, SSLDistributedWrapper, collate_multicrop
    torch.manual_seed(0)
    model = DinoSSLModel(args.arch, backbone_overrides=dict(img_size=args.global_size),
                         drop_path_rate=0.1,
                         head=dict(n_prototypes=args.prototypes, hidden_dim=2048,
                                   bottleneck_dim=256))
    wrapper = SSLDistributedWrapper(model.train())
    optim = OptimWrapper(torch.optim.AdamW(model.student.parameters(), lr=1e-4),
                         clip_grad=dict(max_norm=3.0))
    gen = torch.Generator().manual_seed(1000 + rank)
    g, loc = args.global_size, args.local_size
    samples = [dict(global_crops=[torch.randn(3, g, g, generator=gen) for _ in range(2)],
                    local_crops=[torch.randn(3, loc, loc, generator=gen)
                                 for _ in range(args.n_local)],
                    seed=100 * rank + i) for i in range(args.batch)]
    batch = collate_multicrop(samples, mask_generator=dict(),
                              patch_size=model.student['backbone'].patch_size)
    return model, wrapper, optim, batch


def worker(rank: int, args, store: str, out: str) -> None:
    torch.set_num_threads(args.threads)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank,
                            world_size=args.nproc, timeout=datetime.timedelta(minutes=10))
    from mmengine.logging import MessageHub
    model, wrapper, optim, batch = build(args, rank)
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 10_000)
    step = [0]

    def run(mode: str):
        def fn():
            model.grad_sync = mode
            hub.update_info('iter', step[0])
            step[0] += 1
            logs = wrapper.train_step(batch, optim)
            dist.barrier()
            return logs
        return fn

    res = run_interleaved({m: run(m) for m in MODES}, args.iters, args.warmup,
                          progress=log if rank == 0 else None)
    if rank == 0:
        sync = model._overlapped_sync
        torch.save(dict(times=res.times, n_buckets=sync.n_buckets,
                        n_params=sum(p.numel() for p in model.student.parameters())), out)
    dist.barrier()
    dist.destroy_process_group()


def report(args, raw: Dict) -> Dict:
    times = raw['times']
    rows, variants = [], {}
    for mode in MODES:
        med = statistics.median(times[mode])
        variants[mode] = dict(median_ms=1e3 * med, p90_ms=1e3 * percentile(times[mode], 0.9),
                              iters=len(times[mode]))
        rows.append([mode, f'{1e3 * med:.0f}', f'{variants[mode]["p90_ms"]:.0f}'])
    paired = statistics.median(f / o for f, o in zip(times['flat'], times['overlap']))
    result = dict(args=vars(args), machine=machine_info(torch.device('cpu')),
                  processes=args.nproc, backend='gloo', n_buckets=raw['n_buckets'],
                  student_params=raw['n_params'], variants=variants,
                  ratio_flat_over_overlap_medians=(variants['flat']['median_ms']
                                                   / variants['overlap']['median_ms']),
                  ratio_flat_over_overlap_paired=paired)
    print_table(['grad_sync', 'ms/iter (median)', 'ms/iter (p90)'], rows,
                title=f'{args.arch} {args.global_size}/{args.local_size}px x{args.n_local} local, '
                      f'batch {args.batch}/process, {args.nproc} gloo processes x '
                      f'{args.threads} thread(s), {raw["n_buckets"]} buckets')
    print(f'flat / overlap: {result["ratio_flat_over_overlap_medians"]:.3f} (medians), '
          f'{paired:.3f} (paired median)')
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', default='dinov2_vits14')
    p.add_argument('--global-size', type=int, default=112)
    p.add_argument('--local-size', type=int, default=56)
    p.add_argument('--n-local', type=int, default=4)
    p.add_argument('--batch', type=int, default=4, help='images per process')
    p.add_argument('--prototypes', type=int, default=65536)
    p.add_argument('--nproc', type=int, default=2)
    p.add_argument('--threads', type=int, default=1, help='torch threads per process')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--out', help='write the result as JSON here')
    return p.parse_args(argv)


def main(argv=None) -> Dict:
    args = parse_args(argv)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'times.pt')
        mp.spawn(worker, args=(args, os.path.join(tmp, 'store'), out), nprocs=args.nproc)
        result = report(args, torch.load(out))
    if args.out:
        write_json(result, args.out)
    return result


if __name__ == '__main__':
    main()
