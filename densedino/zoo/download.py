"""Getting an entry's file onto the disk, through :mod:`densedino.hub` (the one download path).

Files on Meta's server go through ``hub.fetch`` (cache, mirror, offline mode, DINOv3 gate,
verification, the licence printed on first download). Depth-Anything-V2 files come from
Hugging Face through ``hub.fetch_hf``; a copy saved in densedino's own cache under the official
file name is used first, so that every file can be placed by hand, or copied from another
machine, in the same folder (``tools/zoo.py download --dir``).
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import uuid
from typing import Union

from .. import hub
from .entry import ZooEntry, license_text
from .table import get

__all__ = ['fetch']


def fetch(entry: Union[str, ZooEntry], *, progress: bool = True,
          into_cache: bool = False) -> str:
    """The local path of the entry's file, downloaded on first use.

    Args:
        entry: A zoo name or entry with a file of its own (backbone, head, Depth-Anything-V2
            model; a DINOv2 complete model is two files: see :func:`densedino.zoo.files`).
        progress: Show the download's progress bar.
        into_cache: For a Hugging Face file, also copy it into densedino's cache (by default it
            stays in Hugging Face's own cache), e.g. to carry the cache to an offline machine.

    Raises:
        densedino.hub.DownloadError: the file cannot be fetched (one line: why, and where to
            save it by hand).
        ValueError: the entry is made of several files.
    """
    entry = get(entry) if isinstance(entry, str) else entry
    if not entry.has_file:
        raise ValueError(f'{entry.name} is made of several files ({", ".join(entry.parts)}): '
                         'fetch each of densedino.zoo.files(name)')
    if entry.hf_file:
        return _fetch_hf(entry, into_cache)
    if entry.gated and entry.hf_repo and _gated_through_hugging_face():
        return hub.fetch_hf(entry.hf_repo, HF_WEIGHTS_FILE, license=license_text(entry))
    return hub.fetch(entry.url, file_name=entry.file_name, sha256=entry.sha256,
                     license=license_text(entry), name=entry.name, progress=progress)


#: The weights file of a transformers repository (read by densedino's Hugging Face converters).
HF_WEIGHTS_FILE = 'model.safetensors'


def _gated_through_hugging_face() -> bool:
    """Whether a gated backbone comes from its Hugging Face repository: when no download URL from
    the licence e-mail is set (``DINOV3_WEIGHTS_URL``) but a Hugging Face token is (``HF_TOKEN``,
    or ``huggingface-cli login``), after the repository's terms were accepted on its page."""
    if os.environ.get(hub.DINOV3_GATE.env):
        return False
    if os.environ.get('HF_TOKEN'):
        return True
    try:
        from huggingface_hub import get_token
    except ImportError:
        return False
    return get_token() is not None


def _fetch_hf(entry: ZooEntry, into_cache: bool) -> str:
    """From densedino's cache if saved there, else from Hugging Face (its cache first)."""
    cached = hub.cache_path(entry.file_name)
    if osp.isfile(cached):
        hub.verify(cached, sha256=entry.sha256)
        return cached
    try:
        path = hub.fetch_hf(entry.hf_repo, entry.hf_file, license=license_text(entry))
    except hub.DownloadError as exc:
        raise hub.DownloadError(f'{exc}; or save {entry.url} as {cached}', url=exc.url,
                                path=cached) from exc
    if not into_cache:
        return path
    os.makedirs(osp.dirname(cached), exist_ok=True)
    staging = f'{cached}.{uuid.uuid4().hex[:8]}.copy'
    try:
        shutil.copyfile(path, staging)
        os.replace(staging, cached)
    finally:
        if osp.exists(staging):
            os.remove(staging)
    hub.verify(cached, sha256=entry.sha256)
    return cached
