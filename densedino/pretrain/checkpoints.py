"""Pretraining checkpoints in and out: teacher networks read from densedino's or the official
DINO / DINOv2 training checkpoints (for distillation and the Gram teacher), and the teacher
backbone exported as an ordinary backbone file.

Files are read without running pickled code; every refusal is one line naming the file. The
export is written atomically (a killed export leaves no half-written file).
"""
import os
from typing import Any, Dict, Optional, Union

import torch
from torch import Tensor, nn

from ..engine.files import write_atomic
from ..models.backbones.checkpoint import CheckpointError, describe_mismatch, load_into, read_file
from ..models.backbones.convert import fit_to_model, from_official_training


def _teacher_backbone_state(source: Union[nn.Module, str, os.PathLike, dict]) -> Dict[str, Tensor]:
    if isinstance(source, nn.Module) and getattr(source, 'sharded', False):
        source = source.full_state_dict()  # FSDP: collective, the full dict on rank 0 only
        if not source:
            return {}
    if isinstance(source, nn.Module):
        module = getattr(source, 'module', source)  # unwrap DDP
        state = module.ema['backbone'].state_dict()
        if any(type(v).__name__ == 'DTensor' for v in state.values()):
            raise ValueError('the model is sharded (FSDP): export from its SSLDistributedWrapper '
                             '(on every rank) or from a checkpoint, not from the inner model')
        return {k: v.detach().cpu().clone() for k, v in state.items()}
    state = _ssl_state(source)  # distilled: the student's EMA
    out = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not out:
        raise KeyError('no teacher.backbone.* keys in the checkpoint (is it a DinoSSLModel checkpoint?)')
    return out


def _ssl_state(source: Union[str, os.PathLike, dict]) -> Dict[str, Tensor]:
    """The teacher networks' weights (``backbone.*``, ``dino_head.*``, ``ibot_head.*``) of a
    densedino pretraining checkpoint (the student's EMA when distilled) or an official DINO /
    DINOv2 training checkpoint (DINOv1 names its head ``head.*``; DDP's ``module.`` prefix is
    dropped), given as a path (read without running pickled code) or a loaded dict; {} for
    other files."""
    raw = source if isinstance(source, dict) else read_file(os.fspath(source))
    if not isinstance(raw, dict):
        return {}
    if isinstance(raw.get('teacher'), dict):  # official DINO / DINOv2 training checkpoint
        state = {k[len('module.'):] if k.startswith('module.') else k: v
                 for k, v in raw['teacher'].items()}
        return {('dino_head.' + k[len('head.'):]) if k.startswith('head.') else k: v
                for k, v in state.items()}
    state = raw.get('state_dict', raw.get('model', raw))
    for prefix in ('student_ema.', 'teacher.'):
        out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if out:
            return out
    return {}


def load_backbone_weights(backbone: nn.Module, path: str, name: str,
                          state: Optional[Dict[str, Tensor]] = None) -> None:
    """Load a backbone from a pretraining checkpoint's teacher, or any file ``create_backbone``
    reads (exported teacher, official hub file, Hugging Face directory).

    Args:
        backbone: the backbone to fill (strictly).
        path: the file (or Hugging Face directory).
        name: what the backbone is, for error messages.
        state: :func:`_ssl_state` of ``path`` when the caller has read it already.
    """
    if state is None:
        state = _ssl_state(path) if os.path.isfile(os.fspath(path)) else {}
    if not any(k.startswith('backbone.') for k in state):
        load_into(backbone, os.fspath(path), name=name)
        return
    sd = fit_to_model(from_official_training(state), backbone.state_dict())
    problems = describe_mismatch(sd, backbone.state_dict())
    if problems:
        raise CheckpointError(f'checkpoint {path} does not fit the {name}: {problems}')
    backbone.load_state_dict(sd)


def load_ssl_networks(nets: nn.ModuleDict, path: str) -> None:
    """Load backbone and heads of a pretraining teacher into ``nets`` (strict, one-line errors).

    Raises:
        CheckpointError: unreadable file, no heads in it, a separate iBOT head in the file that
            ``nets`` would not use, or shapes that do not fit.
    """
    state = _ssl_state(path)
    if not any(k.startswith('dino_head.') for k in state):
        raise CheckpointError(f'checkpoint {path} holds no dino_head.* weights: distillation '
                              'needs the teacher\'s heads (a pretraining checkpoint, not an '
                              'exported backbone)')
    if 'ibot_head' not in nets and any(k.startswith('ibot_head.') for k in state):
        raise CheckpointError(f'checkpoint {path} has a separate ibot_head but the teacher shares '
                              'its DINO head: set distill_teacher.ibot_head to its options')
    load_backbone_weights(nets['backbone'], path, 'distillation teacher backbone', state)
    for name, head in nets.items():
        if name == 'backbone':
            continue
        prefix = f'{name}.' if any(k.startswith(f'{name}.') for k in state) else 'dino_head.'
        sd = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            head.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise CheckpointError(f'checkpoint {path}: {prefix}* does not fit the teacher\'s '
                                  f'{name}: {" ".join(line.strip() for line in first[1:3])}') from None


def export_teacher_backbone(source: Union[nn.Module, str, os.PathLike, dict],
                            out_path: Union[str, os.PathLike]) -> Dict[str, Tensor]:
    """Save the teacher backbone's state dict in official keys, loadable by ``create_backbone``.

    Args:
        source: a :class:`DinoSSLModel` (or its wrapper; a sharded one must be passed on
            every rank, and rank 0 writes), an mmengine checkpoint path, or a loaded checkpoint.
        out_path: destination ``.pth``.

    Returns:
        The saved state dict.
    """
    state = _teacher_backbone_state(source)
    if not state:  # a sharded model's non-main ranks: rank 0 writes the file
        return state
    out_dir = os.path.dirname(os.fspath(out_path))
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    write_atomic(os.fspath(out_path), lambda tmp: torch.save(state, tmp))
    return state


def drop_teacher_state(module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                        local_metadata: Any) -> None:
    """State-dict hook of a distilling model: the frozen teacher comes from its own file, so
    checkpoints leave it out."""
    for key in [k for k in state_dict if k.startswith(prefix + 'teacher.')]:
        del state_dict[key]


def fill_teacher_state(module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                        *args: Any) -> None:
    """Loading a distillation checkpoint (no ``teacher.*``): keep the loaded frozen teacher."""
    for key, value in module.teacher.state_dict().items():
        state_dict.setdefault(f'{prefix}teacher.{key}', value)
