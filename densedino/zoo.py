"""The released DINO weight files: one table of what each file is, where it comes from, under
which licence, and which densedino preset it loads into.

Errors about a missing checkpoint look the file up here to say how to fetch it (see
:func:`how_to_get`), so a newcomer gets the URL and the command instead of "does not exist".
Every row is data (:class:`ZooEntry`); the table is :data:`ZOO`. Downloading and verifying the
files is :mod:`densedino.hub`'s (docs/zoo.md); this table says which files exist. The models
package imports it, so it imports nothing of densedino but the hub's DINOv3 gate.

``kind`` is ``'backbone'`` for every row so far; heads and complete models can be added as rows
of other kinds without changing the lookups.
"""
from __future__ import annotations

import difflib
import os.path as osp
import shlex
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .hub import DINOV3_GATE, OFFICIAL_BASE

__all__ = ['ZooEntry', 'ZOO', 'UnknownZooEntryError', 'get', 'find_file', 'entries',
           'how_to_get', 'DINOV3_LICENSE_PAGE']

#: Where the DINOv3 files are requested: the download links come by e-mail once the DINOv3
#: License is accepted there.
DINOV3_LICENSE_PAGE = DINOV3_GATE.request_url

_DINOV1_BASE = f'{OFFICIAL_BASE}/dino'
_DINOV2_BASE = f'{OFFICIAL_BASE}/dinov2'
_DINOV3_BASE = DINOV3_GATE.official_prefix


@dataclass(frozen=True)
class ZooEntry:
    """One released file.

    Attributes:
        name: The zoo name; for the backbones pretrained on the family's default data, the
            torch-hub entry name, which is also the densedino preset (``create_backbone(name)``).
        family: ``dinov1``, ``dinov2``, ``dinov2_reg``, ``dinov3`` or ``dinov3_convnext``.
        kind: What the file holds (``'backbone'``).
        arch: The densedino preset / torch-hub entry the weights load into.
        file_name: The official file name; ``None`` where it is not known (then
            ``file_pattern`` says what it looks like).
        url: The official download URL (for gated files, the path under the base URL that the
            licence e-mail gives).
        license: The licence of the weights.
        gated: Whether the file is only handed out after accepting a licence (``url`` then does
            not download as is).
        title: A short human description, e.g. ``'DINOv2 ViT-S/14'``.
        file_pattern: What the file name looks like where ``file_name`` is unknown.
    """
    name: str
    family: str
    kind: str
    arch: str
    file_name: Optional[str]
    url: Optional[str]
    license: str
    gated: bool
    title: str
    file_pattern: Optional[str] = None


_VIT_SIZE = {'s': 'ViT-S', 'b': 'ViT-B', 'l': 'ViT-L', 'g': 'ViT-g', 'h': 'ViT-H+', '7b': 'ViT-7B'}

# DINOv1: (hub name, folder/file stem)
_DINOV1: Tuple[Tuple[str, str, str], ...] = (
    ('dino_vits16', 'deitsmall16', 'ViT-S/16'), ('dino_vits8', 'deitsmall8', 'ViT-S/8'),
    ('dino_vitb16', 'vitbase16', 'ViT-B/16'), ('dino_vitb8', 'vitbase8', 'ViT-B/8'))

# DINOv3 pretrained on LVD-1689M (and two on SAT-493M): (name, arch, title, data, hash8);
# hash8 is the first 8 hex digits of the file's sha256 (torch.hub checks it).
_DINOV3: Tuple[Tuple[str, str, str, str, str], ...] = (
    ('dinov3_vits16', 'dinov3_vits16', 'ViT-S/16', 'lvd1689m', '08c60483'),
    ('dinov3_vits16plus', 'dinov3_vits16plus', 'ViT-S+/16', 'lvd1689m', '4057cbaa'),
    ('dinov3_vitb16', 'dinov3_vitb16', 'ViT-B/16', 'lvd1689m', '73cec8be'),
    ('dinov3_vitl16', 'dinov3_vitl16', 'ViT-L/16', 'lvd1689m', '8aa4cbdd'),
    ('dinov3_vith16plus', 'dinov3_vith16plus', 'ViT-H+/16', 'lvd1689m', '7c1da9a5'),
    ('dinov3_vit7b16', 'dinov3_vit7b16', 'ViT-7B/16', 'lvd1689m', 'a955f4ea'),
    ('dinov3_vitl16_sat493m', 'dinov3_vitl16', 'ViT-L/16 (satellite, SAT-493M)', 'sat493m',
     'eadcf0ff'),
    ('dinov3_vit7b16_sat493m', 'dinov3_vit7b16', 'ViT-7B/16 (satellite, SAT-493M)', 'sat493m',
     'a6675841'),
    ('dinov3_convnext_tiny', 'dinov3_convnext_tiny', 'ConvNeXt-T', 'lvd1689m', '21b726bb'),
    ('dinov3_convnext_small', 'dinov3_convnext_small', 'ConvNeXt-S', 'lvd1689m', '296db49d'),
    ('dinov3_convnext_base', 'dinov3_convnext_base', 'ConvNeXt-B', 'lvd1689m', '801f2ba9'),
    ('dinov3_convnext_large', 'dinov3_convnext_large', 'ConvNeXt-L', 'lvd1689m', '61fa432d'),
)


def _dinov1_rows() -> List[ZooEntry]:
    rows = []
    for name, stem, title in _DINOV1:
        file_name = f'dino_{stem}_pretrain.pth'
        rows.append(ZooEntry(name, 'dinov1', 'backbone', name, file_name,
                             f'{_DINOV1_BASE}/dino_{stem}_pretrain/{file_name}', 'Apache-2.0',
                             False, f'DINOv1 {title}'))
    return rows


def _dinov2_rows() -> List[ZooEntry]:
    rows = []
    for registers in (False, True):
        for size in 'sblg':
            arch = f'dinov2_vit{size}14'
            name = arch + ('_reg' if registers else '')
            file_name = f'{arch}{"_reg4" if registers else ""}_pretrain.pth'
            title = f'DINOv2 {_VIT_SIZE[size]}/14' + (' with registers' if registers else '')
            rows.append(ZooEntry(name, 'dinov2_reg' if registers else 'dinov2', 'backbone', name,
                                 file_name, f'{_DINOV2_BASE}/{arch}/{file_name}', 'Apache-2.0',
                                 False, title))
    return rows


def _dinov3_rows() -> List[ZooEntry]:
    rows = []
    for name, arch, title, data, hash8 in _DINOV3:
        file_name = f'{arch}_pretrain_{data}-{hash8}.pth' if hash8 else None
        pattern = f'{arch}_pretrain_{data}-<8 hex digits>.pth'
        family = 'dinov3_convnext' if 'convnext' in arch else 'dinov3'
        url = f'{_DINOV3_BASE}/{arch}/{file_name}' if file_name else None
        rows.append(ZooEntry(name, family, 'backbone', arch, file_name, url, 'DINOv3 License',
                             True, f'DINOv3 {title}', pattern))
    return rows


#: Every released file, by zoo name.
ZOO: Dict[str, ZooEntry] = {e.name: e for e in _dinov1_rows() + _dinov2_rows() + _dinov3_rows()}


class UnknownZooEntryError(KeyError):
    """An unknown zoo name; the message lists the nearest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def get(name: str) -> ZooEntry:
    """The entry called ``name``; an unknown name raises a KeyError naming the nearest ones."""
    if name in ZOO:
        return ZOO[name]
    near = difflib.get_close_matches(name, ZOO, n=4, cutoff=0.5)
    hint = f'did you mean {", ".join(near)}?' if near else f'known: {", ".join(ZOO)}'
    raise UnknownZooEntryError(f'unknown zoo entry {name!r}; {hint}')


def find_file(path: str) -> Optional[ZooEntry]:
    """The entry whose official file name is ``path``'s base name (any folder), else ``None``."""
    base = osp.basename(path.rstrip('/'))
    for entry in ZOO.values():
        if entry.file_name is not None and entry.file_name == base:
            return entry
    return None


def entries(kind: Optional[str] = None, family: Optional[str] = None) -> List[ZooEntry]:
    """The entries of a kind and / or family, in table order."""
    return [e for e in ZOO.values()
            if (kind is None or e.kind == kind) and (family is None or e.family == family)]


def how_to_get(path: str) -> Optional[str]:
    """One sentence for a missing ``path`` that is a released file: what it is, its licence,
    where it comes from and the command that fetches it to ``path``; ``None`` for other files.
    """
    entry = find_file(path)
    if entry is None:
        return None
    what = f'the {entry.title} {entry.kind} released by Meta ({entry.license})'
    folder = osp.dirname(path)
    fetch = f'curl -L -o {shlex.quote(path)} '
    fetch = (f'mkdir -p {shlex.quote(folder)} && ' if folder else '') + fetch
    if not entry.gated:
        return f'it is {what}, from {entry.url}; fetch it with: {fetch}{entry.url}'
    return (f'it is {what}, a gated download: accept the DINOv3 License at '
            f'{DINOV3_LICENSE_PAGE}, then fetch it with the link the e-mail gives for '
            f'{entry.arch}: {fetch}"<link for {entry.file_name}>"')
