"""Check every file of a config's datasets before training on them.

    python tools/check_dataset.py CONFIG [--split train|val|test|all] [--workers N] [--quick]

Decodes every image and annotation (``--quick``: reads headers only, as training start-up does)
and prints each bad file with its reason, the pixels per class of segmentation labels and the
class count. Exits with 1 if anything is wrong, 0 otherwise.
"""
import argparse
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The options that take a value, for finding the config before argparse runs.
VALUE_OPTIONS = ('--split', '--workers', '--work-dir', '--launcher', '--local_rank',
                 '--local-rank')

sys.path.insert(0, ROOT)
if __name__ == '__main__':  # a mistyped config is answered before the slow imports (tools/train.py)
    runpy.run_path(osp.join(ROOT, 'densedino', 'cli', 'paths.py'))['exit_if_config_missing'](
        sys.argv[1:], VALUE_OPTIONS)
from densedino.cli import add_common_args, load_config, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Check the files of a config's datasets")
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', choices=['train', 'val', 'test', 'all'], default='all',
                        help='dataloader whose dataset is checked (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=2,
                        help='threads reading files (default: %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help='headers only: existence, sizes, bit depths (what training checks '
                        'at start-up)')
    add_common_args(parser)
    return parser.parse_args(argv)


def histogram_lines(report) -> list:
    """``class: pixels (percent)`` per class of each split with a label histogram."""
    lines = []
    for name, split in report.splits.items():
        if split.histogram is None:
            continue
        total = int(split.histogram.sum()) + split.ignored
        lines.append(f'{name} ({split.dataset}, {split.num_samples} samples): pixels per class')
        width = max(len(c) for c in (*split.classes, 'ignore (255)'))
        rows = [*zip(split.classes, split.histogram.tolist()), ('ignore (255)', split.ignored)]
        for cls, pixels in rows:
            percent = 100.0 * pixels / total if total else 0.0
            lines.append(f'  {cls:<{width}}  {pixels:>12,d}  {percent:6.2f}%')
    return lines


def main(args: argparse.Namespace) -> None:
    from densedino.datasets import SPLITS, check_config
    cfg = load_config(args)
    splits = SPLITS if args.split == 'all' else (args.split,)
    report = check_config(cfg, splits, full=not args.quick, workers=args.workers)
    for line in report.problem_lines():
        print(line)
    for line in histogram_lines(report):
        print(line)
    if report.num_classes:
        print(f'classes: {report.num_classes}')
    print(report.summary())
    if not report.ok:
        raise SystemExit(1)


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
