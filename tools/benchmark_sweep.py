"""Cost of a head sweep's training iteration against one head's, side by side in one run.

    python tools/benchmark_sweep.py [--config configs/seg/ade20k_linear_sweep.py] \
        [--heads 4 8] [--iters 6] [--warmup 2] [--batch 2] [--threads 2] [--out result.json]

Builds, with random weights, images and labels of the config's crop and batch: the protocol's
single-head model (the config's ``_base_``, e.g. configs/seg/ade20k_linear.py) and the sweep with
N linear heads for each N of ``--heads`` (learning rates spread around the protocol's), and
times one full training iteration of each (``model.train_step``: preprocessing, backbone
forward, every head's forward and loss, backward, AdamW step) with
``densedino.benchmark.run_interleaved``: one of each per iteration, the order flipping every
iteration, medians reported. The ratio sweep / single is what a sweep of N heads costs in units
of one run; N separate runs cost N. The live-tensor peak of one iteration of each is measured
after the timing (``densedino.benchmark.measure_peaks``), so the growth with N is the heads'
share.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='configs/seg/ade20k_linear_sweep.py',
                        help='a head-sweep config (its _base_ is the single-head protocol)')
    parser.add_argument('--single', help='the single-head config (default: the sweep config\'s '
                        'first _base_)')
    parser.add_argument('--heads', type=int, nargs='+', default=[4, 8], help='sweep sizes')
    parser.add_argument('--iters', type=int, default=6)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, help='default: the config\'s train batch size')
    parser.add_argument('--crop', type=int, nargs=2, metavar=('H', 'W'),
                        help='default: the config\'s data_preprocessor size / training crop')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s choice)')
    parser.add_argument('--arch-overrides', default=None,
                        help='JSON preset overrides, e.g. \'{"depth": 2}\' (for smoke tests)')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory peaks')
    parser.add_argument('--out', help='write the figures as JSON here')
    return parser.parse_args(argv)


def single_config(path: str) -> str:
    """The first ``_base_`` of a sweep config: the protocol it sweeps."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == '_base_':
            base = ast.literal_eval(node.value)
            base = base[0] if isinstance(base, (list, tuple)) else base
            return osp.normpath(osp.join(osp.dirname(path), base))
    raise ValueError(f'{path} has no _base_: give the single-head config with --single')


def configs(args: argparse.Namespace):
    """The single-head config and one sweep config per N, random weights."""
    from mmengine.config import Config
    sweep = Config.fromfile(args.config)
    if 'heads' not in sweep.model:
        raise ValueError(f'{args.config} is not a head-sweep config (no model.heads)')
    single = Config.fromfile(args.single or single_config(args.config))
    lr = sweep.optim_wrapper.optimizer.lr
    out = {'1 head': single}
    for n in args.heads:
        cfg = copy.deepcopy(sweep)
        # n rates spread over two decades around the protocol's (factors 10^[-1, 1])
        cfg.model.heads = {f'h{i}': dict(lr=lr * 10 ** (-1 + 2 * i / max(n - 1, 1)))
                           for i in range(n)}
        out[f'{n} heads'] = cfg
    for cfg in out.values():
        cfg.model.backbone.checkpoint = None
        cfg.model.backbone.pretrained = False
        if args.arch_overrides:
            cfg.model.backbone.arch_overrides = json.loads(args.arch_overrides)
        if args.crop and cfg.model.data_preprocessor.get('size'):
            cfg.model.data_preprocessor.size = tuple(args.crop)  # it pads batches to its size
    return out


def batch_data(cfg, model, batch: int, crop):
    """Random uint8 images and labels (class indices, or depths in the head's range)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    size = crop or cfg.model.data_preprocessor.get('size') or next(
        t['crop_size'] for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'RandomCrop')
    H, W = size
    gen = torch.Generator().manual_seed(0)
    head = model.decode_head
    samples = []
    for _ in range(batch):
        s = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)))
        if hasattr(head, 'min_depth'):
            depth = torch.rand(1, H, W, generator=gen) * (head.max_depth - 1) + 1
            s.gt_depth_map = PixelData(data=depth)
        else:
            s.gt_sem_seg = PixelData(data=torch.randint(0, head.num_classes, (1, H, W),
                                                        generator=gen))
        samples.append(s)
    images = [torch.randint(0, 256, (3, H, W), generator=gen, dtype=torch.uint8)
              for _ in range(batch)]
    return dict(inputs=images, data_samples=samples)


def build(cfg, args):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('densedino')
    model = MODELS.build(cfg.model)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data = batch_data(cfg, model, args.batch or cfg.train_dataloader.batch_size, args.crop)
    return lambda: model.train_step(data, optim)


def main(args: argparse.Namespace) -> dict:
    import torch
    from densedino.benchmark import (machine_info, measure_peaks, print_table, run_interleaved,
                                     write_json)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = {name: build(cfg, args) for name, cfg in configs(args).items()}
    run = run_interleaved(steps, args.iters, args.warmup)
    median = {k: statistics.median(v) for k, v in run.times.items()}
    peaks = {} if args.no_memory else measure_peaks(steps, torch.device('cpu'), tensors=True)
    rows, figures = [], {}
    for name, seconds in median.items():
        n = int(name.split()[0])
        ratio = seconds / median['1 head']
        tensor_mb = (peaks[name].tensor_bytes / 2 ** 20 if name in peaks and peaks[name].tensor_bytes
                     else None)
        figures[name] = dict(heads=n, iteration_s=seconds, ratio=ratio, separate_runs=n,
                             tensor_peak_mb=tensor_mb, times_s=run.times[name])
        rows.append([name, f'{seconds * 1e3:.0f} ms', f'{ratio:.3f}x', f'{n}x',
                     '' if tensor_mb is None else f'{tensor_mb:.0f} MB'])
    print_table(['model', 'training iteration', 'vs 1 head', 'N separate runs',
                 'tensor peak'], rows, title=f'{args.config}: median of {args.iters}')
    res = dict(config=args.config, threads=torch.get_num_threads(), figures=figures,
               machine=machine_info(torch.device('cpu'), packages=()))
    if args.out:
        write_json(res, args.out)
    return res


if __name__ == '__main__':
    main(parse_args())
