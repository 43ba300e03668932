"""A config path that does not exist, with the nearest configs: standard library only.

``load_config`` uses it, and ``tools/train.py`` runs this file by path (``runpy``) before it
imports densedino: importing the package pulls in torch and mmseg (seconds; tens of seconds on a
cold disk), and a mistyped config should be answered at once. So this module must not import
densedino, torch or mmengine.
"""
import difflib
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence

#: The configs shipped with densedino: ``configs/`` of the checkout this file belongs to.
CONFIGS_ROOT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


def config_files(roots: Iterable[str]) -> List[str]:
    """The runnable configs (``.py`` files outside ``_base_`` and ``suites``, which list
    benchmark entries for tools/benchmark_suite.py) under ``roots``, absolute."""
    found = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ('_base_', 'suites')
                       and not d.startswith(('.', '__'))]
            found.update(osp.abspath(osp.join(folder, f)) for f in files if f.endswith('.py'))
    return sorted(found)


def nearest_configs(path: str, n: int = 3,
                    roots: Optional[Sequence[str]] = None) -> List[str]:
    """The configs closest to ``path``, best first: the mean similarity of the path (relative
    to the working directory) and of the file name, so that a typo in a folder or in the name
    both find the file, and a shared ``configs/seg/`` alone does not. Only those nearly as close
    as the best are kept."""
    roots = [CONFIGS_ROOT, 'configs'] if roots is None else roots
    scored = []
    for candidate in config_files(r for r in roots if osp.isdir(r)):
        shown = _shown(candidate)
        whole = difflib.SequenceMatcher(None, osp.normpath(path), shown).ratio()
        name = difflib.SequenceMatcher(None, osp.basename(path), osp.basename(shown)).ratio()
        scored.append(((whole + name) / 2, shown))
    scored.sort(key=lambda item: -item[0])
    best = scored[0][0] if scored else 0.0
    return [shown for score, shown in scored[:n] if score >= max(0.66, best - 0.08)]


def _shown(path: str) -> str:
    """``path`` relative to the working directory when under it, else absolute."""
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def config_error(path: str, roots: Optional[Sequence[str]] = None) -> Optional[str]:
    """``None`` when ``path`` is a file; else the one-line error, with the nearest configs."""
    if osp.isfile(path):
        return None
    near = nearest_configs(path, roots=roots)
    folders = sorted({osp.dirname(_shown(f)) for f in config_files([CONFIGS_ROOT])})
    hint = f'; did you mean {" or ".join(near)}?' if near else \
        f' (no config has a similar name; the configs are in {", ".join(folders)})'
    return f'error: config file {path} does not exist{hint}'


def config_argument(argv: Sequence[str], value_options: Iterable[str]) -> Optional[str]:
    """The config among command-line arguments, read without argparse: the first argument
    ending in ``.py`` that is neither an option, nor a ``KEY=VALUE`` override, nor the value of
    one of ``value_options``. ``None`` when unsure (the full parse decides later)."""
    value_options = set(value_options)
    previous = None
    for item in argv:
        if item == '--':
            previous = None
            continue
        if not item.startswith('-') and '=' not in item and item.endswith('.py') and \
                previous not in value_options:
            return item
        previous = item
    return None


def exit_if_config_missing(argv: Sequence[str], value_options: Iterable[str]) -> None:
    """Stop with the one-line error (exit code 1) when the config in ``argv`` does not exist."""
    path = config_argument(argv, value_options)
    error = config_error(path) if path is not None else None
    if error is not None:
        raise SystemExit(error)
