"""Optimizer wrappers: bf16 autocast for CPUs (mmengine's AmpOptimWrapper needs CUDA), and the
per-head optimizer of a head sweep."""
from contextlib import contextmanager
from types import MethodType
from typing import Optional

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """Runs forward and loss under ``torch.autocast(dtype=bfloat16)`` on the model's device.

    bf16 keeps fp32's exponent range, so no loss scaling is needed. Parameters, gradients and
    optimizer state stay fp32.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        device = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device_type=device,
                                                          dtype=torch.bfloat16):
            yield


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class HeadSweepOptimWrapperConstructor:
    """The optimizer of a head sweep (``densedino.models.head_sweep``): one parameter group per
    head, with the head's ``lr`` / ``weight_decay`` (its spec's, else the optimizer's), so the
    parameter schedulers scale every head's rate by the same factors; gradient clipping
    (``clip_grad=dict(max_norm=...)``) is per head, since one head's gradients must not shrink
    another's. The wrapper is marked ``per_group``: the non-finite guard then checks and clips
    each head on its own and reports a head whose gradients or weights overflow to the model
    (``on_bad_group``), which stops training that head only.

    Config: ``optim_wrapper = dict(constructor='HeadSweepOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=..., weight_decay=...), clip_grad=...)``; ``paramwise_cfg``
    is refused (per-head groups are the point).

    Raises:
        TypeError: the model is not a head sweep.
        ValueError: the backbone (or anything outside the heads) has trainable parameters: a
            shared trainable backbone would couple the heads; or unsupported clipping.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise ValueError('HeadSweepOptimWrapperConstructor takes no paramwise_cfg: each '
                             "head's group gets the lr / weight_decay of its spec in model.heads")
        self.cfg = dict(optim_wrapper_cfg)
        clip = self.cfg.get('clip_grad') or {}
        if clip and (clip.get('type', 'norm') != 'norm' or
                     float(clip.get('norm_type', 2.0)) != 2.0):
            raise ValueError(f'a head sweep clips each head by its 2-norm; clip_grad={clip} is '
                             'not supported (use dict(max_norm=...))')

    def __call__(self, model: nn.Module) -> OptimWrapper:
        from mmengine.model import is_model_wrapper

        from ..registry import OPTIMIZERS
        model = model.module if is_model_wrapper(model) else model
        if not hasattr(model, 'head_param_groups'):
            raise TypeError(f'HeadSweepOptimWrapperConstructor needs a head sweep model '
                            f'(HeadSweepSegmentor / HeadSweepDepthEstimator), got '
                            f'{type(model).__name__}')
        shared = [n for n, p in model.named_parameters()
                  if p.requires_grad and not n.startswith('heads.')]
        if shared:
            raise ValueError(f'a head sweep trains heads on a frozen backbone, but {shared[0]} '
                             f'(and {len(shared) - 1} more) would train too: set '
                             'model.backbone.frozen=True and trainable_blocks=0')
        cfg = dict(self.cfg)
        optimizer_cfg = dict(cfg.pop('optimizer'))
        groups = model.head_param_groups(optimizer_cfg.get('lr'),
                                         optimizer_cfg.get('weight_decay', 0.0))
        optimizer = OPTIMIZERS.build(dict(optimizer_cfg, params=groups))
        cfg.setdefault('type', 'OptimWrapper')
        wrapper = OPTIM_WRAPPERS.build(cfg, default_args=dict(optimizer=optimizer))
        wrapper.per_group = True
        wrapper.on_bad_group = model.mark_group_diverged
        wrapper._clip_grad = MethodType(_clip_each_group, wrapper)
        return wrapper


def _clip_each_group(self: OptimWrapper) -> None:
    """``OptimWrapper._clip_grad`` per parameter group (used where no guard clips)."""
    norms = []
    for group in self.optimizer.param_groups:
        params = [p for p in group['params'] if p.requires_grad and p.grad is not None]
        if params:
            norms.append(self.clip_func(params, **self.clip_grad_kwargs))
    if norms:
        self.message_hub.update_scalar('train/grad_norm', float(torch.stack(norms).max()))
