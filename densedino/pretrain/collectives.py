"""The gradient averaging that :class:`~.ssl_model.DinoSSLModel` runs after backward.

Rank, world size and single-tensor reductions come from ``mmengine.dist`` (no-ops in a single
process); this one is densedino's because it flattens every gradient into one all-reduce instead
of one per parameter. Kept apart from :mod:`.distributed` (the model wrapper and FSDP sharding).
"""
import torch
from mmengine.dist import all_reduce, get_world_size
from torch import nn


def average_gradients(module: nn.Module) -> None:
    """Average the student's gradients over the processes (no-op in a single process).

    ``DinoSSLModel.train_step`` runs the student itself (teacher targets, EMA and centres
    around it), so it is wrapped by :class:`SSLDistributedWrapper`, not DDP, and synchronises
    gradients here, after backward and before clipping and the step.
    """
    if get_world_size() == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_reduce(flat, 'mean')
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
