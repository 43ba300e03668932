"""Evaluate a trained densedino model.

    python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR [--show-max N]] [--tta]

``--show-dir DIR`` writes one titled panel per test image, ``DIR/<image name>.png``:
segmentation: ground truth | prediction, the class colours at 50 % over the image and a legend
of the classes present; depth: image | ground truth | prediction | colour bar in metres. The
count and the folder are printed at the end.
"""
import argparse
import os
import os.path as osp
import runpy
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The options that take a value, for finding the config before argparse runs.
VALUE_OPTIONS = ('--out', '--show-dir', '--show-max', '--work-dir', '--launcher', '--local_rank',
                 '--local-rank')

sys.path.insert(0, ROOT)
if __name__ == '__main__':  # a mistyped config is answered before the slow imports (tools/train.py)
    runpy.run_path(osp.join(ROOT, 'densedino', 'cli', 'paths.py'))['exit_if_config_missing'](
        sys.argv[1:], VALUE_OPTIONS)
from densedino.cli import add_common_args, enable_compile, load_config, rank, run_cli  # noqa: E402

# Visualisers that write flat, titled panels (densedino.visualization): the config's type ->
# the one --show-dir uses. Other types keep their own storage backends under DIR.
PANEL_VISUALIZERS = {'SegLocalVisualizer': 'SegPanelVisualizer',
                     'mmseg.SegLocalVisualizer': 'SegPanelVisualizer',
                     'SegPanelVisualizer': 'SegPanelVisualizer',
                     'DepthLocalVisualizer': 'DepthLocalVisualizer'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a densedino model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='directory to write predictions into (label PNGs; depth: '
                        'uint16 PNGs of metres x 256, the KITTI format, at the image\'s path '
                        'under the data root)')
    parser.add_argument('--show-dir', help='directory to write one titled panel per image into '
                        '(<image name>.png: ground truth | prediction with a legend, or a depth '
                        'panel with a colour bar)')
    parser.add_argument('--show-max', type=int, metavar='N', help='with --show-dir: draw the '
                        'first N images only')
    parser.add_argument('--compile', action='store_true', help='torch.compile the backbone '
                        '(model.backbone.compile=True)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation '
                        '(the config\'s tta_pipeline: scales and flips)')
    add_common_args(parser)
    return parser.parse_args(argv)


def apply_test_options(cfg, args: argparse.Namespace) -> None:
    """Point the config at the checkpoint and turn on what ``--out``, ``--show-dir`` (with
    ``--show-max``) and ``--tta`` ask for (``args`` needs ``config``, ``checkpoint``, ``out``,
    ``show_dir``, ``tta``; ``show_max`` is optional)."""
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint
    if getattr(args, 'compile', False):
        enable_compile(cfg)
    show_max = getattr(args, 'show_max', None)
    if show_max is not None and (not args.show_dir or show_max < 1):
        raise ValueError(f'--show-max {show_max}: needs --show-dir and a count of at least 1')
    if args.show_dir:
        configure_show_dir(cfg, args.show_dir, show_max)
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


def configure_show_dir(cfg, show_dir: str, show_max: Optional[int] = None) -> None:
    """Draw every test image (the first ``show_max`` with our visualisers), with a densedino
    panel visualiser writing into ``show_dir`` (the config's own visualiser type, if it is not
    one of ours, writes there its own way)."""
    hook = cfg.default_hooks.visualization
    hook.draw = True
    hook.interval = 1
    visualizer = cfg.visualizer
    kind = visualizer.get('type', 'SegLocalVisualizer')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    if name in PANEL_VISUALIZERS:
        visualizer.type = PANEL_VISUALIZERS[name]
        visualizer.out_dir = show_dir
        visualizer.max_panels = show_max
    else:
        visualizer.save_dir = show_dir


def report_panels(runner, show_dir: str) -> None:
    """One line (rank 0, which draws them): how many panels went where."""
    written = getattr(runner.visualizer, 'written', None)
    if rank() != 0:
        return
    if written is None:
        print(f'visualisations written under {show_dir}')
    else:
        print(f'wrote {len(written)} panel{"" if len(written) == 1 else "s"} to {show_dir} '
              '(<image name>.png each)')


def run_test(cfg, args: argparse.Namespace, extra_metrics: Sequence[dict] = ()
             ) -> Tuple[Any, Dict[str, float]]:
    """Evaluate ``args.checkpoint`` on the config's test set with the options of this tool
    (``--out``, ``--show-dir``, ``--tta``); returns ``(runner, metrics)``. Shared with
    tools/benchmark_suite.py, so a suite's figures are exactly what this tool reports;
    ``extra_metrics`` (metric configs) join the config's evaluator in the same pass."""
    from densedino.engine import build_runner
    apply_test_options(cfg, args)
    if extra_metrics:
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = [*(evaluator if isinstance(evaluator, list) else [evaluator]),
                              *extra_metrics]
    runner = build_runner(cfg)
    return runner, runner.test()


def main(args: argparse.Namespace) -> None:
    cfg = load_config(args)
    runner, _ = run_test(cfg, args)
    if args.show_dir:
        report_panels(runner, args.show_dir)
    if args.out and rank() == 0:
        count = sum(len([f for f in files if f.endswith('.png')]) for _, _, files in os.walk(args.out))
        print(f'wrote {count} prediction PNG{"" if count == 1 else "s"} under {args.out}')


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
