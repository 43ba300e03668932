"""Reading backbone checkpoints from disk and loading them strictly, with errors that say why.

Accepted: official torch-hub ``.pth`` files, official full training checkpoints (the teacher is
taken), Hugging Face model directories (``config.json`` + ``model.safetensors`` /
``pytorch_model.bin``, sharded or not) or single files with HF keys, and timm state dicts.
Files are read with ``torch.load(weights_only=True)``: no code in them runs.
"""
import json
import logging
import os
import pickle
import re
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ...zoo import how_to_get
from .convert import StateDict, fit_to_model, to_densedino

logger = logging.getLogger(__name__)

_WRAPPER_KEYS = ('state_dict', 'model', 'module')


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message says which."""


def read_checkpoint(path: str) -> Tuple[StateDict, Optional[dict]]:
    """Read a state dict (and the HF ``config.json`` if there is one) from ``path``."""
    if not os.path.exists(path):
        raise missing_checkpoint(path)
    if os.path.isdir(path):
        return _read_hf_dir(path), _read_json(os.path.join(path, 'config.json'))
    return _unwrap(read_file(path), path), None


def missing_checkpoint(path: str) -> CheckpointError:
    """``checkpoint PATH does not exist``; for a released file (:mod:`densedino.zoo`), also what
    it is, where it comes from and the command that fetches it."""
    advice = how_to_get(path)
    return CheckpointError(f'checkpoint {path} does not exist' + (f'; {advice}' if advice else ''))


def read_file(path: str):
    """``torch.load(weights_only=True)`` / safetensors, with one-line errors naming the file.

    A file whose pickle names code or objects other than tensors and plain containers is refused
    as such (it is not loaded, whatever it is); a truncated or damaged file is reported as one.
    """
    if not os.path.isfile(path):
        raise missing_checkpoint(path)
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            return load_file(path)
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's weights-only unpickler names a refused global, or says what it "can only" build
        found = re.search(r'GLOBAL (\S+)|(Can only [^\n]*)', str(e))
        if found is None:
            raise _unreadable(path, e) from None
        raise CheckpointError(
            f'checkpoint {path} contains code or objects that are not allowed in a weights file '
            f'({found.group(1) or found.group(2)}); it will not be loaded. Use a file of tensors '
            'only (a state dict, or .safetensors) from a source you trust') from None
    except Exception as e:  # noqa: BLE001 - any read failure becomes one clear line
        raise _unreadable(path, e) from None


def _unreadable(path: str, e: Exception) -> CheckpointError:
    """A file that is not a readable checkpoint at all: truncated, damaged or another format."""
    text = str(e).strip()
    if text.startswith('Weights only load failed'):  # torch's advice, not the reason
        text = text.rsplit('WeightsUnpickler error:', 1)[-1].strip()
        text = text.split('Check the documentation of torch.load')[0].strip()
    reason = text.splitlines()[0].split('. ')[0] if text else type(e).__name__
    return CheckpointError(f'cannot read checkpoint {path}: {reason} (corrupt or partial '
                           'download? download it again)')


def _read_json(path: str) -> Optional[dict]:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _read_hf_dir(path: str) -> StateDict:
    if not os.path.exists(os.path.join(path, 'config.json')):
        raise CheckpointError(f'{path} is a directory without config.json; expected a Hugging '
                              'Face model directory (config.json + model.safetensors)')
    for index_name in ('model.safetensors.index.json', 'pytorch_model.bin.index.json'):
        index = _read_json(os.path.join(path, index_name))
        if index is not None:
            sd = {}
            for shard in sorted(set(index['weight_map'].values())):
                sd.update(read_file(os.path.join(path, shard)))
            return sd
    for name in ('model.safetensors', 'pytorch_model.bin'):
        if os.path.exists(os.path.join(path, name)):
            return read_file(os.path.join(path, name))
    raise CheckpointError(f'{path} holds config.json but no model.safetensors or '
                          'pytorch_model.bin')


def _unwrap(obj, path: str) -> StateDict:
    """Find the backbone weights inside a checkpoint container."""
    if not isinstance(obj, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(obj).__name__}, not a state dict')
    if 'teacher' in obj and isinstance(obj['teacher'], dict):
        logger.info('%s: official training checkpoint, using the teacher weights', path)
        obj = obj['teacher']
    for key in _WRAPPER_KEYS:
        if key in obj and isinstance(obj[key], dict) and not torch.is_tensor(obj[key]):
            obj = obj[key]
    tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f'checkpoint {path} contains no tensors (top-level keys: '
                              f'{", ".join(list(obj)[:6])})')
    return tensors


def _shorten(items: List[str], n: int = 4) -> str:
    more = f' (+{len(items) - n} more)' if len(items) > n else ''
    return ', '.join(items[:n]) + more


def check_hf_config(config: Optional[dict], model: nn.Module) -> None:
    """Compare what an HF config says with the model, for what weights alone cannot show."""
    if not config:
        return
    pairs = {'num_attention_heads': getattr(model, 'num_heads', None),
             'num_register_tokens': getattr(model, 'num_register_tokens', None),
             'patch_size': getattr(model, 'patch_size', None)}
    bad = [f'{k}={config[k]} (model: {v})' for k, v in pairs.items()
           if v is not None and k in config and config[k] != v]
    act = _expected_activation(model)
    if act and config.get('hidden_act', act[0]) not in act:
        bad.append(f"hidden_act={config['hidden_act']!r} (model: {act[0]})")
    if bad:
        raise CheckpointError(f'Hugging Face config does not match the model: {", ".join(bad)}')


def _expected_activation(model: nn.Module) -> Tuple[str, ...]:
    """Activations an HF config may name for the model's FFN (DINOv2's HF SwiGLU ignores it)."""
    from ..layers import Mlp, SwiGLU
    blocks = getattr(model, 'blocks', None)
    mlp = blocks[0].mlp if blocks is not None and len(blocks) else None
    if isinstance(mlp, Mlp):
        return ('gelu',)
    if isinstance(mlp, SwiGLU):
        return ('silu', 'swish')
    return ()


def load_into(model: nn.Module, path: str, *, name: str = 'model') -> str:
    """Load the checkpoint at ``path`` into ``model`` strictly; returns the detected format.

    Raises:
        CheckpointError: unreadable file, unknown layout, or missing/unexpected keys and shape
            mismatches (named, with the preset the file seems to belong to).
    """
    raw, config = read_checkpoint(path)
    try:
        sd, fmt = to_densedino(raw)
    except ValueError as e:
        raise CheckpointError(f'checkpoint {path}: {e}') from None
    expected = model.state_dict()
    sd = fit_to_model(sd, expected)
    problems = describe_mismatch(sd, expected)
    if problems:
        refused = getattr(getattr(model, 'preset', None), 'name', name)
        guess = guess_presets(sd, exclude=refused)
        hint = f'; the file looks like {" / ".join(guess)}' if guess else ''
        raise CheckpointError(f'checkpoint {path} ({fmt} format) does not fit {name}: '
                              f'{problems}{hint}')
    if fmt.startswith('hf_'):
        check_hf_config(config, model)
    model.load_state_dict(sd, strict=True)
    logger.info('loaded %s (%s format) into %s', path, fmt, name)
    return fmt


def describe_mismatch(sd: StateDict, expected: Dict[str, torch.Tensor]) -> str:
    """'' when keys and shapes agree, else a one-line account of the first differences."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f'{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}' for k, v in expected.items()
              if k in sd and sd[k].shape != v.shape]
    parts = []
    if missing:
        parts.append(f'missing keys {_shorten(missing)}')
    if unexpected:
        parts.append(f'unexpected keys {_shorten(unexpected)}')
    if shapes:
        parts.append(f'shape mismatch (file vs model) {_shorten(shapes, 3)}')
    return '; '.join(parts)


def vit_signature(sd: StateDict) -> Optional[Tuple]:
    """(embed_dim, depth, patch, registers, rope, ffn) read off a ViT state dict."""
    if 'cls_token' not in sd or 'patch_embed.proj.weight' not in sd:
        return None
    depth = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r'blocks\.(\d+)\.', k))),
                    default=-1)
    ffn = 'swiglu_packed' if 'blocks.0.mlp.w12.weight' in sd else \
        'swiglu' if 'blocks.0.mlp.w1.weight' in sd else 'mlp'
    regs = sd['register_tokens'].shape[1] if 'register_tokens' in sd else 0
    return (sd['cls_token'].shape[-1], depth, sd['patch_embed.proj.weight'].shape[-1], regs,
            'pos_embed' not in sd, ffn)


def guess_presets(sd: StateDict, exclude: Optional[str] = None) -> List[str]:
    """Presets whose architecture matches the state dict's signature (for error messages).

    Args:
        sd: A state dict in densedino keys.
        exclude: The preset that has just refused ``sd``: it fits the signature but not the
            file (e.g. another position grid), so naming it would mislead.
    """
    from .presets import PRESETS
    sig = vit_signature(sd)
    if sig is None:
        return []
    found = []
    for name, preset in PRESETS.items():
        kw = preset.kwargs
        if not preset.is_vit or name == exclude:
            continue
        psig = (kw['embed_dim'], kw['depth'], kw['patch_size'], kw.get('num_register_tokens', 0),
                kw.get('pos_embed') == 'rope', kw.get('ffn_layer', 'mlp'))
        if psig == sig:
            found.append(name)
    return found
