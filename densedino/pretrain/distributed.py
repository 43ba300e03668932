"""Multi-process helpers of the pretraining stack: reductions, gradient averaging, the wrapper.

:class:`~.ssl_model.DinoSSLModel` runs its own train step (teacher targets, EMA, centres around
the student's backward), so it is not wrapped by DDP: its configs set
``model_wrapper_cfg = dict(type='SSLDistributedWrapper')`` and the model averages the student's
gradients with :func:`~.collectives.average_gradients` after backward.

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
from mmengine.dist import get_rank, get_world_size, is_distributed
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from torch import Tensor, nn

from ..engine.hooks import SafeCheckpointHook
from ..registry import HOOKS

#: Options of ``SSLDistributedWrapper(fsdp=dict(...))`` and their defaults.
FSDP_DEFAULTS = dict(reshard_after_forward=True, mixed_precision=None)
#: ``mixed_precision`` values: the dtype of the unsharded parameters in forward and backward.
MIXED_PRECISIONS = {None: None, 'bf16': torch.bfloat16}
#: Networks of a ``DinoSSLModel`` that are sharded (those present); the student is trained.
SHARDED_NETWORKS = ('student', 'teacher', 'student_ema', 'gram_teacher')
#: Backbone methods besides ``forward`` that run the backbone's own parameters.
FORWARD_METHODS = ('forward_features', 'get_intermediate_layers')


def parse_fsdp_options(fsdp: Union[bool, dict, None]) -> Optional[dict]:
    """Validate ``SSLDistributedWrapper``'s ``fsdp`` argument.

    Args:
        fsdp: None / False (no sharding), True (defaults of :data:`FSDP_DEFAULTS`) or a dict
            with keys among ``reshard_after_forward`` (bool) and ``mixed_precision``
            (None or 'bf16').

    Returns:
        The complete options, or None without sharding.

    Raises:
        ValueError: an unknown key, or a value of the wrong type.
    """
    if fsdp is None or fsdp is False:
        return None
    if fsdp is True:
        return dict(FSDP_DEFAULTS)
    if not isinstance(fsdp, dict):
        raise ValueError(f'fsdp must be None, a bool or a dict, got {type(fsdp).__name__}')
    unknown = sorted(set(fsdp) - set(FSDP_DEFAULTS))
    if unknown:
        raise ValueError(f'unknown fsdp option(s) {unknown}; allowed: {sorted(FSDP_DEFAULTS)}')
    options = {**FSDP_DEFAULTS, **fsdp}
    if not isinstance(options['reshard_after_forward'], bool):
        raise ValueError('fsdp reshard_after_forward must be a bool, got '
                         f"{options['reshard_after_forward']!r}")
    if options['mixed_precision'] not in MIXED_PRECISIONS:
        raise ValueError(f'fsdp mixed_precision must be one of {list(MIXED_PRECISIONS)}, got '
                         f"{options['mixed_precision']!r}")
    return options


def _is_dtensor(value: Any) -> bool:
    if not isinstance(value, Tensor):
        return False
    from torch.distributed.tensor import DTensor
    return isinstance(value, DTensor)


def _gather(value: Any, keep: bool) -> Any:
    """Full CPU copy of ``value`` (a collective for DTensors: call on every rank); None unless
    ``keep``."""
    if _is_dtensor(value):
        value = value.full_tensor()
    if not keep:
        return None
    return value.detach().cpu() if isinstance(value, Tensor) else value


def _shard_like(value: Any, param: Tensor) -> Any:
    """``value`` (a full tensor of ``param``'s shape) cut to this rank's shard of ``param``."""
    if (_is_dtensor(param) and isinstance(value, Tensor) and not _is_dtensor(value)
            and value.shape == param.shape):
        from torch.distributed.tensor import distribute_tensor
        return distribute_tensor(value.to(param.device), param.device_mesh, param.placements,
                                 src_data_rank=None)
    return value


def _optimizers(optim_wrapper: Any) -> List[torch.optim.Optimizer]:
    """The torch optimizers of an mmengine ``OptimWrapper`` or ``OptimWrapperDict``."""
    if optim_wrapper is None:
        return []
    if hasattr(optim_wrapper, 'optimizer'):
        return [optim_wrapper.optimizer]
    if hasattr(optim_wrapper, 'optim_wrappers'):
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    raise TypeError(f'expected an mmengine OptimWrapper, got {type(optim_wrapper).__name__}')


def _as_function(method: Any) -> Any:
    """A plain function calling ``method`` (torch tags hook functions with attributes, which
    bound methods do not take)."""
    def hook(*args: Any) -> Any:
        return method(*args)
    return hook


def _flat_params(optimizer: torch.optim.Optimizer) -> List[Tensor]:
    return [p for group in optimizer.param_groups for p in group['params']]


# mmengine's Runner looks wrapper types up in its root registry only (``MODEL_WRAPPERS.get``,
# no scope switch), so this one registers there rather than in densedino's child registry.
@MMENGINE_MODEL_WRAPPERS.register_module()
class SSLDistributedWrapper(nn.Module):
    """Multi-process wrapper for :class:`DinoSSLModel` (``model_wrapper_cfg`` of its configs).

    mmengine's DDP wrapper runs its own train step (forward, loss, ``update_params``) and would
    skip the teacher update, the centres and the last-layer freeze; this wrapper hands
    ``train_step`` to the model. At construction every rank takes rank 0's parameters and
    buffers, so all start equal.

    Without ``fsdp`` every rank holds the whole model and the model averages the student's
    gradients itself (:func:`~.collectives.average_gradients`). With ``fsdp`` the networks are sharded with
    FSDP2 at the first :meth:`train_step` (or an explicit :meth:`shard`): each transformer
    block of every backbone, then each backbone (its embeddings and norms) and each head, are
    ``fully_shard`` units, identically for the student and its EMA (the teacher), so the EMA
    runs shard by shard on matching DTensors. FSDP reduce-scatters the gradients (the model's
    own averaging is switched off); clipping, the last-layer freeze, the optimiser step and
    the EMA act on the local shards. Sharding waits for the first step because mmengine, between
    wrapping and training, broadcasts every state-dict entry (which DTensors do not support)
    and loads checkpoints and optimiser states as full tensors; at sharding the optimiser's
    parameters and state are replaced by their shards. The frozen networks (teacher, Gram and
    distillation teachers) always reshard after forward.

    Once sharded, ``state_dict()`` of the model would hold local shards only and raises;
    checkpoints are gathered by :class:`FSDPCheckpointHook` (every rank), or by
    :meth:`full_state` / :meth:`full_state_dict`, and hold plain full tensors, loadable
    with or without FSDP (a full state dict loaded into the sharded model is cut to shards).

    Args:
        module: The ``DinoSSLModel``.
        fsdp: None (replicated, default), True, or a dict of options
            (see :func:`parse_fsdp_options`): ``reshard_after_forward`` (default True) frees
            the student's gathered parameters after each forward and gathers them again in
            backward (less memory, more communication); ``mixed_precision`` (None or 'bf16')
            runs forward and backward with bf16 parameters while the sharded parameters, the
            optimiser and the gradient reduction stay fp32, and the backbones and heads return
            fp32 outputs.

    Raises:
        ValueError: bad ``fsdp`` options, or a model without the ``student`` and ``teacher``
            networks.
        RuntimeError: ``fsdp`` without an initialised process group (launch with torchrun and
            ``--launcher pytorch``; single-process runs are not wrapped by mmengine).
    """

    def __init__(self, module: nn.Module, fsdp: Union[bool, dict, None] = None, **kwargs) -> None:
        super().__init__()
        self.fsdp = parse_fsdp_options(fsdp)
        if self.fsdp is not None:
            missing = [n for n in ('student', 'teacher') if not isinstance(
                getattr(module, n, None), nn.Module)]
            if missing:
                raise ValueError(f'fsdp needs a DinoSSLModel-like module with student and teacher '
                                 f'networks; {type(module).__name__} has no {missing}')
            if not is_distributed():
                raise RuntimeError('fsdp needs an initialised torch.distributed process group '
                                   '(launch with torchrun ... --launcher pytorch)')
        self.module = module
        self.sharded = False
        self._full: Optional[tuple] = None  # (model state, {id(optimizer): state}) on rank 0
        self._allow_sharded_state = False
        if get_world_size() > 1:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    # ----------------------------------------------------------------- sharding
    def shard(self, optim_wrapper: Optional[OptimWrapper] = None) -> None:
        """Shard the networks with FSDP2 (once; a no-op without ``fsdp`` or when done).

        Args:
            optim_wrapper: The optimiser wrapper built over the unsharded parameters; its
                parameters and state (full tensors, e.g. just resumed) are replaced by shards.
        """
        if self.fsdp is None or self.sharded:
            return
        from torch.distributed.device_mesh import init_device_mesh
        old = list(self.module.parameters())
        device = old[0].device if old else torch.device('cpu')
        mesh = init_device_mesh(device.type, (get_world_size(),))
        dtype = MIXED_PRECISIONS[self.fsdp['mixed_precision']]
        for name in SHARDED_NETWORKS:
            net = getattr(self.module, name, None)
            if isinstance(net, nn.Module):
                reshard = self.fsdp['reshard_after_forward'] if name == 'student' else True
                self._shard_network(net, mesh, reshard, dtype)
        new = list(self.module.parameters())
        if len(new) != len(old):
            raise RuntimeError(f'sharding changed the number of parameters: {len(old)} -> {len(new)}')
        mapping = {id(p): q for p, q in zip(old, new)}  # noqa: B905 (py3.9)
        self.module.sync_gradients = False  # FSDP reduce-scatters the gradients
        self.module.register_state_dict_post_hook(_as_function(self._state_dict_post_hook))
        self.module.register_load_state_dict_pre_hook(_as_function(self._load_state_dict_pre_hook))
        for optimizer in _optimizers(optim_wrapper):
            self._swap_params(optimizer, mapping)
        self.sharded = True

    @staticmethod
    def _shard_network(net: nn.Module, mesh: Any, reshard: bool, dtype: Optional[torch.dtype]) -> None:
        """``fully_shard`` the blocks, then the rest, of each part of ``net`` (a ModuleDict of
        backbone and heads, or a backbone)."""
        from torch.distributed.fsdp import (MixedPrecisionPolicy, fully_shard,
                                            register_fsdp_forward_method)
        fp32 = None if dtype is None else torch.float32
        inner = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=fp32)
        outer = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=fp32, output_dtype=fp32)
        parts = list(net.values()) if isinstance(net, nn.ModuleDict) else [net]
        for part in parts:
            blocks = getattr(part, 'blocks', None)
            if isinstance(blocks, nn.ModuleList):
                for block in blocks:
                    fully_shard(block, mesh=mesh, reshard_after_forward=reshard, mp_policy=inner)
            name = type(part).__name__
            fully_shard(part, mesh=mesh, reshard_after_forward=reshard, mp_policy=outer)
            for method in FORWARD_METHODS:
                if hasattr(part, method):
                    register_fsdp_forward_method(part, method)
            # forward_features returns views of one tensor; the model only reads them
            warnings.filterwarnings('ignore', category=UserWarning, message=(
                rf'FSDP2-wrapped module \(FSDP{re.escape(name)}\) returned a view tensor'))

    def _swap_params(self, optimizer: torch.optim.Optimizer, mapping: Dict[int, Tensor]) -> None:
        for group in optimizer.param_groups:
            group['params'] = [mapping.get(id(p), p) for p in group['params']]
        state = defaultdict(dict)
        for p, st in optimizer.state.items():
            q = mapping.get(id(p), p)
            state[q] = {k: _shard_like(v, q) for k, v in st.items()}
        optimizer.state = state
        optimizer.register_state_dict_post_hook(_as_function(self._optim_state_dict_post_hook))
        optimizer.register_load_state_dict_pre_hook(_as_function(self._optim_load_state_dict_pre_hook))

    # -------------------------------------------------------------- state dicts
    def _sharded_error(self, what: str) -> RuntimeError:
        return RuntimeError(f'{what} of the FSDP-sharded model holds local shards only: save '
                            "checkpoints with default_hooks.checkpoint.type='FSDPCheckpointHook' "
                            'or inside SSLDistributedWrapper.full_state() on every rank')

    def _state_dict_post_hook(self, module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: dict) -> None:
        if self._full is not None:
            full = self._full[0]
            for key in state_dict:
                if key.startswith(prefix) and key[len(prefix):] in full:
                    state_dict[key] = full[key[len(prefix):]]
        elif not self._allow_sharded_state and any(map(_is_dtensor, state_dict.values())):
            raise self._sharded_error('state_dict()')

    def _load_state_dict_pre_hook(self, module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                                  *args: Any) -> None:
        for name, param in module.named_parameters():
            key = prefix + name
            if key in state_dict:
                state_dict[key] = _shard_like(state_dict[key], param)

    def _optim_state_dict_post_hook(self, optimizer: torch.optim.Optimizer,
                                    state_dict: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if self._full is not None and id(optimizer) in self._full[1]:
            state_dict['state'] = self._full[1][id(optimizer)]
            return state_dict
        if not self._allow_sharded_state and any(
                _is_dtensor(v) for st in state_dict['state'].values() for v in st.values()):
            raise self._sharded_error('the optimizer state_dict()')
        return None

    def _optim_load_state_dict_pre_hook(self, optimizer: torch.optim.Optimizer,
                                        state_dict: Dict[str, Any]) -> Dict[str, Any]:
        params = _flat_params(optimizer)
        state = {i: {k: _shard_like(v, params[i]) if i < len(params) else v for k, v in st.items()}
                 for i, st in state_dict['state'].items()}
        return {**state_dict, 'state': state}

    @contextlib.contextmanager
    def full_state(self, optim_wrapper: Optional[OptimWrapper] = None) -> Iterator[None]:
        """Context with the full state on rank 0: enter it on every rank (a collective).

        On entry the model's parameters (and the optimiser's state when ``optim_wrapper`` is
        given) are gathered to rank 0's CPU; inside, ``state_dict()`` of the model and of the
        optimiser return these plain full tensors on rank 0 (local shards on the other ranks).
        A no-op unless sharded.
        """
        if not self.sharded:
            yield
            return
        keep = get_rank() == 0
        self._allow_sharded_state = True
        try:
            model = {k: _gather(v, keep) for k, v in self.module.state_dict().items()}
            optim = {}
            for optimizer in _optimizers(optim_wrapper):
                state = optimizer.state_dict()['state']
                optim[id(optimizer)] = {i: {k: _gather(st[k], keep) for k in sorted(st)}
                                        for i, st in sorted(state.items())}
        finally:
            self._allow_sharded_state = False
        self._full = (model, optim) if keep else None
        self._allow_sharded_state = not keep  # the other ranks hold no full state
        try:
            yield
        finally:
            self._full = None
            self._allow_sharded_state = False

    def full_state_dict(self) -> Dict[str, Tensor]:
        """The model's full state dict on CPU: on rank 0, {} on the others (call on every rank).

        E.g. ``state = wrapper.full_state_dict()`` then, on rank 0,
        ``export_teacher_backbone(state, 'teacher.pth')``.
        """
        with self.full_state():
            return self.module.state_dict() if get_rank() == 0 else {}

    # ------------------------------------------------------------------- steps
    def train_step(self, data, optim_wrapper: OptimWrapper) -> Dict[str, float]:
        """Shard on the first call (with ``fsdp``), then the model's ``train_step``."""
        self.shard(optim_wrapper)
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@contextlib.contextmanager
def _full_state_of(model: nn.Module, optim_wrapper: Optional[OptimWrapper]) -> Iterator[None]:
    if isinstance(model, SSLDistributedWrapper):
        with model.full_state(optim_wrapper):
            yield
    else:
        yield


@HOOKS.register_module()
class FSDPCheckpointHook(SafeCheckpointHook):
    """:class:`~densedino.engine.hooks.SafeCheckpointHook` that also saves FSDP-sharded models,
    as full tensors.

    mmengine saves on rank 0 only, from ``model.state_dict()``, which under
    ``SSLDistributedWrapper(fsdp=...)`` would hold rank 0's shards. Before each save this hook
    gathers the full model (and optimiser state when ``save_optimizer``) to rank 0's CPU on
    every rank, so the checkpoint holds plain full tensors, loadable without FSDP and by
    ``export_teacher_backbone``, and resumable with or without FSDP. Otherwise (no wrapper,
    no sharding) it is the plain ``SafeCheckpointHook``; it takes the same arguments.
    """

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        optim_wrapper = runner.optim_wrapper if self.save_optimizer else None
        with _full_state_of(runner.model, optim_wrapper):
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with _full_state_of(runner.model, None):
            super()._save_best_checkpoint(runner, metrics)
