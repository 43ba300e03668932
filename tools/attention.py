"""DINOv1-style attention maps of the class token, per head, for ViT backbones.

    python tools/attention.py IMAGES... --backbone NAME [--checkpoint PATH] [--overrides K=V ...]
        [--size S] [--threshold 0.6] [--max-heads 12] [--dpi 150] [--out attention.png]

Each map has its colour bar; the legend under the grid explains the --threshold outline.

The ``attention`` mode of ``tools/visualize_features.py`` (see there and docs/visualisation.md).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from tools.visualize_features import cli  # noqa: E402

if __name__ == '__main__':
    cli('attention')
