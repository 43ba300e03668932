"""k-NN top-1 of a backbone's CLS features on a labelled train / val folder pair (DINO protocol).

    python tools/knn_eval.py --backbone NAME [--checkpoint PATH] --train DIR --train-labels FILE
        --val DIR --val-labels FILE [--k 10 20] [--temperature 0.07] [--size 224] [--resize 256]
        [--batch-size 64] [--out results.json]
    python tools/knn_eval.py --backbone NAME [--checkpoint PATH] --synthetic DATA_ROOT ...

Features: resize the short side to ``--resize``, centre-crop ``--size``, normalised CLS token
(ConvNeXt: normed global pool); vote of the k most cosine-similar training features weighted
``exp(sim / T)``. Label files hold ``"<relative path or stem> <integer label>"`` lines.
``--synthetic`` uses (generating if absent) the synthetic scenes'
``ADEChallengeData2016/images/{training,validation}`` and ``image_labels_*.txt``. Without
``--checkpoint`` the weights are random: the number is only the "initialisation" reference.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import add_backbone_args, build_backbone, run_cli  # noqa: E402

RANDOM_WARNING = ('warning: no --checkpoint: random weights, the accuracy is only the '
                  'initialisation reference')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_backbone_args(parser, checkpoint_help='backbone or exported teacher weights')
    parser.add_argument('--train', help='reference image folder')
    parser.add_argument('--train-labels', help='label file of --train')
    parser.add_argument('--val', help='query image folder')
    parser.add_argument('--val-labels', help='label file of --val')
    parser.add_argument('--synthetic', metavar='DATA_ROOT',
                        help='use (and generate if absent) the synthetic scenes under DATA_ROOT')
    parser.add_argument('--num-train', type=int, default=200,
                        help='synthetic training images to generate (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=100,
                        help='synthetic validation images to generate (default: %(default)s)')
    parser.add_argument('--k', type=int, nargs='+', default=[10, 20],
                        help='neighbour counts (default: 10 20)')
    parser.add_argument('--temperature', type=float, default=0.07,
                        help='vote weight exp(sim / T) (default: %(default)s)')
    parser.add_argument('--size', type=int, default=224, help='crop side (default: %(default)s)')
    parser.add_argument('--resize', type=int, default=None,
                        help='short side before the crop (default: size * 8 / 7, 256 for 224)')
    parser.add_argument('--batch-size', type=int, default=64, help='(default: %(default)s)')
    parser.add_argument('--workers', type=int, default=0, help='image loading workers')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser


def resolve_folders(args: argparse.Namespace) -> Dict[str, str]:
    """train/val folders and label files from the flags or ``--synthetic``; one-line errors."""
    if args.synthetic:
        from densedino.datasets import ensure_synthetic_ade20k
        root = ensure_synthetic_ade20k(args.synthetic, num_train=args.num_train,
                                       num_val=args.num_val)
        return dict(train_dir=osp.join(root, 'images', 'training'),
                    train_labels=osp.join(root, 'image_labels_training.txt'),
                    val_dir=osp.join(root, 'images', 'validation'),
                    val_labels=osp.join(root, 'image_labels_validation.txt'))
    folders = dict(train_dir=args.train, train_labels=args.train_labels, val_dir=args.val,
                   val_labels=args.val_labels)
    flags = dict(train_dir='--train', train_labels='--train-labels', val_dir='--val',
                 val_labels='--val-labels')
    missing = [flags[k] for k, v in folders.items() if not v]
    if missing:
        raise SystemExit(f'error: give {", ".join(missing)} (or --synthetic DATA_ROOT)')
    for key in ('train_dir', 'val_dir'):
        if not osp.isdir(folders[key]):
            raise SystemExit(f'error: {flags[key]} folder {folders[key]} does not exist')
    for key in ('train_labels', 'val_labels'):
        if not osp.isfile(folders[key]):
            raise SystemExit(f'error: {flags[key]} file {folders[key]} does not exist')
    return folders


def main(args: argparse.Namespace) -> Dict[str, float]:
    from densedino.pretrain import knn_eval_folders
    folders = resolve_folders(args)
    backbone = build_backbone(args, RANDOM_WARNING)
    resize = args.resize or round(args.size * 8 / 7)
    results = knn_eval_folders(backbone, ks=args.k, temperature=args.temperature,
                               size=args.size, resize=resize, batch_size=args.batch_size,
                               num_workers=args.workers, progress=not args.no_progress,
                               **folders)
    for k in args.k:
        print(f'k-NN top-1 (k={k}): {results[f"knn_top1_k{k}"]:.2f}')
    if args.out:
        record = dict(results, backbone=args.backbone, checkpoint=args.checkpoint,
                      temperature=args.temperature, size=args.size, resize=resize, **folders)
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(record, f, indent=2)
        print(f'wrote {args.out}')
    return results


if __name__ == '__main__':
    run_cli(main, build_parser().parse_args())
