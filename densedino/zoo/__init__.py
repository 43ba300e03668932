"""The released DINO weights and the models built from them: one table of what each artifact
is, where it comes from, under which licence, which config it belongs to and which published
figure it reproduces.

Three kinds of rows (:class:`ZooEntry`, in :data:`ZOO`): backbone files (DINOv1, DINOv2, DINOv2
with registers, DINOv3), head files (DINOv2's segmentation and depth heads), and complete models
(a config + a backbone file + a head file, or one Depth-Anything-V2 file) that
``densedino.init_model(name)`` builds; :func:`list_models` names those. Every row is data;
downloading and verifying files is :mod:`densedino.hub`'s (:func:`fetch` goes through it).
Errors about a missing checkpoint look files up here (:func:`how_to_get`).

The models package imports this package, so it imports nothing of densedino but the hub.
docs/zoo.md lists every entry (:func:`render_markdown` writes that list).
"""
from .download import fetch
from .entry import (APACHE, CC_BY_NC, CONFIGS_ROOT, DINOV3_LICENSE, DINOV3_LICENSE_PAGE,
                    HF_BASE, KINDS, LOADERS, TASKS, ZooEntry, license_text)
from .render import config_text, render_markdown
from .table import (ZOO, UnknownZooEntryError, backbone_entry, config_path, entries, files,
                    find_file, get, how_to_get, list_models, model_entry, suggest)

__all__ = ['ZooEntry', 'ZOO', 'UnknownZooEntryError', 'get', 'find_file', 'entries',
           'how_to_get', 'list_models', 'model_entry', 'suggest', 'backbone_entry', 'files', 'config_path', 'fetch',
           'render_markdown', 'config_text', 'license_text', 'DINOV3_LICENSE_PAGE', 'KINDS',
           'TASKS', 'LOADERS', 'HF_BASE', 'CONFIGS_ROOT', 'APACHE', 'CC_BY_NC',
           'DINOV3_LICENSE']
