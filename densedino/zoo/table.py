"""The table of every entry (:data:`ZOO`) and its lookups.

Errors about a missing checkpoint look the file up here to say how to fetch it (see
:func:`how_to_get`), so a newcomer gets the URL and the command instead of "does not exist".
"""
from __future__ import annotations

import difflib
import os.path as osp
import shlex
from typing import Dict, List, Optional

from .backbones import backbone_rows
from .entry import CONFIGS_ROOT, DINOV3_LICENSE_PAGE, TASKS, ZooEntry
from .models import depth_anything_rows, head_and_model_rows

__all__ = ['ZOO', 'UnknownZooEntryError', 'get', 'find_file', 'entries', 'how_to_get',
           'list_models', 'config_path', 'files', 'backbone_entry']

#: Every entry, by zoo name: backbones, then DINOv2 heads and complete models, then
#: Depth-Anything-V2.
ZOO: Dict[str, ZooEntry] = {e.name: e for e in backbone_rows() + head_and_model_rows()
                            + depth_anything_rows()}


class UnknownZooEntryError(KeyError):
    """An unknown zoo name; the message lists the nearest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def suggest(name: str, names: List[str]) -> str:
    """``'did you mean a, b?'`` for the names nearest ``name``, else where the names are listed."""
    near = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
    return f'did you mean {", ".join(near)}?' if near else \
        f'python tools/zoo.py list shows the {len(names)} names'


def get(name: str) -> ZooEntry:
    """The entry called ``name``; an unknown name raises a KeyError naming the nearest ones."""
    if name in ZOO:
        return ZOO[name]
    raise UnknownZooEntryError(f'unknown zoo entry {name!r}; {suggest(name, list(ZOO))}')


def find_file(path: str) -> Optional[ZooEntry]:
    """The entry whose official file name is ``path``'s base name (any folder), else ``None``."""
    base = osp.basename(path.rstrip('/'))
    for entry in ZOO.values():
        if entry.file_name is not None and entry.file_name == base:
            return entry
    return None


def entries(kind: Optional[str] = None, family: Optional[str] = None,
            task: Optional[str] = None) -> List[ZooEntry]:
    """The entries of a kind, family and / or task, in table order."""
    return [e for e in ZOO.values() if (kind is None or e.kind == kind)
            and (family is None or e.family == family) and (task is None or e.task == task)]


def list_models(task: Optional[str] = None) -> List[str]:
    """The names ``densedino.init_model(name)`` takes: complete models (config + weights),
    all of them or those of one task (``'seg'`` or ``'depth'``)."""
    if task is not None and task not in TASKS:
        raise ValueError(f'task must be one of {", ".join(TASKS)} or None, got {task!r}')
    return [e.name for e in entries(kind='model', task=task)]


_TASK_WORDS = {'seg': 'segmentation', 'depth': 'depth'}


def model_entry(name: str, task: Optional[str] = None) -> ZooEntry:
    """The complete model ``name`` (of ``task``, if given); otherwise a ValueError naming the
    nearest model names, so that a command line is refused before anything downloads."""
    names = list_models(task)
    if name not in names:
        kind = f'{_TASK_WORDS[task]} ' if task is not None else ''
        raise ValueError(f'{name} is no released {kind}model; {suggest(name, names)}')
    return ZOO[name]


def backbone_entry(name: str) -> ZooEntry:
    """The backbone file ``create_backbone(name, pretrained=True)`` loads; heads and complete
    models are refused with a pointer to what takes them."""
    entry = get(name)
    if entry.kind != 'backbone':
        use = 'densedino.init_model(name)' if entry.kind == 'model' else \
            f'the complete model {entry.name[:-len("_head")]} (densedino.init_model)'
        raise ValueError(f'{name} is a {entry.kind}, not a backbone: pretrained=True takes a '
                         f'backbone name (densedino.zoo.entries(kind="backbone")); for it use '
                         f'{use}')
    return entry


def files(name: str) -> List[ZooEntry]:
    """The entries whose files make up ``name``: itself, or a complete model's backbone and
    head."""
    entry = get(name)
    return [entry] if entry.has_file else [get(part) for part in entry.parts]


def config_path(entry: ZooEntry) -> str:
    """The absolute path of the entry's config (configs/ ships with the densedino checkout)."""
    if entry.config is None:
        raise ValueError(f'{entry.name} belongs to no densedino config')
    path = osp.join(osp.dirname(CONFIGS_ROOT), entry.config)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {entry.config} of {entry.name} is not at {path}: '
                                'densedino\'s configs/ folder comes with its source checkout '
                                '(pip install -e .)')
    return path


def how_to_get(path: str) -> Optional[str]:
    """One sentence for a missing ``path`` that is a released file: what it is, its licence,
    where it comes from and the command that fetches it to ``path``; ``None`` for other files.
    """
    entry = find_file(path)
    if entry is None:
        return None
    what = f'the {entry.title} {entry.kind} released by {entry.publisher} ({entry.license})'
    folder = osp.dirname(path)
    fetch = f'curl -L -o {shlex.quote(path)} '
    fetch = (f'mkdir -p {shlex.quote(folder)} && ' if folder else '') + fetch
    if not entry.gated:
        return f'it is {what}, from {entry.url}; fetch it with: {fetch}{entry.url}'
    return (f'it is {what}, a gated download: accept the DINOv3 License at '
            f'{DINOV3_LICENSE_PAGE}, then fetch it with the link the e-mail gives for '
            f'{entry.arch}: {fetch}"<link for {entry.file_name}>"')
