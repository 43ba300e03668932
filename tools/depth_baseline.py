"""Score the best constant-depth prediction on a depth config's test set: the floor any model
must clear.

    python tools/depth_baseline.py configs/depth/synthetic_linear.py

The constant is the mean of the valid training depths (the constant that minimises the pooled
squared error) and, as a second row, their median (to 1 mm); each is scored per image with the config's
test evaluator settings (range, crop) and averaged over the images, as the model is. The
pipelines' fixed crops (KITTI's KB crop, NYU's border crop) are applied first, so the pixels
scored are the ones the model is scored on.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Constant-depth baseline of a depth config')
    parser.add_argument('config', help='depth config (its train and test datasets are read)')
    parser.add_argument('--max-train', type=int, default=0,
                        help='use at most N training images for the constant (0: all)')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


FIXED_CROPS = ('KBCrop', 'NYUCrop')


def _depth_maps(dataset_cfg, limit: int = 0):
    """Yield each sample's ground-truth depth (metres), after the pipeline's fixed crops."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    from densedino.progress import progress_iter
    from densedino.registry import DATASETS, TRANSFORMS
    crops = [t for t in dataset_cfg.get('pipeline', []) if t['type'] in FIXED_CROPS]
    steps = ([dict(type='LoadImageFromFile')] if crops else []) + \
        [dict(type='LoadDepthAnnotation')] + crops
    with DefaultScope.overwrite_default_scope('densedino'):
        dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
        load = Compose([TRANSFORMS.build(t) for t in steps])
    count = len(dataset) if not limit else min(limit, len(dataset))
    for i in progress_iter(range(count), count, True, dataset_cfg['type']):
        info = dataset.get_data_info(i)
        if info.get('depth_map_path') is None:
            continue
        yield load(dict(info, seg_fields=[]))['gt_depth_map']


def main(args: argparse.Namespace) -> None:
    import numpy as np
    from mmengine.config import Config

    import densedino  # noqa: F401
    from densedino.evaluation import depth_metrics
    cfg = Config.fromfile(args.config)
    evaluator = cfg.test_evaluator
    if evaluator.get('type') != 'DenseDepthMetric':
        raise ValueError(f'{args.config}: test_evaluator is {evaluator.get("type")}, not '
                         'DenseDepthMetric')
    head = cfg.model.decode_head
    # DenseDepthMetric evaluates in the head's range unless the evaluator gives a narrower one
    lo = head.min_depth if evaluator.get('min_depth') is None else evaluator.min_depth
    hi = head.max_depth if evaluator.get('max_depth') is None else evaluator.max_depth
    crop = evaluator.get('crop')
    # Streamed: a running sum for the mean and a 1 mm histogram for the median, so a full
    # training split (NYU: 24k images, 7e9 pixels) never sits in memory at once.
    total, count = 0.0, 0
    edges = np.arange(lo, hi + 1e-3, 1e-3)
    histogram = np.zeros(len(edges) - 1, np.int64)
    for d in _depth_maps(cfg.train_dataloader.dataset, args.max_train):
        valid = d[(d > lo) & (d < hi)].astype(np.float64)
        total, count = total + valid.sum(), count + valid.size
        histogram += np.histogram(valid, bins=edges)[0]
    if count == 0:
        raise ValueError(f'{args.config}: no valid training depth in ({lo}, {hi}) m')
    cumulative = np.cumsum(histogram)
    bin_ = int(np.searchsorted(cumulative, (count + 1) / 2))
    median = (edges[bin_] + edges[bin_ + 1]) / 2  # to the bin's 1 mm
    tests = list(_depth_maps(cfg.test_dataloader.dataset))
    print(f'{len(tests)} test images, constants from {count} training pixels')
    for name, constant in (('mean', total / count), ('median', float(median))):
        scores = [depth_metrics(np.full_like(gt, constant), gt, min_depth=lo, max_depth=hi,
                                crop=crop) for gt in tests]
        scores = [s for s in scores if s['n_valid'] > 0]
        row = ', '.join(f'{k} {np.mean([s[k] for s in scores]):.4f}'
                        for k in ('rmse', 'abs_rel', 'd1', 'silog'))
        print(f'constant {name} {constant:.3f} m: {row}')


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
