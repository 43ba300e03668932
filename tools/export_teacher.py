"""Export the EMA teacher backbone of a pretraining checkpoint in official keys.

    python tools/export_teacher.py work_dirs/pretrain/synthetic_vits/iter_300.pth \
        --arch dinov2_vits14 --overrides depth=4 embed_dim=192 num_heads=3 img_size=112 --out teacher.pth

The result loads with ``create_backbone(ARCH, checkpoint=OUT, **OVERRIDES)`` (strict); the tool
checks that before returning.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import OverridesAction, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a DinoSSLModel teacher backbone')
    parser.add_argument('checkpoint', help='mmengine checkpoint of a DinoSSLModel')
    parser.add_argument('--arch', required=True, help='backbone hub name, e.g. dinov2_vits14')
    parser.add_argument('--overrides', nargs='+', action=OverridesAction, default={},
                        metavar='KEY=VALUE',
                        help='backbone preset overrides used in training (backbone_overrides)')
    parser.add_argument('--out', required=True, help='output .pth')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    from densedino import create_backbone
    from densedino.pretrain import export_teacher_backbone
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'error: checkpoint {args.checkpoint} does not exist')
    overrides = args.overrides
    export_teacher_backbone(args.checkpoint, args.out)
    try:
        create_backbone(args.arch, checkpoint=args.out, **overrides)  # strict load check
    except Exception:
        os.remove(args.out)  # no unusable file left behind: the error says what does not fit
        raise
    print(f'wrote {args.out} (loads as {args.arch} {overrides or ""})')


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
