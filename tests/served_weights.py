"""Released DINOv2 files with random weights, in the official layouts, served over local HTTP.

The zoo's files live under :data:`densedino.hub.OFFICIAL_BASE`; :func:`write_release` writes a
folder laid out like that server (``<root>/dinov2/dinov2_vits14/<file>``, the zoo URL after the
base) and :class:`LocalServer` serves it on 127.0.0.1, so that ``DENSEDINO_WEIGHTS_MIRROR``
pointed at it makes every download of the zoo come from here.

The layouts, written from densedino's own modules by a documented mapping and checked against
key lists that do not come from densedino:

- backbone ``dinov2_vits14_pretrain.pth``: the torch-hub state dict of DINOv2's
  ``DinoVisionTransformer`` (a flat dict; ``cls_token``, ``pos_embed``, ``mask_token``,
  ``patch_embed.proj.*``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,
  mlp.fc2,ls2.gamma}``, ``norm.*``). densedino's ViT keeps the torch-hub names
  (densedino/models/backbones/convert.py), so the mapping is the identity, checked against
  :func:`official_backbone_keys`;
- heads ``dinov2_vits14_<dataset>_<protocol>_head.pth``: mmseg checkpoints, ``{'meta': ...,
  'state_dict': {'decode_head.<name>': tensor}}``, where ``<name>`` is the head module's own
  name (densedino's heads keep DINOv2's: ``bn.*`` + ``conv_seg.*`` for the segmentation BNHead,
  ``conv_depth.*`` for the linear depth heads, mmseg's ``DPTHead`` names + ``conv_depth.head.*``
  for DPT), checked against :func:`official_head_keys`.

"Random" means a fixed seed, with the parts that a fresh init leaves degenerate given values
like trained ones (LayerScale near 1e-5 would make every block a no-op; BatchNorm statistics
of 0 / 1), and the segmentation heads' biases favouring the first classes, so that predictions
land on the fixture datasets' classes and the figures are not all zero.
"""
from __future__ import annotations

import functools
import os
import os.path as osp
import threading
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterable, List, Set

import torch
from torch import nn

from densedino.hub import OFFICIAL_BASE

__all__ = ['official_backbone_keys', 'official_head_keys', 'official_backbone',
           'official_head', 'write_release', 'url_path', 'LocalServer']

_BLOCK_KEYS = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
               'attn.proj.weight', 'attn.proj.bias', 'ls1.gamma', 'norm2.weight', 'norm2.bias',
               'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias', 'ls2.gamma')
#: Classes the segmentation heads favour (0..2 are in the fixture datasets' labels).
FAVOURED_CLASSES = 3


def official_backbone_keys(depth: int = 12) -> Set[str]:
    """The keys of ``dinov2_vit*14_pretrain.pth`` (torch hub, no registers): 175 for ViT-S."""
    return ({'cls_token', 'pos_embed', 'mask_token', 'patch_embed.proj.weight',
             'patch_embed.proj.bias', 'norm.weight', 'norm.bias'}
            | {f'blocks.{i}.{k}' for i in range(depth) for k in _BLOCK_KEYS})


def official_head_keys(kind: str) -> Set[str]:
    """The keys (without ``decode_head.``) of DINOv2's released heads: ``'seg'`` (mmseg BNHead),
    ``'linear'`` (linear / linear4 depth heads), ``'dpt'`` (mmseg ``DPTHead`` without its
    ``conv_seg``, plus DINOv2's ``HeadDepth`` as ``conv_depth.head.{0,2,4}``)."""
    if kind == 'seg':
        return {'conv_seg.weight', 'conv_seg.bias', 'bn.weight', 'bn.bias', 'bn.running_mean',
                'bn.running_var', 'bn.num_batches_tracked'}
    if kind == 'linear':
        return {'conv_depth.weight', 'conv_depth.bias'}
    if kind == 'dpt':
        from mmseg.models.decode_heads import DPTHead
        dim = 384
        mmseg = DPTHead(in_channels=(dim,) * 4, in_index=(0, 1, 2, 3),
                        input_transform='multiple_select', channels=256, embed_dims=dim,
                        post_process_channels=[dim // 8, dim // 4, dim // 2, dim],
                        readout_type='project', num_classes=1, norm_cfg=None)
        return ({k for k in mmseg.state_dict() if not k.startswith('conv_seg.')}
                | {f'conv_depth.head.{i}.{p}' for i in (0, 2, 4) for p in ('weight', 'bias')})
    raise ValueError(f'unknown head kind {kind!r}')


def head_kind(decode_head: nn.Module) -> str:
    if hasattr(decode_head, 'conv_seg'):
        return 'seg'
    return 'dpt' if isinstance(getattr(decode_head, 'conv_depth', None), nn.Module) and \
        hasattr(decode_head.conv_depth, 'head') else 'linear'


def official_backbone(backbone: nn.Module) -> Dict[str, torch.Tensor]:
    """The torch-hub file of ``backbone`` (densedino's ViT, ``DinoBackbone.model``)."""
    sd = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    expected = official_backbone_keys(len(backbone.blocks))
    assert set(sd) == expected, (sorted(set(sd) - expected), sorted(expected - set(sd)))
    return sd


def official_head(decode_head: nn.Module) -> dict:
    """The mmseg checkpoint DINOv2 released for ``decode_head``."""
    sd = {k: v.detach().clone() for k, v in decode_head.state_dict().items()}
    expected = official_head_keys(head_kind(decode_head))
    assert set(sd) == expected, (sorted(set(sd) - expected), sorted(expected - set(sd)))
    return {'meta': {'mmseg_version': '0.27.0'},
            'state_dict': {'decode_head.' + k: v for k, v in sd.items()}}


@torch.no_grad()
def _randomize_backbone(backbone: nn.Module, gen: torch.Generator) -> None:
    for name, p in backbone.named_parameters():
        if name.endswith('.gamma'):  # LayerScale: trained values are ~0.05-1, the init 1e-5
            p.copy_(torch.rand(p.shape, generator=gen) * 0.4 + 0.05)
        elif name.startswith('norm') or '.norm' in name:
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)


@torch.no_grad()
def _randomize_head(head: nn.Module, gen: torch.Generator) -> None:
    for name, t in head.state_dict().items():
        if name.endswith('num_batches_tracked'):
            t.fill_(40000)
        elif name.endswith('running_var'):
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        elif name.endswith('running_mean'):
            t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
        elif name.startswith('bn.'):
            t.add_(torch.randn(t.shape, generator=gen) * 0.1)
        elif t.is_floating_point():
            scale = float(t.std()) if t.numel() > 1 else 0.0
            t.add_(torch.randn(t.shape, generator=gen) * max(scale, 0.01) * 0.5)
    if hasattr(head, 'conv_seg'):
        head.conv_seg.bias[FAVOURED_CLASSES:] -= 5.0


def url_path(entry) -> str:
    """The path of a zoo entry's file on the official server (``dinov2/<arch>/<file>``)."""
    assert entry.url.startswith(OFFICIAL_BASE + '/'), entry.url
    return entry.url[len(OFFICIAL_BASE) + 1:]


def _head_model(name: str):
    """The model of the zoo model ``name``'s config, with random weights and no download."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from densedino import zoo
    from densedino.registry import MODELS
    entry = zoo.get(name)
    cfg = Config.fromfile(zoo.config_path(entry))
    cfg.merge_from_dict(dict(entry.cfg_options))
    cfg.model.backbone.update(checkpoint=None, pretrained=False)
    with DefaultScope.overwrite_default_scope('densedino'):
        return MODELS.build(cfg.model)


def write_release(root: str, names: Iterable[str], seed: int = 0) -> Dict[str, str]:
    """Write the files of the zoo models ``names`` (backbone and head each) under ``root`` at
    their official paths; returns ``{zoo file entry name: path}``. Every head of one backbone
    goes with the same backbone file, as on the server."""
    from densedino import zoo
    written: Dict[str, str] = {}
    for name in names:
        backbone_entry, head_entry = zoo.files(name)
        torch.manual_seed(seed)  # the same backbone for every entry (one file on the server)
        model = _head_model(name)
        if backbone_entry.name not in written:
            vit = model.backbone.model
            _randomize_backbone(vit, torch.Generator().manual_seed(seed))
            written[backbone_entry.name] = _save(root, backbone_entry, official_backbone(vit))
        gen = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
        _randomize_head(model.decode_head, gen)
        written[head_entry.name] = _save(root, head_entry, official_head(model.decode_head))
    return written


def _save(root: str, entry, obj) -> str:
    path = osp.join(root, *url_path(entry).split('/'))
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(obj, path)
    return path


class _Handler(SimpleHTTPRequestHandler):
    """Static files from the server's folder; each request path is recorded, nothing logged."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


class LocalServer:
    """``root`` over HTTP on 127.0.0.1 (a free port), from a daemon thread; ``url`` is the
    base to give ``DENSEDINO_WEIGHTS_MIRROR``, ``requests`` the paths asked for."""

    def __init__(self, root: str):
        self.root = root
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0),
                                         functools.partial(_Handler, directory=root))
        self.httpd.requests = []
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def requests(self) -> List[str]:
        return self.httpd.requests

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
