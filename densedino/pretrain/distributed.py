"""Multi-process helpers of the pretraining stack: reductions, gradient averaging, the wrapper.

:class:`~.ssl_model.DinoSSLModel` runs its own train step (teacher targets, EMA, centres around
the student's backward), so it is not wrapped by DDP: its configs set
``model_wrapper_cfg = dict(type='SSLDistributedWrapper')`` and the model averages the student's
gradients with :func:`average_gradients` after backward.

For models too large to replicate, ``SSLDistributedWrapper(fsdp=...)`` shards the networks with
PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``) instead, and
:class:`FSDPCheckpointHook` gathers the shards so that checkpoints hold plain full tensors.
"""
import contextlib
import re
import warnings
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Union

import torch
import torch.distributed as dist
from mmengine.hooks import CheckpointHook
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from torch import Tensor, nn

from ..registry import HOOKS

#: Options of ``SSLDistributedWrapper(fsdp=dict(...))`` and their defaults.
FSDP_DEFAULTS = dict(reshard_after_forward=True, mixed_precision=None)
#: ``mixed_precision`` values: the dtype of the unsharded parameters in forward and backward.
MIXED_PRECISIONS = {None: None, 'bf16': torch.bfloat16}
#: Networks of a ``DinoSSLModel`` that are sharded (those present); the student is trained.
SHARDED_NETWORKS = ('student', 'teacher', 'student_ema', 'gram_teacher')
#: Backbone methods besides ``forward`` that run the backbone's own parameters.
FORWARD_METHODS = ('forward_features', 'get_intermediate_layers')


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


# mmengine's Runner looks wrapper types up in its root registry only (``MODEL_WRAPPERS.get``,
# no scope switch), so this one registers there rather than in densedino's child registry.
@MMENGINE_MODEL_WRAPPERS.register_module()
class SSLDistributedWrapper(nn.Module):
    """Multi-process wrapper for :class:`DinoSSLModel` (``model_wrapper_cfg`` of its configs).

    mmengine's DDP wrapper runs its own train step (forward, loss, ``update_params``) and would
    skip the teacher update, the centres and the last-layer freeze; this wrapper hands
    ``train_step`` to the model, which averages the student's gradients over the processes
    itself. At construction every rank takes rank 0's parameters and buffers, so all start
    equal.

    Args:
        module: The ``DinoSSLModel``.
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        super().__init__()
        self.module = module
        if rank_and_world()[1] > 1:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def train_step(self, data, optim_wrapper: OptimWrapper) -> Dict[str, float]:
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
