"""Whole-model checkpoints (what training writes): read safely, check that they fit, say what
they are when they don't.

Used wherever a user hands densedino such a file: ``load_from``, ``--resume``, ``tools/test.py``
(through :class:`~.runner.DensedinoRunner`) and :func:`densedino.init_model`. A file whose keys or
shapes differ from the model is refused with one line: the file, the first missing and
unexpected keys, the shape mismatches and what the file looks like (a pretraining checkpoint, a
depth model, a segmentation head with another number of classes, the config it was trained
with). Deliberate partial loads (e.g. a head trained on another dataset, or a backbone
continued from a segmentation run) opt out with the config key ``load_strict = False``, which
loads what fits and logs the rest.
"""
from __future__ import annotations

import re
from typing import Dict, List

import torch
from torch import Tensor, nn

from ..models.backbones.checkpoint import (CheckpointError, describe_mismatch, guess_presets,
                                          read_file, vit_signature)

StateDict = Dict[str, Tensor]
_TIMESTAMP = re.compile(r'_\d{8}_\d{6}$')


def read_model_checkpoint(path: str) -> dict:
    """An mmengine checkpoint (``{'state_dict': ..., 'meta': ...}``) or a bare state dict, read
    with ``torch.load(weights_only=True)``: one-line :class:`CheckpointError` otherwise."""
    obj = read_file(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(obj).__name__}, not a dict')
    return obj


def model_state_dict(ckpt: dict, path: str) -> StateDict:
    """The model weights of an mmengine checkpoint or of a bare state dict, ``module.`` (DDP)
    prefixes removed."""
    sd = ckpt.get('state_dict', ckpt)
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise CheckpointError(f'checkpoint {path} holds no state dict of tensors '
                              f'(keys: {sorted(map(str, ckpt))[:5]})')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}


def describe_checkpoint(ckpt: dict, sd: StateDict) -> str:
    """What a whole-model checkpoint looks like, from its keys and meta data ('' if unknown)."""
    parts: List[str] = []
    if any(k.startswith(('student.', 'teacher.', 'ema.')) for k in sd):
        parts.append('a pretraining checkpoint (export its teacher with tools/export_teacher.py '
                     'and use it as model.backbone.checkpoint)')
    elif vit_signature(sd) is not None:
        presets = ' / '.join(guess_presets(sd)) or 'a ViT'
        parts.append(f'a backbone alone ({presets}): give it as model.backbone.checkpoint')
    else:
        head = _head_kind(sd)
        if head:
            parts.append(head)
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    name = meta.get('experiment_name')
    if isinstance(name, str) and name:
        parts.append(f'trained with config {_TIMESTAMP.sub("", name)}')
    if isinstance(meta.get('iter'), int):
        parts.append(f'saved at iteration {meta["iter"]}')
    return ', '.join(parts)


def _head_kind(sd: StateDict) -> str:
    seg = sd.get('decode_head.conv_seg.weight')
    if seg is not None:
        return f'a segmentation model with {seg.shape[0]} classes'
    if any(k.startswith('decode_head.') for k in sd) and \
            any(w in k for k in sd for w in ('depth', 'bins')):
        return 'a depth model'
    return ''


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DDP/FSDP wrappers and test-time-augmentation models."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def fit_problems(model: nn.Module, sd: StateDict) -> str:
    """'' when ``sd`` fits ``model`` exactly, else one line on the first differences."""
    return describe_mismatch(sd, model.state_dict())


def load_model_checkpoint(model: nn.Module, ckpt: dict, path: str, *, strict: bool = True,
                          what: str = 'the model') -> List[str]:
    """Load ``ckpt``'s weights into ``model``; returns the problems tolerated (non-strict).

    Raises:
        CheckpointError: with ``strict``, keys or shapes that do not fit (one line).
    """
    sd = model_state_dict(ckpt, path)
    problems = fit_problems(model, sd)
    if problems and strict:
        looks = describe_checkpoint(ckpt, sd)
        looks = f'; the file looks like {looks}' if looks else ''
        raise CheckpointError(f'checkpoint {path} does not fit {what}: {problems}{looks} '
                              '(set load_strict=False to load only what fits)')
    if problems:
        expected = model.state_dict()
        sd = {k: v for k, v in sd.items() if k in expected and expected[k].shape == v.shape}
    model.load_state_dict(sd, strict=not problems)
    return [problems] if problems else []
