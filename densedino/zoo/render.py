"""The zoo as markdown tables, for docs/zoo.md (a test checks that the page holds the current
tables, so the page cannot drift from the code) and ``tools/zoo.py list --markdown``."""
from __future__ import annotations

from typing import Iterable, List, Sequence

from .entry import ZooEntry
from .table import entries

__all__ = ['render_markdown', 'config_text']


def config_text(entry: ZooEntry) -> str:
    """``configs/x.py`` or ``configs/x.py with key=value``: the config as the entry uses it."""
    if entry.config is None:
        return '-'
    options = ' '.join(f'{k}={v}' for k, v in entry.cfg_options)
    return f'`{entry.config}`' + (f' with `{options}`' if options else '')


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> List[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(cell or '-' for cell in row) + ' |' for row in rows]
    return lines


def _backbones() -> List[str]:
    return _table(('name', 'file', 'Hugging Face', 'licence', 'figure'), (
        (f'`{e.name}`', f'[{e.file_name}]({e.url})', e.hf_repo and f'`{e.hf_repo}`',
         e.license + (' (gated)' if e.gated else ''), e.figure)
        for e in entries(kind='backbone')))


def _heads() -> List[str]:
    return _table(('name', 'task', 'file', 'licence'), (
        (f'`{e.name}`', e.task, f'[{e.file_name}]({e.url})', e.license)
        for e in entries(kind='head')))


def _models() -> List[str]:
    def weights(e: ZooEntry) -> str:
        if e.has_file:
            return f'[{e.hf_file}]({e.url})'
        return ' + '.join(f'`{part}`' for part in e.parts)
    return _table(('name', 'task', 'config', 'weights', 'licence', 'figure'), (
        (f'`{e.name}`', e.task, config_text(e), weights(e), e.license, e.figure)
        for e in entries(kind='model')))


def render_markdown() -> str:
    """Three tables, backbones, heads and complete models, with a count line each."""
    parts = []
    for title, kind, lines in (('Backbones', 'backbone', _backbones()),
                               ('Heads', 'head', _heads()),
                               ('Complete models', 'model', _models())):
        parts.append(f'**{title}** ({len(entries(kind=kind))})\n\n' + '\n'.join(lines))
    return '\n\n'.join(parts) + '\n'
