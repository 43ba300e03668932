"""One row of the zoo: :class:`ZooEntry`, and the constants the rows share.

A row is data only (a frozen dataclass), so the table can be printed, checked and rendered into
docs/zoo.md without running anything; fetching and loading live elsewhere (:mod:`.download`,
``create_backbone``, ``init_model``).
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from ..hub import DINOV3_GATE, name_hash_prefix

__all__ = ['ZooEntry', 'KINDS', 'TASKS', 'LOADERS', 'HF_BASE', 'DINOV3_LICENSE_PAGE',
           'CONFIGS_ROOT', 'APACHE', 'CC_BY_NC', 'DINOV3_LICENSE', 'license_text']

#: What a row can be: a backbone file, a head file, or a complete model (config + weights).
KINDS = ('backbone', 'head', 'model')
#: What heads and complete models do.
TASKS = ('seg', 'depth')
#: How a complete model's files go into the model its config builds: a backbone file plus a
#: head file (``load_head_checkpoint``), or one Depth-Anything-V2 file holding both.
LOADERS = ('backbone+head', 'depth_anything_v2')
HF_BASE = 'https://huggingface.co'
#: Where the DINOv3 files are requested: the download links come by e-mail once the DINOv3
#: License is accepted there.
DINOV3_LICENSE_PAGE = DINOV3_GATE.request_url
#: The configs shipped with densedino (``configs/`` of the checkout; entries name them
#: relative to the repository root, e.g. ``configs/seg/ade20k_linear.py``).
CONFIGS_ROOT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                        'configs')
APACHE = 'Apache-2.0'
CC_BY_NC = 'CC-BY-NC-4.0'
DINOV3_LICENSE = 'DINOv3 License'
_LICENSE_NOTES = {CC_BY_NC: 'non-commercial use only',
                  DINOV3_LICENSE: f'Meta\'s own licence, accepted at {DINOV3_LICENSE_PAGE}'}


@dataclass(frozen=True)
class ZooEntry:
    """One released artifact: a file (backbone, head) or a complete model.

    Attributes:
        name: The zoo name. Backbones pretrained on their family's default data carry the
            torch-hub entry name, which is also the densedino preset (``create_backbone``);
            complete models say what they do (``dinov2_vits14_ade20k_linear``).
        family: ``dinov1``, ``dinov2``, ``dinov2_reg``, ``dinov3``, ``dinov3_convnext`` or
            ``depth_anything_v2``.
        kind: ``'backbone'``, ``'head'`` or ``'model'`` (:data:`KINDS`).
        arch: The densedino backbone preset the weights load into.
        file_name: The official file name; ``None`` for a complete model made of other entries'
            files (``parts``), or where unknown (then ``file_pattern`` says what it looks like).
        url: The official download URL (for gated files, the path under the base URL that the
            licence e-mail gives); ``None`` where ``file_name`` is.
        license: The licence of the weights.
        gated: Whether the file is only handed out after accepting a licence.
        title: A short human description, e.g. ``'DINOv2 ViT-S/14'``.
        file_pattern: What the file name looks like where ``file_name`` is unknown.
        size: The file's size in bytes, where known.
        sha256: The file's full sha256, where known (the download is checked against it).
        hf_repo: A Hugging Face repository holding the same weights (for backbones, the
            transformers copy, loadable as ``checkpoint=<its folder>``; for Depth-Anything-V2,
            where ``hf_file`` is downloaded from).
        hf_file: The file in ``hf_repo`` that is this entry's file (downloaded with
            ``densedino.hub.fetch_hf``), or ``None`` when the file comes from ``url``.
        task: ``'seg'`` or ``'depth'`` for heads and complete models.
        figure: The published figure the config reproduces with these weights, with its source.
        config: The densedino config the weights belong to (relative to the repository root).
        cfg_options: Overrides applied to ``config`` first, as ``--cfg-options`` takes them
            (e.g. ``(('model.backbone.arch', 'dinov2_vitb14'),)``): sizes without a config of
            their own reuse the ViT-S config, the heads taking their widths from the backbone.
        parts: For a complete model without a file of its own: the backbone and head entries.
        loader: For a complete model: one of :data:`LOADERS`.
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
    size: Optional[int] = None
    sha256: Optional[str] = None
    hf_repo: Optional[str] = None
    hf_file: Optional[str] = None
    task: Optional[str] = None
    figure: Optional[str] = None
    config: Optional[str] = None
    cfg_options: Tuple[Tuple[str, Any], ...] = ()
    parts: Tuple[str, ...] = ()
    loader: Optional[str] = None

    @property
    def hash_prefix(self) -> Optional[str]:
        """The sha256 prefix the file name carries (DINOv3's ``-<8 hex digits>``), if any."""
        return name_hash_prefix(self.file_name) if self.file_name else None

    @property
    def publisher(self) -> str:
        """Who released the weights (for messages)."""
        return 'the Depth-Anything-V2 authors' if self.family == 'depth_anything_v2' else 'Meta'

    @property
    def has_file(self) -> bool:
        """Whether the entry is one downloadable file (complete DINOv2 models are two)."""
        return self.file_name is not None and self.url is not None


def license_text(entry: ZooEntry) -> str:
    """The licence as the first download prints it: the name, and what it implies where that
    is not the usual open-source permission (non-commercial, Meta's own terms)."""
    note = _LICENSE_NOTES.get(entry.license)
    return f'{entry.license} ({note})' if note else entry.license
