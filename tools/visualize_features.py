"""Figures of what a DINO backbone sees: joint PCA colours, CLS attention, query similarity.

    python tools/visualize_features.py pca IMAGES... --backbone NAME [--pretrained | --checkpoint PATH]
        [--layer N]
        [--size S] [--fg-threshold T] [--sign border|majority] [--colour sigmoid|minmax]
        [--out pca.png]
    python tools/visualize_features.py attention IMAGES... --backbone NAME
        [--pretrained | --checkpoint PATH]
        [--threshold 0.6] [--max-heads 12] [--out attention.png]
    python tools/visualize_features.py similarity IMAGES... --backbone NAME [--query X Y] [--out sim.png]

``tools/pca.py`` and ``tools/attention.py`` are the first two modes under their own names.
One row per image; columns: input | PCA colours (| foreground), input | mean attention | heads,
or input | similarity to the query patch of the first image. Images keep their aspect ratio:
the short side is resized to ``--size`` and the rest padded to the patch multiple, never
squashed; the maps are cropped back to the image. Attention and similarity maps carry a colour
bar each; a legend under the grid explains the outline and the query mark. The figure's title
names the model as built (preset, ``--overrides``, checkpoint file). ``--pretrained`` takes the
released weights of ``--backbone`` (downloaded once, densedino.zoo). Without either the weights
are random and the maps mean nothing (a warning says so, and the figure title too).
Fonts, ticks and the default dpi follow ``densedino.visualization.style``.
"""
import argparse
import os
import os.path as osp
import sys
from typing import TYPE_CHECKING, List, Optional, Sequence

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import add_backbone_args, build_backbone, run_cli  # noqa: E402
from densedino.visualization import DEFAULT_DPI  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ('pca', 'attention', 'similarity')
RANDOM_WARNING = ('warning: random weights: the maps are meaningless; pass --pretrained or '
                  '--checkpoint')
COLORBAR_INCHES = 0.85  # added to a map column's width for its colour bar and tick labels
TITLE_INCHES = 0.9  # the figure's two-line title and the panel titles
KEY_INCHES = 0.35  # the legend below the grid
OUTLINE_COLOUR = 'cyan'
QUERY_MARKER = dict(marker='+', color='red', markersize=12, mew=2)


def build_parser(mode: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of one mode, or (``mode=None``) of all modes as sub-commands."""
    if mode is not None:
        parser = argparse.ArgumentParser(description=_DESCRIPTIONS[mode])
        _add_args(parser, mode)
        return parser
    parser = argparse.ArgumentParser(description='Feature visualisations of DINO backbones')
    sub = parser.add_subparsers(dest='mode', required=True)
    for m in MODES:
        _add_args(sub.add_parser(m, help=_DESCRIPTIONS[m], description=_DESCRIPTIONS[m]), m)
    return parser


_DESCRIPTIONS = {
    'pca': 'Joint PCA of patch features shown as RGB (optionally foreground only)',
    'attention': "DINOv1-style attention maps of the class token, one per head (ViTs only)",
    'similarity': 'Cosine similarity of every patch with a query patch of the first image',
}


def _add_args(parser: argparse.ArgumentParser, mode: str) -> None:
    parser.set_defaults(mode=mode)
    parser.add_argument('images', nargs='+', help='image files (any format OpenCV reads)')
    add_backbone_args(parser, checkpoint_help='backbone weights (official .pth, Hugging Face, '
                      'timm, exported teacher); without it the weights are random and the maps '
                      'meaningless')
    parser.add_argument('--size', type=int, default=448,
                        help='resize the short side to S pixels, aspect kept; 0 keeps the image '
                        'size (default: %(default)s)')
    parser.add_argument('--out', default=f'{mode}.png', help='figure file (default: %(default)s)')
    parser.add_argument('--dpi', type=int, default=DEFAULT_DPI,
                        help='figure resolution; a panel is 2.2 inches high, its text 9-12 pt '
                        '(default: %(default)s)')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    if mode != 'attention':
        parser.add_argument('--layer', type=int, default=None,
                            help='ViT block (ConvNeXt: stage 0-3) to read, negatives from the '
                            'end (default: the last, after the final norm)')
    if mode == 'pca':
        parser.add_argument('--fg-threshold', type=float, default=None, metavar='T',
                            help='separate the foreground: first component > T (in standard '
                            'deviations), colour only it (default: colour every patch)')
        parser.add_argument('--sign', choices=('border', 'majority'), default='border',
                            help="which side of the first component is foreground: 'border': "
                            "image borders are background; 'majority': the foreground is the "
                            'smaller side (default: %(default)s)')
        parser.add_argument('--colour', choices=('sigmoid', 'minmax'), default='sigmoid',
                            help='sigmoid(2 x whitened projection) (DINOv3) or per-channel '
                            'min-max (default: %(default)s)')
    elif mode == 'attention':
        parser.add_argument('--threshold', type=float, default=None, metavar='T',
                            help='outline the patches holding the top T of each head\'s '
                            'attention mass, e.g. 0.6 (DINOv1)')
        parser.add_argument('--max-heads', type=int, default=12,
                            help='show at most this many heads (default: %(default)s)')
    else:
        parser.add_argument('--query', type=float, nargs=2, metavar=('X', 'Y'), default=None,
                            help='query pixel in the first image (default: its centre)')


# --------------------------------------------------------------------------------- model

def read_images(paths: Sequence[str]) -> List[np.ndarray]:
    """All images, read before any model work so that a bad file fails fast (naming it)."""
    from densedino.visualization import read_image
    return [read_image(p) for p in paths]


def _progress(items: Sequence, desc: str):
    from densedino.progress import progress_iter
    return progress_iter(items, len(items), len(items) > 1, desc)


# --------------------------------------------------------------------------------- modes

def pca_rows(args: argparse.Namespace, backbone, images: Sequence[np.ndarray]) -> List[list]:
    """Panels per image: input | joint PCA colours (| foreground mask)."""
    from densedino.visualization import (
        extract_patch_features,
        foreground_mask,
        pca_rgb,
        to_image_grid,
    )
    feats = extract_patch_features(backbone, _progress(images, 'features'), layer=args.layer,
                                   size=args.size or None)
    maps, valid = [f.features for f in feats], [f.valid for f in feats]
    fg = None
    if args.fg_threshold is not None:
        fg = foreground_mask(maps, threshold=args.fg_threshold, sign=args.sign, valid=valid)
    colours = pca_rgb(maps, fg, valid=valid, mode=args.colour)
    rows = []
    for i, f in enumerate(feats):
        row = [_panel(f.image, 'input'),
               _panel(to_image_grid(colours[i], f.box, f.stride), f'PCA ({args.colour})')]
        if fg is not None:
            mask = to_image_grid(fg[i], f.box, f.stride)
            row.append(_panel(f.image * mask[..., None].astype(np.uint8),
                              f'foreground (z > {args.fg_threshold:g}, {args.sign})'))
        rows.append(row)
    return rows


def attention_rows(args: argparse.Namespace, backbone,
                   images: Sequence[np.ndarray]) -> List[list]:
    """Panels per image: input | mean over heads | the first ``--max-heads`` heads."""
    from densedino.visualization import cls_attention_maps, to_image_grid
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise ValueError(f'--threshold must be in (0, 1], got {args.threshold}')
    rows = []
    for image in _progress(images, 'attention'):
        att = cls_attention_maps(backbone, image, threshold=args.threshold,
                                 size=args.size or None)
        heads = min(args.max_heads, att.maps.shape[0])
        mean = to_image_grid(att.maps.mean(0), att.box, att.stride)
        row = [_panel(att.image, 'input'),
               _panel(mean, 'mean of heads', cmap='inferno', colorbar='attention weight')]
        for k in range(heads):
            outline = None if att.masks is None else to_image_grid(att.masks[k], att.box,
                                                                   att.stride)
            row.append(_panel(to_image_grid(att.maps[k], att.box, att.stride), f'head {k}',
                              cmap='inferno', outline=outline, colorbar='attention weight'))
        rows.append(row)
    return rows


def similarity_rows(args: argparse.Namespace, backbone,
                    images: Sequence[np.ndarray]) -> List[list]:
    """Panels per image: input | cosine similarity to the query patch of the first image."""
    from densedino.visualization import (
        extract_patch_features,
        query_patch,
        similarity_map,
        to_image_grid,
    )
    feats = extract_patch_features(backbone, _progress(images, 'features'), layer=args.layer,
                                   size=args.size or None)
    h0, w0 = images[0].shape[:2]
    xy = tuple(args.query) if args.query else ((w0 - 1) / 2, (h0 - 1) / 2)
    first = feats[0]
    rc = query_patch(xy, (h0, w0), first.box, first.stride)
    marker = (xy[0] * first.box[3] / w0, xy[1] * first.box[2] / h0)
    sims = [to_image_grid(similarity_map(first.features, rc, f.features), f.box, f.stride)
            for f in feats]
    low = min(float(s.min()) for s in sims)  # one colour scale for all images: low .. 1
    return [[_panel(f.image, 'input', marker=marker if i == 0 else None),
             _panel(s, 'similarity to the query', cmap='viridis', vmin=low, vmax=1.0,
                    colorbar='cosine similarity')]
            for i, (f, s) in enumerate(zip(feats, sims))]


_ROWS = {'pca': pca_rows, 'attention': attention_rows, 'similarity': similarity_rows}


# -------------------------------------------------------------------------------- figure

def _panel(array: np.ndarray, title: str, **style) -> dict:
    """One panel: the array, its title, and how to draw it (``cmap``, ``vmin``, ``vmax``,
    ``colorbar`` label, ``outline`` mask, ``marker`` xy)."""
    return dict(array=array, title=title, **style)


def build_figure(rows: List[list], names: Sequence[str], title: str,
                 keys: Sequence = ()) -> 'Figure':
    """A grid of panels (rows = images) at the images' aspect ratio, in the shared style.

    Map panels get a colour bar; ``keys`` (matplotlib artists with labels: the attention
    outline, the query marker) are explained in a legend below the grid, off the maps.
    """
    import matplotlib
    from matplotlib.figure import Figure

    from densedino.visualization import PANEL_INCHES, matplotlib_style
    aspect = max(r[0]['array'].shape[1] / r[0]['array'].shape[0] for r in rows)
    ncols = max(len(r) for r in rows)
    with_bar = [any(c < len(r) and r[c].get('colorbar') for r in rows) for c in range(ncols)]
    widths = [PANEL_INCHES * aspect + (COLORBAR_INCHES if bar else 0) for bar in with_bar]
    height = len(rows) * PANEL_INCHES + TITLE_INCHES + (KEY_INCHES if keys else 0)
    with matplotlib.rc_context(matplotlib_style()):
        fig = Figure(figsize=(sum(widths), height), layout='constrained')
        axes = fig.subplots(len(rows), ncols, squeeze=False,
                            gridspec_kw={'width_ratios': widths})
        for r, (row, name) in enumerate(zip(rows, names)):
            for c, ax in enumerate(axes[r]):
                ax.set_axis_off()
                if c < len(row):
                    _draw_panel(ax, row[c], show_title=r == 0)
            axes[r][0].set_axis_on()
            axes[r][0].set_xticks([])
            axes[r][0].set_yticks([])
            axes[r][0].set_ylabel(osp.basename(name))
        fig.suptitle(title)
        if keys:
            fig.legend(handles=list(keys), loc='outside lower center', ncols=len(keys),
                       frameon=False)
    return fig


def draw_figure(rows: List[list], names: Sequence[str], title: str, out: str,
                dpi: Optional[int] = None, keys: Sequence = ()) -> 'Figure':
    """:func:`build_figure`, saved to ``out`` with Agg (default dpi: the style's); returns it."""
    fig = build_figure(rows, names, title, keys)
    folder = osp.dirname(out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=dpi or DEFAULT_DPI)
    return fig


def _draw_panel(ax, panel: dict, show_title: bool) -> None:
    from densedino.visualization import add_colorbar
    image = ax.imshow(panel['array'], cmap=panel.get('cmap'), vmin=panel.get('vmin'),
                      vmax=panel.get('vmax'), interpolation='nearest')
    if panel.get('colorbar'):
        add_colorbar(ax, image, panel['colorbar'])
    if panel.get('outline') is not None and panel['outline'].any():
        ax.contour(panel['outline'].astype(float), levels=[0.5], colors=OUTLINE_COLOUR,
                   linewidths=1.2)
    if panel.get('marker') is not None:
        ax.plot(*panel['marker'], **QUERY_MARKER)
    if show_title:
        ax.set_title(panel['title'])


def _keys(args: argparse.Namespace) -> list:
    """Legend entries for what is drawn on the maps: the attention outline, the query mark."""
    from matplotlib.lines import Line2D
    if args.mode == 'attention' and args.threshold is not None:
        return [Line2D([], [], color=OUTLINE_COLOUR, lw=1.5,
                       label=f'outline: the fewest patches holding {args.threshold:.0%} of '
                       "the head's attention")]
    if args.mode == 'similarity':
        return [Line2D([], [], ls='none', label='query patch', **QUERY_MARKER)]
    return []


def describe_model(args: argparse.Namespace) -> str:
    """The model as built: preset, every ``--overrides`` value, and the weights' file name
    (or that they are random), e.g. ``dinov2_vits14 (depth=4, embed_dim=192), teacher.pth``."""
    overrides = ', '.join(f'{k}={v}' for k, v in (args.overrides or {}).items())
    name = f'{args.backbone} ({overrides})' if overrides else args.backbone
    weights = osp.basename(args.checkpoint) if args.checkpoint else \
        'released weights' if args.pretrained else 'RANDOM WEIGHTS: meaningless maps'
    return f'{name}, {weights}'


def _figure_title(args: argparse.Namespace, backbone) -> str:
    what = {'pca': 'joint PCA of patch features', 'attention': 'CLS attention, last block',
            'similarity': 'cosine similarity to the query patch'}[args.mode]
    layer = getattr(args, 'layer', None)
    where = '' if layer is None else f', {"block" if hasattr(backbone, "blocks") else "stage"} ' \
                                     f'{layer}'
    return f'{what}{where}\n{describe_model(args)}'


def main(args: argparse.Namespace) -> 'Figure':
    """Read the images, build the backbone, draw and save the figure; returns the Figure."""
    if args.size < 0:
        raise ValueError(f'--size must be >= 0 (0 keeps the image size), got {args.size}')
    if args.dpi < 10:
        raise ValueError(f'--dpi must be >= 10, got {args.dpi}')
    images = read_images(args.images)
    backbone = build_backbone(args, RANDOM_WARNING)
    rows = _ROWS[args.mode](args, backbone, images)
    fig = draw_figure(rows, args.images, _figure_title(args, backbone), args.out, args.dpi,
                      _keys(args))
    print(f'wrote {args.out} ({len(rows)} image{"s" if len(rows) > 1 else ""})')
    return fig


def cli(mode: Optional[str] = None, argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/visualize_features.py`` (``mode=None``) and its per-mode wrappers."""
    run_cli(main, build_parser(mode).parse_args(argv))


if __name__ == '__main__':
    cli()
