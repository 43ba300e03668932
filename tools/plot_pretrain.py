"""Plot a pretraining run's losses and k-NN accuracy from its work directory.

    python tools/plot_pretrain.py work_dirs/pretrain/synthetic_vits --out docs/images/pretrain_knn.png

Reads every ``<work_dir>/<timestamp>/vis_data/scalars.json`` (written by mmengine's
``LocalVisBackend``; the k-NN points by :class:`densedino.pretrain.KNNMonitorHook`), oldest first,
so a resumed run continues the curve of the run it resumed (a later run's value wins at a step
both logged), and draws
two panels: the weighted total and each loss per logged iteration, and k-NN top-1 per ``k``
against the iteration. The point at iteration 0 (``at_start=True``) is the backbone at
initialisation and is drawn as a dashed reference line in its k's colour. Legends sit outside
the axes (nothing covers a curve); fonts and dpi follow ``densedino.visualization.style``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import TYPE_CHECKING, Dict, List, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import run_cli  # noqa: E402
from densedino.visualization import DEFAULT_DPI, matplotlib_style  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOSS_KEYS = ('loss', 'dino', 'ibot', 'koleo', 'gram')
Series = Dict[str, List[Tuple[int, float]]]


def find_scalars(work_dir: str) -> List[str]:
    """Every run's ``vis_data/scalars.json`` under ``work_dir``, oldest first (or the file itself)."""
    if osp.isfile(work_dir):
        return [work_dir]
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'{work_dir} does not exist')
    found = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir} (was it trained with '
                                'a LocalVisBackend?)')
    return found


def read_scalars(*paths: str) -> Series:
    """``{key: [(step, value), ...]}`` (by step) of every numeric scalar in scalars.json files;
    at a step logged in several files the last file's value is kept."""
    merged: Dict[str, Dict[int, float]] = {}
    for path in paths:
        with open(path, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f'{path}:{number}: not a JSON line') from None
                step = record.get('step', record.get('iter'))
                for key, value in record.items():
                    if key not in ('step', 'iter') and isinstance(value, (int, float)):
                        merged.setdefault(key, {})[int(step)] = float(value)
    return {key: sorted(values.items()) for key, values in merged.items()}


def _label(ax, ylabel: str, title: str, extra: tuple = ()) -> None:
    """Axis labels, title, grid, and the legend (the curves' entries, then ``extra``) outside
    the axes on the right, where it covers no curve."""
    ax.set_xlabel('iteration')
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + list(extra)
    ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _knn_keys(series: Series) -> List[str]:
    """The ``knn/top1_k<k>`` keys, by increasing k."""
    def k(key: str) -> int:
        tail = key.rsplit('k', 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return sorted((key for key in series if key.startswith('knn/')), key=k)


def draw(series: Series, *, title: str = '') -> 'Figure':
    """The figure: losses per iteration, and (if logged) k-NN top-1 per k with the value at
    initialisation as a dashed line of the same colour (one legend entry says what dashes
    mean). Fonts and legends follow the shared figure style."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone
    from matplotlib.lines import Line2D

    knn_keys = _knn_keys(series)
    with matplotlib.rc_context(matplotlib_style()):
        fig = Figure(figsize=(11 if knn_keys else 5.5, 3.8), layout='constrained')
        axes = fig.subplots(1, 2 if knn_keys else 1, squeeze=False)
        ax = axes[0, 0]
        for key in LOSS_KEYS:
            if key in series:
                steps, values = zip(*series[key])
                ax.plot(steps, values, label=key, lw=2.0 if key == 'loss' else 1.2)
        _label(ax, 'loss', 'losses (total weighted)')
        if knn_keys:
            ax = axes[0, 1]
            dashed = ()
            for key in knn_keys:
                steps, values = zip(*series[key])
                line, = ax.plot(steps, values, marker='o', label=f'k={key.rsplit("k", 1)[-1]}')
                if steps[0] == 0:
                    ax.axhline(values[0], ls='--', color=line.get_color(), alpha=0.6)
                    dashed = (Line2D([], [], ls='--', color='0.4', label='at initialisation'),)
            _label(ax, 'k-NN top-1 (%)', 'teacher k-NN accuracy', dashed)
        if title:
            fig.suptitle(title)
    return fig


def plot(series: Series, out: str, *, title: str = '', dpi: int = DEFAULT_DPI) -> str:
    """Write :func:`draw`'s figure to ``out``; returns ``out``."""
    fig = draw(series, title=title)
    out_dir = osp.dirname(out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='pretraining work directory (or a scalars.json file)')
    parser.add_argument('--out', default='pretrain_curves.png', help='PNG (default: %(default)s)')
    parser.add_argument('--title', default='', help='figure title')
    parser.add_argument('--dpi', type=int, default=DEFAULT_DPI,
                        help='resolution; the figure is 11 x 3.8 inches (default: %(default)s)')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser


def run(args: argparse.Namespace) -> str:
    """Read, plot and print the final k-NN figures."""
    paths = find_scalars(args.work_dir)
    series = read_scalars(*paths)
    if not any(k in series for k in LOSS_KEYS):
        raise ValueError(f'{paths[-1]} holds no training losses ({", ".join(LOSS_KEYS)})')
    out = plot(series, args.out, title=args.title, dpi=args.dpi)
    knn = {k: v[-1][1] for k, v in series.items() if k.startswith('knn/')}
    first = {k: v[0] for k, v in series.items() if k.startswith('knn/') and v[0][0] == 0}
    for key, value in sorted(knn.items()):
        start = f' (initialisation {first[key][1]:.2f})' if key in first else ''
        print(f'{key}: {value:.2f}{start}')
    print(f'wrote {out}')
    return out


def main(argv=None) -> None:
    run_cli(run, build_parser().parse_args(argv))


if __name__ == '__main__':
    main()
