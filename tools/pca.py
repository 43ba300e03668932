"""Joint PCA of a DINO backbone's patch features, as RGB, for one or several images.

    python tools/pca.py IMAGES... --backbone NAME [--checkpoint PATH] [--overrides K=V ...]
        [--layer N] [--size S] [--fg-threshold T] [--sign border|majority]
        [--colour sigmoid|minmax] [--dpi 150] [--out pca.png]

The ``pca`` mode of ``tools/visualize_features.py`` (see there and docs/visualisation.md).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from tools.visualize_features import cli  # noqa: E402

if __name__ == '__main__':
    cli('pca')
