"""The networks of self-distillation: a backbone with its DINO (and iBOT) heads, the frozen
teachers, and the EMA that moves a teacher towards the student."""
from typing import Optional

import torch
from torch import nn

from ..models.backbones import create_backbone
from .checkpoints import load_ssl_networks
from .heads import DINOHead

DISTILL_TEACHER_KEYS = ('arch', 'checkpoint', 'backbone_overrides', 'head', 'ibot_head')


def build_networks(arch: str, overrides: dict, drop_path_rate: float, head: Optional[dict],
                   ibot_head: Optional[dict]) -> nn.ModuleDict:
    """``{'backbone', 'dino_head'[, 'ibot_head']}`` in training mode; ``ibot_head=None`` means
    the iBOT loss shares the DINO head (DINOv2), a dict gives it its own (DINOv3)."""
    backbone = create_backbone(arch, **{**overrides, 'drop_path_rate': drop_path_rate})
    nets = nn.ModuleDict(dict(backbone=backbone,
                              dino_head=DINOHead(backbone.embed_dim, **(head or {}))))
    if ibot_head is not None:
        nets['ibot_head'] = DINOHead(backbone.embed_dim, **ibot_head)
    return nets.train()


def ibot_head_of(nets: nn.ModuleDict) -> DINOHead:
    """The head that scores masked patches: the iBOT head, or the shared DINO head."""
    return nets['ibot_head'] if 'ibot_head' in nets else nets['dino_head']


def build_distill_teacher(cfg: dict, student: nn.ModuleDict, head: Optional[dict],
                          ibot_head: Optional[dict]) -> nn.ModuleDict:
    """The pretrained teacher of distillation, read from ``cfg['checkpoint']`` and checked
    against the student: one patch grid (the iBOT masks) and as many prototypes per head."""
    cfg = dict(cfg)
    if set(cfg) - set(DISTILL_TEACHER_KEYS) or 'arch' not in cfg or 'checkpoint' not in cfg:
        raise ValueError('distill_teacher needs arch and checkpoint (optional: '
                         f'backbone_overrides, head, ibot_head); got keys {sorted(cfg)}')
    nets = build_networks(cfg['arch'], dict(cfg.get('backbone_overrides') or {}), 0.0,
                          cfg.get('head', head), cfg.get('ibot_head', ibot_head))
    student_patch = student['backbone'].patch_size
    if nets['backbone'].patch_size != student_patch:
        raise ValueError(f"distill_teacher {cfg['arch']} has patch size "
                         f"{nets['backbone'].patch_size}, the student {student_patch}: the iBOT "
                         'masks need one patch grid')
    load_ssl_networks(nets, cfg['checkpoint'])
    for name, student_head, teacher_head in (
            ('dino_head', student['dino_head'], nets['dino_head']),
            ('ibot_head', ibot_head_of(student), ibot_head_of(nets))):
        k_student = student_head.last_layer.weight.shape[0]
        k_teacher = teacher_head.last_layer.weight.shape[0]
        if k_student != k_teacher:
            raise ValueError(f'distill_teacher {name} has {k_teacher} prototypes, the student '
                             f'{k_student}')
    return nets


def frozen(module: nn.Module) -> nn.Module:
    """``module`` without gradients, in eval mode (a teacher)."""
    module.requires_grad_(False)
    return module.eval()


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place ``t <- m t + (1 - m) s`` over matching parameters."""
    t_params = list(teacher.parameters())
    s_params = list(student.parameters())
    if len(t_params) != len(s_params):
        raise ValueError(f'teacher has {len(t_params)} parameters, student {len(s_params)}')
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, [p.detach() for p in s_params], alpha=1.0 - momentum)
