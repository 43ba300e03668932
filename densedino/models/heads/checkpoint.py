"""Loading released head weights (e.g. DINOv2's ``*_ade20k_linear_head.pth``) into a model.

Layouts, told apart by their keys:

- mmseg (DINOv2's released segmentation and depth heads, mmseg training checkpoints):
  ``decode_head.*``;
- DINOv3's segmentation training (``model_final.pth``): ``segmentation_model.1.*`` (the head is
  the second module of its ``FeatureDecoder``);
- bare head state dicts, among them DINOv3's depth training files (``model_<iter>.pth``).

DINOv3's linear heads call the norm ``batchnorm_layer`` and the segmentation conv ``conv``;
they are renamed to ``bn`` and the head's own conv name (``conv_seg`` / ``conv_depth``).
A file that also holds weights of other model parts (``backbone.*``, ``auxiliary_head.*``...)
is refused: loading only its head would drop the rest in silence.
"""
import logging
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

from ..backbones.checkpoint import CheckpointError, describe_mismatch, read_checkpoint

logger = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]
HEAD_PREFIX = 'decode_head.'
DINOV3_SEG_PREFIX = 'segmentation_model.1.'
_DINOV3_NORM = 'batchnorm_layer.'
_CONV_NAMES = ('conv_seg', 'conv_depth')


def split_head(sd: StateDict) -> Tuple[StateDict, StateDict, str]:
    """Split a file's tensors into the head's (prefix removed) and the rest.

    Returns:
        ``(head, others, layout)`` with layout 'mmseg', 'dinov3_seg' or 'bare' (every key is
        taken for the head's).
    """
    for prefix, layout in ((HEAD_PREFIX, 'mmseg'), (DINOV3_SEG_PREFIX, 'dinov3_seg')):
        if any(k.startswith(prefix) for k in sd):
            head = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            return head, {k: v for k, v in sd.items() if not k.startswith(prefix)}, layout
    return dict(sd), {}, 'bare'


def is_dinov3_linear_head(head: StateDict, layout: str) -> bool:
    """DINOv3's ``LinearHead`` names: a ``batchnorm_layer`` or the FeatureDecoder prefix."""
    return layout == 'dinov3_seg' or any(k.startswith(_DINOV3_NORM) for k in head)


def from_dinov3_linear_head(head: StateDict, conv_name: str) -> StateDict:
    """DINOv3 ``LinearHead`` keys -> densedino's: ``batchnorm_layer.`` -> ``bn.``, ``conv.`` ->
    ``<conv_name>.`` (``conv_depth.`` stays); other keys are kept for the strict check."""
    out = {}
    for key, value in head.items():
        if key.startswith(_DINOV3_NORM):
            key = 'bn.' + key[len(_DINOV3_NORM):]
        elif key.startswith('conv.'):
            key = f'{conv_name}.' + key[len('conv.'):]
        out[key] = value
    return out


def _conv_name(head_module: nn.Module) -> str:
    return next((n for n in _CONV_NAMES if hasattr(head_module, n)), 'conv_seg')


def describe_parts(keys: Sequence[str]) -> str:
    """``'backbone.* (35 keys, e.g. backbone.cls_token), auxiliary_head.* (2 keys, ...)'``."""
    groups: Dict[str, list] = {}
    for key in keys:
        groups.setdefault(key.split('.', 1)[0] if '.' in key else key, []).append(key)
    return ', '.join(f'{name}{".*" if "." in found[0] else ""} ({len(found)} '
                     f'key{"s" if len(found) > 1 else ""}, e.g. {found[0]})'
                     for name, found in groups.items())


def load_head_checkpoint(model: nn.Module, path: str, *,
                         skip_prefixes: Sequence[str] = ()) -> StateDict:
    """Load the head weights of ``path`` into ``model.decode_head`` strictly.

    Args:
        model: A segmentor or depth estimator with a ``decode_head``.
        path: mmseg-style file (``state_dict`` with ``decode_head.`` keys, as DINOv2 releases
            its segmentation and depth heads), DINOv3 linear-head training file, or bare head
            state dict.
        skip_prefixes: Key prefixes of weights the caller loads by other means, e.g.
            ``('backbone.',)`` when the same file was also read as the backbone checkpoint.

    Returns:
        The head state dict that was loaded (without prefix, densedino names).

    Raises:
        CheckpointError: unreadable file; weights besides the head's (named, not loaded);
            keys/shapes that do not fit the head.
    """
    raw, _ = read_checkpoint(path)
    head, others, layout = split_head(raw)
    extra = [k for k in others if not k.startswith(tuple(skip_prefixes))]
    if extra:
        backbone_hint = ('pass the file as the backbone checkpoint too if its backbone weights '
                         'are the ones to use, ' if any(k.startswith('backbone.') for k in extra)
                         else '')
        raise CheckpointError(
            f'head checkpoint {path} holds weights besides the head that would be dropped: '
            f'{describe_parts(extra)}; give a head-only file, {backbone_hint}or load a '
            'whole-model checkpoint with init_model / tools/test.py')
    if is_dinov3_linear_head(head, layout):
        head = from_dinov3_linear_head(head, _conv_name(model.decode_head))
        layout = 'dinov3_linear'
    problems = describe_mismatch(head, model.decode_head.state_dict())
    if problems:
        raise CheckpointError(f'head checkpoint {path} does not fit the config\'s '
                              f'{type(model.decode_head).__name__} ({layout} layout): {problems}')
    model.decode_head.load_state_dict(head, strict=True)
    logger.info('loaded head %s (%s layout) into %s', path, layout,
                type(model.decode_head).__name__)
    return head
