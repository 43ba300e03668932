"""Depth-Anything-V2 checkpoints -> a ``DinoDepthEstimator`` with a ``DPTDepthHead``.

Two layouts are read (files are never executed: ``torch.load(weights_only=True)`` / safetensors):

* the official release (``depth_anything_v2_vits.pth``,
  ``depth_anything_v2_metric_hypersim_vits.pth`` ...): ``pretrained.*`` holds the DINOv2
  backbone under the official names, ``depth_head.*`` the DPT decoder (``projects``,
  ``resize_layers``, ``scratch.layerN_rn``,
  ``scratch.refinenetN.{resConfUnit1,resConfUnit2,out_conv}``, ``scratch.output_conv1``,
  ``scratch.output_conv2.{0,2}``);
* Hugging Face ``DepthAnythingForDepthEstimation`` (``depth-anything/Depth-Anything-V2-Small-hf``
  ...), a directory with ``config.json`` + ``model.safetensors`` or the weights file alone:
  ``backbone.*`` (transformers' Dinov2 names), ``neck.reassemble_stage.*``, ``neck.convs.*``,
  ``neck.fusion_stage.layers.*``, ``head.conv{1,2,3}``.

The backbone part goes through :mod:`densedino.models.backbones.convert` (the same converters
``create_backbone`` uses); the decoder keys are renamed to ``DPTDepthHead``'s (mmseg / DINOv2
names). The coarsest fusion block's first residual unit (``refinenet4.resConfUnit1``,
``fusion_stage.layers.0.residual_layer1``) exists in both files but is never used by either
implementation, so it is dropped.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Union

from torch import nn

from .backbones.checkpoint import (
    CheckpointError,
    check_hf_config,
    describe_mismatch,
    read_checkpoint,
)
from .backbones.convert import StateDict, fit_to_model, from_hf_dinov2, to_densedino

logger = logging.getLogger(__name__)

BACKBONE_PREFIX = 'backbone.model.'
HEAD_PREFIX = 'decode_head.'
FORMATS = ('dav2_official', 'dav2_hf')
_UNUSED_UNIT = 'fusion_blocks.0.res_conv_unit1.'

# typing's spelling: the alias is evaluated at import time, also on Python 3.9
Rule = tuple[str, Union[str, Callable[[re.Match], str]]]  # noqa: UP007


def _fusion(n: str) -> str:
    """refinenetN (N = 1 finest .. 4 coarsest) -> fusion block index (0 = coarsest)."""
    return f'fusion_blocks.{4 - int(n)}'


_OFFICIAL_HEAD_RULES: list[Rule] = [
    (r'^projects\.(\d+)\.', r'reassemble_blocks.projects.\1.conv.'),
    (r'^resize_layers\.(\d+)\.', r'reassemble_blocks.resize_layers.\1.'),
    (r'^readout_projects\.(\d+)\.0\.', r'reassemble_blocks.readout_projects.\1.0.'),
    (r'^scratch\.layer(\d)_rn\.', lambda m: f'convs.{int(m[1]) - 1}.conv.'),
    (r'^scratch\.refinenet(\d)\.out_conv\.', lambda m: f'{_fusion(m[1])}.project.conv.'),
    (r'^scratch\.refinenet(\d)\.resConfUnit(\d)\.conv(\d)\.',
     lambda m: f'{_fusion(m[1])}.res_conv_unit{m[2]}.conv{m[3]}.conv.'),
    (r'^scratch\.output_conv1\.', 'conv_depth.head.0.'),
    (r'^scratch\.output_conv2\.0\.', 'conv_depth.head.2.'),
    (r'^scratch\.output_conv2\.2\.', 'conv_depth.head.4.'),
]
_HF_HEAD_RULES: list[Rule] = [
    (r'^neck\.reassemble_stage\.layers\.(\d+)\.projection\.',
     r'reassemble_blocks.projects.\1.conv.'),
    (r'^neck\.reassemble_stage\.layers\.(\d+)\.resize\.', r'reassemble_blocks.resize_layers.\1.'),
    (r'^neck\.convs\.(\d+)\.', r'convs.\1.conv.'),
    (r'^neck\.fusion_stage\.layers\.(\d+)\.projection\.', r'fusion_blocks.\1.project.conv.'),
    (r'^neck\.fusion_stage\.layers\.(\d+)\.residual_layer(\d)\.convolution(\d)\.',
     r'fusion_blocks.\1.res_conv_unit\2.conv\3.conv.'),
    (r'^head\.conv1\.', 'conv_depth.head.0.'),
    (r'^head\.conv2\.', 'conv_depth.head.2.'),
    (r'^head\.conv3\.', 'conv_depth.head.4.'),
]


def detect_depth_anything_format(sd: StateDict) -> str | None:
    """'dav2_official' (``pretrained.*`` + ``depth_head.*``), 'dav2_hf' (``neck.*`` + ``head.*``)
    or None."""
    if any(k.startswith('depth_head.') for k in sd) and any(k.startswith('pretrained.')
                                                            for k in sd):
        return 'dav2_official'
    if any(k.startswith('neck.fusion_stage.') for k in sd) and any(k.startswith('backbone.')
                                                                   for k in sd):
        return 'dav2_hf'
    return None


def _rename_head(sd: StateDict, prefix: str, rules: list[Rule]) -> StateDict:
    """Keys under ``prefix`` renamed by the first matching rule; unmatched keys keep their name
    (the strict load then reports them as unexpected)."""
    out = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        for pattern, repl in rules:
            new, hits = re.subn(pattern, repl, name)
            if hits:
                name = new
                break
        if not name.startswith(_UNUSED_UNIT):
            out[name] = value
    return out


def convert_depth_anything_v2(sd: StateDict, fmt: str | None = None) -> StateDict:
    """Map a Depth-Anything-V2 state dict to ``DinoDepthEstimator`` keys.

    Args:
        sd: Official (``pretrained.*``, ``depth_head.*``) or Hugging Face
            (``backbone.*``, ``neck.*``, ``head.*``) weights.
        fmt: One of ``FORMATS``; detected from the keys when None.

    Returns:
        ``backbone.model.*`` (densedino backbone names) and ``decode_head.*`` (``DPTDepthHead``
        names) tensors. The backbone's training-only ``mask_token`` is kept when present.

    Raises:
        ValueError: keys of neither layout.
    """
    fmt = fmt or detect_depth_anything_format(sd)
    if fmt == 'dav2_official':
        backbone = {k[len('pretrained.'):]: v for k, v in sd.items()
                    if k.startswith('pretrained.')}
        backbone, _ = to_densedino(backbone, 'official')
        head = _rename_head(sd, 'depth_head.', _OFFICIAL_HEAD_RULES)
    elif fmt == 'dav2_hf':
        backbone = from_hf_dinov2({k: v for k, v in sd.items() if k.startswith('backbone.')})
        head = _rename_head({k: v for k, v in sd.items() if not k.startswith('backbone.')}, '',
                            _HF_HEAD_RULES)
    else:
        raise ValueError(f'not a Depth-Anything-V2 layout (first keys: {", ".join(list(sd)[:4])})')
    return {**{BACKBONE_PREFIX + k: v for k, v in backbone.items()},
            **{HEAD_PREFIX + k: v for k, v in head.items()}}


def _fit_backbone(sd: StateDict, model: nn.Module) -> StateDict:
    """Let the backbone's own conventions fill what files omit (``fit_to_model``)."""
    vit = model.backbone.model
    part = {k[len(BACKBONE_PREFIX):]: v for k, v in sd.items() if k.startswith(BACKBONE_PREFIX)}
    part = fit_to_model(part, vit.state_dict())
    rest = {k: v for k, v in sd.items() if not k.startswith(BACKBONE_PREFIX)}
    return {**{BACKBONE_PREFIX + k: v for k, v in part.items()}, **rest}


def check_depth_anything_config(config: dict | None, model: nn.Module) -> None:
    """Compare a Hugging Face ``config.json`` with the model where the weights cannot tell.

    Raises:
        CheckpointError: depth type, ``max_depth``, tapped blocks, feature norm or backbone
            options that differ (all named).
    """
    if not config:
        return
    head, backbone = model.decode_head, model.backbone
    bad = []
    kind = config.get('depth_estimation_type', 'relative')
    act = {'relative': 'relu', 'metric': 'sigmoid_times_max'}.get(kind)
    if act is not None and head.output_act != act:
        bad.append(f'depth_estimation_type={kind!r} (head output_act: {head.output_act!r})')
    scale = float(config.get('max_depth') or 1)
    if kind == 'metric' and scale != head.max_depth:
        bad.append(f'max_depth={scale} (head: {head.max_depth})')
    if kind == 'relative' and scale != 1:  # transformers scales relative outputs by it too
        bad.append(f'max_depth={scale} on a relative model (only 1 is supported)')
    bb_cfg = config.get('backbone_config') or {}
    stages = bb_cfg.get('out_indices')
    if stages is not None and [s - 1 for s in stages] != list(backbone.out_indices):
        bad.append(f'backbone out_indices={stages} = blocks {[s - 1 for s in stages]} '
                   f'(model: {list(backbone.out_indices)})')
    if bb_cfg.get('apply_layernorm', True) != backbone.norm:
        bad.append(f"apply_layernorm={bb_cfg.get('apply_layernorm', True)} "
                   f'(backbone norm: {backbone.norm})')
    if bad:
        raise CheckpointError(f'Hugging Face config does not match the model: {", ".join(bad)}')
    check_hf_config(bb_cfg, backbone.model)


def load_depth_anything_v2(model: nn.Module, path: str) -> str:
    """Load a Depth-Anything-V2 checkpoint (official ``.pth`` or Hugging Face) strictly.

    Args:
        model: A ``DinoDepthEstimator`` whose backbone is a ``DinoBackbone`` ViT and whose head
            is a ``DPTDepthHead`` of matching widths.
        path: Official file, Hugging Face directory (``config.json`` + ``model.safetensors``) or
            a Hugging Face weights file.

    Returns:
        The format read ('dav2_official' or 'dav2_hf').

    Raises:
        CheckpointError: unreadable file, another layout, keys/shapes that do not fit the model
            (named), or a Hugging Face config that contradicts the model.
    """
    raw, config = read_checkpoint(path)
    fmt = detect_depth_anything_format(raw)
    if fmt is None:
        raise CheckpointError(f'checkpoint {path} is not a Depth-Anything-V2 file (expected '
                              f'pretrained.* + depth_head.* or backbone.* + neck.* keys; first '
                              f'keys: {", ".join(list(raw)[:4])})')
    sd = _fit_backbone(convert_depth_anything_v2(raw, fmt), model)
    problems = describe_mismatch(sd, model.state_dict())
    if problems:
        raise CheckpointError(f'checkpoint {path} ({fmt} format) does not fit '
                              f'{type(model).__name__} with {type(model.decode_head).__name__}: '
                              f'{problems}')
    if fmt == 'dav2_hf':
        check_depth_anything_config(config, model)
    model.load_state_dict(sd, strict=True)
    logger.info('loaded %s (%s format) into %s', path, fmt, type(model).__name__)
    return fmt

