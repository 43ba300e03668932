"""Turn released weights into one densedino checkpoint that tools/test.py and init_model load.

    python tools/convert_checkpoint.py configs/seg/ade20k_linear.py \
        --backbone dinov2_vits14_pretrain.pth --head dinov2_vits14_ade20k_linear_head.pth \
        --out checkpoints/dinov2_vits14_ade20k_linear.pth

    python tools/convert_checkpoint.py configs/depth/depth_anything_v2_vits_relative.py \
        --depth-anything depth_anything_v2_vits.pth --out checkpoints/dav2_vits_relative.pth

The backbone weights may be any format ``create_backbone`` reads (official hub, Hugging Face,
timm, training checkpoints); the head file holds head weights only: an mmseg-style file with
``decode_head.*`` keys (DINOv2's released segmentation and depth heads) or a DINOv3 linear-head
training file. A file holding a whole model (``backbone.*`` and ``decode_head.*``) is refused as
``--head`` alone, and taken whole when it is also given as ``--backbone``. ``--depth-anything``
takes a whole Depth-Anything-V2 model instead (official ``.pth`` or a Hugging Face directory).
``--cfg-options`` edits the config first, as in tools/train.py and tools/test.py. The output
holds the full model state dict and ``meta.dataset_meta`` (class names and palette of the
config's dataset; 'depth' for a depth model without one), so class names are never guessed.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import check_options, read_config, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config whose model the weights belong to')
    parser.add_argument('--backbone', help='backbone weights (default: the config\'s '
                        'model.backbone.checkpoint)')
    parser.add_argument('--head', help='head weights (decode_head.* keys)')
    parser.add_argument('--depth-anything', help='a whole Depth-Anything-V2 model (official .pth '
                        'or Hugging Face directory) instead of --backbone/--head')
    parser.add_argument('--out', required=True, help='output .pth')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.decode_head.num_classes=21')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    import torch
    import densedino  # noqa: F401
    from mmengine.registry import init_default_scope
    from densedino.apis import model_dataset_meta
    from densedino.models import load_depth_anything_v2
    from densedino.models.heads import load_head_checkpoint
    from densedino.registry import MODELS
    if bool(args.head) == bool(args.depth_anything):
        raise ValueError('give either --head (with the config\'s or --backbone\'s backbone) or '
                         '--depth-anything')
    if args.depth_anything and args.backbone:
        raise ValueError('--depth-anything holds the backbone too: drop --backbone')
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = read_config(args.config)
    check_options(cfg, args.cfg_options)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'densedino'))
    if args.backbone:
        cfg.model.backbone.update(checkpoint=args.backbone, pretrained=False)
    if args.depth_anything:
        cfg.model.backbone.update(checkpoint=None, pretrained=False)
        model = MODELS.build(cfg.model)
        load_depth_anything_v2(model, args.depth_anything)
        sources = dict(depth_anything=args.depth_anything)
    else:
        model = MODELS.build(cfg.model)
        same_file = bool(args.backbone) and osp.realpath(args.backbone) == osp.realpath(args.head)
        load_head_checkpoint(model, args.head, skip_prefixes=('backbone.',) if same_file else ())
        sources = dict(backbone=cfg.model.backbone.checkpoint, head=args.head)
    meta = dict(dataset_meta=model_dataset_meta(model, cfg), converted_from=sources)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(state_dict=model.state_dict(), meta=meta), args.out)
    print(f'wrote {args.out} ({len(meta["dataset_meta"]["classes"])} classes)')


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
