"""Train a densedino model from a config.

    python tools/train.py configs/seg/ade20k_linear.py [--work-dir DIR] [--resume] [--amp]
        [--cfg-options key=value ...]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from tools._cli import add_common_args, load_config, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a densedino model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or from the last checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 with loss scaling on GPUs, bf16 on CPUs')
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_amp(cfg) -> None:
    """Switch the optimizer wrapper to mixed precision for the device training will use."""
    import torch
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'BF16OptimWrapper'):
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp cannot convert optim_wrapper type {wrapper!r}')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'BF16OptimWrapper'


def main(args: argparse.Namespace) -> None:
    from mmengine.runner import Runner
    cfg = load_config(args)
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
