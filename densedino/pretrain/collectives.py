"""Collectives of the pretraining stack: the process group's rank and size, in-place reductions,
and the gradient averaging that :class:`~.ssl_model.DinoSSLModel` runs after backward.

Each is the identity (or (0, 1)) outside a multi-process run, so losses and the model call them
unconditionally. Kept apart from :mod:`.distributed` (the model wrapper and FSDP sharding) so
that a loss needs no wrapper code to reduce a tensor.
"""
import torch
import torch.distributed as dist
from torch import Tensor, nn


def dist_ready() -> bool:
    """True when a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def all_reduce_(x: Tensor, op: str = 'sum') -> Tensor:
    """In-place all-reduce (``op`` 'sum' or 'max') when distributed; the identity otherwise."""
    if op not in ('sum', 'max'):
        raise ValueError(f"op must be 'sum' or 'max', got {op!r}")
    if dist_ready():
        dist.all_reduce(x, op=dist.ReduceOp.SUM if op == 'sum' else dist.ReduceOp.MAX)
    return x


def rank_and_world() -> tuple:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist_ready():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_gradients(module: nn.Module) -> None:
    """Average the student's gradients over the processes (no-op in a single process).

    ``DinoSSLModel.train_step`` runs the student itself (teacher targets, EMA and centres
    around it), so it is wrapped by :class:`SSLDistributedWrapper`, not DDP, and synchronises
    gradients here, after backward and before clipping and the step.
    """
    _, world = rank_and_world()
    if world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
