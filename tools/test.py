"""Evaluate a trained densedino model.

    python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--tta]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import add_common_args, load_config, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a densedino model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='directory to write predictions into (label PNGs; depth: '
                        'uint16 PNGs of metres x 256, the KITTI format, at the image\'s path '
                        'under the data root)')
    parser.add_argument('--show-dir', help='directory to write visualised predictions into')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation '
                        '(the config\'s tta_pipeline: scales and flips)')
    add_common_args(parser)
    return parser.parse_args(argv)


def apply_test_options(cfg, args: argparse.Namespace) -> None:
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw = True
        hook.interval = 1
        cfg.visualizer.save_dir = args.show_dir
    if args.out:
        cfg.test_evaluator['output_dir'] = args.out
        if cfg.test_evaluator.get('type') == 'DenseDepthMetric':
            cfg.test_evaluator['data_root'] = cfg.test_dataloader.dataset.get('data_root')
        else:
            cfg.test_evaluator['keep_results'] = True
    if args.tta:
        if 'tta_pipeline' not in cfg:
            raise ValueError(f'{args.config} defines no tta_pipeline')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model


def main(args: argparse.Namespace) -> None:
    from densedino.engine import build_runner
    cfg = load_config(args)
    apply_test_options(cfg, args)
    runner = build_runner(cfg)
    runner.test()


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
