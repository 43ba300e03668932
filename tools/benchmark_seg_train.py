"""Cost of one segmentation training iteration against the backbone forward alone.

    python tools/benchmark_seg_train.py configs/seg/ade20k_linear.py [--iters 5] [--batch 2]

With a frozen backbone the head, the loss at label resolution, the backward through the head
and the optimizer step should add little to the backbone forward; this measures the ratio on the
config's crop size, batch and number of classes, with random weights, images and labels.

The two are timed with ``densedino.benchmark.run_interleaved``: after the warm-up, one of each per
iteration, the order flipping every iteration, so load on the machine hits both; the figures are
the medians of the timed calls.
"""
import argparse
import json
import os.path as osp
import statistics
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, help='default: the config\'s train batch size')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s choice)')
    parser.add_argument('--arch-overrides', default=None,
                        help='JSON preset overrides, e.g. \'{"depth": 2}\' (for smoke tests)')
    parser.add_argument('--mmseg-loss', action='store_true',
                        help='use mmseg\'s unfused loss path (upsample, CE, top-k accuracy)')
    parser.add_argument('--out', help='write the figures as JSON here')
    return parser.parse_args(argv)


def build(args):
    import torch
    import densedino  # noqa: F401
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS  # densedino's models resolve in the 'densedino' scope
    cfg = Config.fromfile(args.config)
    init_default_scope('densedino')
    cfg.model.backbone.checkpoint = None  # random weights: nothing to read or download
    if 'pretrained' in cfg.model.backbone:
        cfg.model.backbone.pretrained = False
    if args.arch_overrides:
        cfg.model.backbone.arch_overrides = json.loads(args.arch_overrides)
    model = MODELS.build(cfg.model)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = args.batch or cfg.train_dataloader.batch_size
    H, W = cfg.model.data_preprocessor.size
    classes = model.decode_head.num_classes
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, H, W), generator=gen, dtype=torch.uint8)
            for _ in range(batch)]
    samples = []
    for _ in range(batch):
        s = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, H, W), generator=gen))
        samples.append(s)
    data = dict(inputs=imgs, data_samples=samples)
    return model, optim, data


def main(args: argparse.Namespace) -> dict:
    import torch
    from densedino.benchmark import machine_info, run_interleaved, write_json
    if args.threads:
        torch.set_num_threads(args.threads)
    model, optim, data = build(args)
    if args.mmseg_loss:
        model.decode_head._fusable_loss = lambda: None
    inputs = model.data_preprocessor(data, training=True)['inputs']

    def backbone_forward():
        with torch.no_grad():
            model.backbone(inputs)

    def train_step():
        model.train_step(data, optim)

    run = run_interleaved({'backbone_forward': backbone_forward, 'train_step': train_step},
                          args.iters, args.warmup)
    res = dict(config=args.config, batch=len(data['inputs']), crop=list(inputs.shape[-2:]),
               threads=torch.get_num_threads(), loss='mmseg' if args.mmseg_loss else 'fused',
               backbone_forward_s=statistics.median(run.times['backbone_forward']),
               train_step_s=statistics.median(run.times['train_step']))
    res['ratio'] = res['train_step_s'] / res['backbone_forward_s']
    res['machine'] = machine_info(torch.device('cpu'), packages=())
    print(f"{args.config}: batch {res['batch']} crop {res['crop']}  backbone forward "
          f"{res['backbone_forward_s'] * 1e3:.0f} ms  training iteration "
          f"{res['train_step_s'] * 1e3:.0f} ms  ratio {res['ratio']:.3f}")
    if args.out:
        write_json(res, args.out)
    return res


if __name__ == '__main__':
    main(parse_args())
