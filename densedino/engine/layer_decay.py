"""Layer-wise learning-rate decay for partially unfrozen DINO backbones.

Block i of the backbone gets ``lr * decay ** (num_layers + 1 - (i + 1))``: the embeddings (layer 0)
the smallest rate, the last block ``lr * decay``, and everything outside the backbone (heads,
the final norm) the full rate. One-dimensional parameters (biases, norms, LayerScale) and tokens
get no weight decay.

``backbone_prefix`` names where the backbone sits in the model: ``'backbone.'`` in the segmentors
and depth estimators, ``'student.backbone.'`` in :class:`~densedino.pretrain.DinoSSLModel` (its
teacher does not train, so it never reaches the optimizer).
"""
import re
from typing import List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

_EMBED_NAMES = ('cls_token', 'pos_embed', 'register_tokens', 'mask_token', 'patch_embed',
                'downsample_layers.0')
_NO_DECAY_NAMES = ('cls_token', 'pos_embed', 'register_tokens', 'mask_token', 'gamma')


def layer_id(name: str, num_layers: int, prefix: str = 'backbone.') -> int:
    """Layer of a parameter: 0 embeddings, i + 1 block i, ``num_layers + 1`` everything else.

    ConvNeXt stages count as layers (stage s -> s + 1).
    """
    if not name.startswith(prefix):
        return num_layers + 1
    rest = name[len(prefix):]
    m = re.search(r'(?:^|\.)(?:blocks|stages)\.(\d+)\.', rest)
    if m:
        return int(m.group(1)) + 1
    if any(f'.{e}' in f'.{rest}' for e in _EMBED_NAMES):
        return 0
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.9, patch_embed_lr_mult=1.0,
    backbone_prefix='backbone.')``.

    Only parameters that require grad are handed to the optimizer, so a frozen backbone
    contributes nothing.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        cfg = dict(self.paramwise_cfg)
        num_layers = cfg['num_layers']
        decay = cfg.get('layer_decay_rate', 1.0)
        patch_mult = cfg.get('patch_embed_lr_mult', 1.0)
        backbone_prefix = cfg.get('backbone_prefix', 'backbone.')
        unknown = set(cfg) - {'num_layers', 'layer_decay_rate', 'patch_embed_lr_mult',
                              'backbone_prefix'}
        if unknown:
            raise KeyError(f'unknown paramwise_cfg keys for LayerDecayOptimWrapperConstructor: '
                           f'{sorted(unknown)} (known: num_layers, layer_decay_rate, '
                           'patch_embed_lr_mult, backbone_prefix)')
        base_lr, base_wd = self.base_lr, self.base_wd or 0.0
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            lid = layer_id(name, num_layers, backbone_prefix)
            no_decay = param.ndim == 1 or any(n in name for n in _NO_DECAY_NAMES)
            scale = decay ** (num_layers + 1 - lid)
            if 'patch_embed' in name:
                scale *= patch_mult
            key = (lid, no_decay, 'patch_embed' in name)
            group = groups.setdefault(key, dict(params=[], lr=base_lr * scale, lr_scale=scale,
                                                weight_decay=0.0 if no_decay else base_wd,
                                                layer_id=lid))
            group['params'].append(param)
        params.extend(groups[k] for k in sorted(groups))
