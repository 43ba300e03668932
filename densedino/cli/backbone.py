"""The backbone options of the feature tools (``--backbone``, ``--checkpoint``, ``--overrides``)."""
import argparse
import sys

from mmengine.config import DictAction


class OverridesAction(DictAction):
    """``--overrides depth=1 embed_dim=32`` -> ``{'depth': 1, 'embed_dim': 32}``: mmengine's
    ``DictAction`` (ints, floats, bools, ``None``, lists; repeated flags merge), plus argparse's
    one-line usage error for an item without ``=``, where ``DictAction`` raises a bare
    ``ValueError`` with a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or []:
            key, sep, _ = item.partition('=')
            if not sep or not key:
                parser.error(f'{option_string} expects KEY=VALUE, got {item!r}')
        super().__call__(parser, namespace, values, option_string)


def add_backbone_args(parser: argparse.ArgumentParser, *, checkpoint_help: str) -> None:
    """``--backbone``, ``--checkpoint``, ``--overrides``, ``--device`` and ``--seed``: the
    backbone of the feature tools (:func:`build_backbone`)."""
    parser.add_argument('--backbone', required=True,
                        help='backbone preset, e.g. dinov2_vits14 (densedino.list_backbones())')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--checkpoint', help=checkpoint_help)
    weights.add_argument('--pretrained', action='store_true',
                         help='the released weights of --backbone, downloaded once into the '
                         'cache (densedino.zoo; python tools/zoo.py list --kind backbone)')
    parser.add_argument('--overrides', nargs='+', action=OverridesAction, default={},
                        metavar='KEY=VALUE',
                        help='backbone preset overrides, e.g. those of a pretraining run: '
                        'depth=4 embed_dim=192 num_heads=3 img_size=112')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random weights used without --checkpoint '
                        '(default: %(default)s)')


def build_backbone(args: argparse.Namespace, random_warning: str):
    """The backbone of :func:`add_backbone_args`'s options on its device; without a checkpoint,
    ``random_warning`` on stderr and seeded (reproducible) random weights."""
    import torch

    from densedino import create_backbone
    if args.checkpoint is None and not args.pretrained:
        print(random_warning, file=sys.stderr)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    torch.manual_seed(args.seed)
    return create_backbone(args.backbone, checkpoint=args.checkpoint, pretrained=args.pretrained,
                           **args.overrides).to(device)
