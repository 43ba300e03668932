"""Loading released head weights (e.g. DINOv2's ``*_ade20k_linear_head.pth``) into a model."""
from typing import Dict

import torch
from torch import nn

from ..backbones.checkpoint import CheckpointError, describe_mismatch, read_checkpoint

HEAD_PREFIX = 'decode_head.'


def load_head_checkpoint(model: nn.Module, path: str) -> Dict[str, torch.Tensor]:
    """Load the ``decode_head.*`` weights of ``path`` into ``model.decode_head`` strictly.

    Accepts mmseg-style files (``state_dict`` with ``decode_head.`` keys, as DINOv2 releases its
    segmentation and depth heads) and bare head state dicts.

    Returns:
        The head state dict that was loaded (without prefix).

    Raises:
        CheckpointError: unreadable file, no head keys, or keys/shapes that do not fit.
    """
    raw, _ = read_checkpoint(path)
    if any(k.startswith(HEAD_PREFIX) for k in raw):
        sd = {k[len(HEAD_PREFIX):]: v for k, v in raw.items() if k.startswith(HEAD_PREFIX)}
    else:
        sd = raw
    expected = model.decode_head.state_dict()
    problems = describe_mismatch(sd, expected)
    if problems:
        raise CheckpointError(f'head checkpoint {path} does not fit the config\'s '
                              f'{type(model.decode_head).__name__}: {problems}')
    model.decode_head.load_state_dict(sd, strict=True)
    return sd
