"""Stop a diverging run before it damages anything: loss terms and norms checked every step.

:class:`NonFiniteGuard` sits between backward and the optimiser step. On every step it reads
the loss terms (and, on steps that update the parameters, the total gradient norm and the norm
of the trained weights) to the host in ONE transfer, the same transfer that gives the logger its
values, so the check costs no extra synchronisation. The weight norm catches an update that
overflowed the weights while loss and gradients stayed finite (a depth head whose predictions
are clamped to the depth range can do that), one step later. When any value is ``nan`` or
``inf`` the gradients are dropped and the step is not applied; the run stops with
:class:`NonFiniteError`, one line naming the iteration, every term, the norms and the last good
checkpoint. ``max_skips=N`` skips up to N such steps instead (as fp16 loss scaling does), off by
default.

Gradient clipping by norm reuses the norm the guard has computed, so clipping adds no pass and
no synchronisation of its own. Under fp16 loss scaling (``AmpOptimWrapper``) the gradients are
scaled and the grad scaler already skips steps with non-finite gradients: there the guard checks
the loss terms only. In multi-process runs the verdict is all-reduced, so every process stops
(or skips) together instead of the healthy ones waiting forever for the one that stopped.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

logger = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
    """A loss, gradient or weight that is ``nan`` or ``inf``; the message says where and when."""


def last_good_checkpoint(hub: Optional[MessageHub] = None) -> str:
    """The last checkpoint the run of ``hub`` (its message hub) wrote, for error messages."""
    hub = hub or MessageHub.get_current_instance()
    path = hub.get_info('last_ckpt') if 'last_ckpt' in hub.runtime_info else None
    return f'the last good checkpoint is {path}' if path else 'no checkpoint was written yet'


def _trained(optim_wrapper: OptimWrapper) -> Tuple[List[Tensor], List[Tensor]]:
    """The parameters that have gradients, and their gradients."""
    params = [p for group in optim_wrapper.optimizer.param_groups for p in group['params']
              if p.grad is not None]
    return params, [p.grad for p in params]


def total_grad_norm(grads: List[Tensor]) -> Tensor:
    """The 2-norm of all gradients together (a 0-d tensor; 0 when there are none). Under FSDP
    the gradients are shards and so is the result: see :func:`_plain`."""
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, 'get_total_norm'):  # torch >= 2.6: foreach kernels, DTensors
        return torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _plain(t: Tensor) -> Tensor:
    """A DTensor's full value (the norm of the whole model under FSDP), else ``t``."""
    full = getattr(t, 'full_tensor', None)
    return full() if full is not None else t


def _clip_(grads: List[Tensor], norm: Tensor, max_norm: float) -> None:
    """Scale ``grads`` so that their total norm ``norm`` becomes at most ``max_norm``."""
    if hasattr(torch.nn.utils, 'clip_grads_with_norm_'):  # torch >= 2.6
        torch.nn.utils.clip_grads_with_norm_(grads, max_norm, norm)
        return
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device, g.dtype))


def _any_rank(bad: Tensor) -> Tensor:
    """``bad`` or-ed over all processes (a no-op outside multi-process runs)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        bad = bad.clone()
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return bad


class NonFiniteGuard:
    """Checks one step's loss terms and gradient norm and applies the step only when finite.

    Args:
        max_skips: steps with non-finite values that may be skipped (gradients dropped, a
            warning logged) before the run stops; 0 (default) stops at the first one.
    """

    def __init__(self, max_skips: int = 0) -> None:
        if not isinstance(max_skips, int) or isinstance(max_skips, bool) or max_skips < 0:
            raise ValueError(f'max_skips must be an integer >= 0, got {max_skips!r}')
        self.max_skips = max_skips
        self.skipped = 0

    def step(self, optim_wrapper: OptimWrapper, terms: Dict[str, Tensor], *, iteration: int,
             update: bool = True) -> Tuple[Dict[str, float], bool]:
        """After ``backward``: check, then (on update steps) clip, step and zero the gradients.

        Args:
            optim_wrapper: the run's optimiser wrapper, gradients already computed.
            terms: the values to check and log, 0-d tensors by name (the total loss first).
            iteration: the 0-based iteration, for messages.
            update: whether this step updates the parameters (False while accumulating).

        Returns:
            The terms as floats (``grad_norm`` added on update steps), and whether the
            parameters were updated.

        Raises:
            NonFiniteError: a term or the gradient norm is not finite and no skip is left.
        """
        if update and getattr(optim_wrapper, 'per_group', False) and \
                not isinstance(optim_wrapper, AmpOptimWrapper):
            return self._step_groups(optim_wrapper, terms, iteration)
        names = list(terms)
        values = [t.detach().reshape(()).float() for t in terms.values()]
        grads: List[Tensor] = []
        norm: Optional[Tensor] = None
        if update and not isinstance(optim_wrapper, AmpOptimWrapper):
            params, grads = _trained(optim_wrapper)
            norm = total_grad_norm(grads)
            names += ['grad_norm', 'weight_norm']
            values += [_plain(norm).detach().float(),
                       _plain(total_grad_norm([p.detach() for p in params])).float()]
        device = values[0].device if values else torch.device('cpu')
        stacked = torch.stack([v.to(device) for v in values])
        bad = _any_rank((~torch.isfinite(stacked)).any().to(torch.int32))
        floats = torch.cat([stacked, bad.to(stacked.dtype).reshape(1)]).tolist()  # one sync
        result = dict(zip(names, floats[:-1]))
        if floats[-1]:
            optim_wrapper.zero_grad()
            self._refuse(result, iteration, optim_wrapper.message_hub)
        result.pop('weight_norm', None)  # for the check only: not logged
        if floats[-1] or not update:
            return result, False
        self._apply(optim_wrapper, grads, norm)
        return result, True

    def _step_groups(self, optim_wrapper: OptimWrapper, terms: Dict[str, Tensor],
                     iteration: int) -> Tuple[Dict[str, float], bool]:
        """The step of a wrapper whose parameter groups train independent models (a head
        sweep: ``optim_wrapper.per_group``): norms and clipping per group, and a group with a
        non-finite gradient or weight norm is left out of the step and reported to
        ``optim_wrapper.on_bad_group(name)`` instead of stopping the others. The loss terms
        are checked as usual; ``grad_norm`` logs the largest finite group norm."""
        groups = [g for g in optim_wrapper.optimizer.param_groups
                  if any(p.grad is not None for p in g['params'])]
        grads = [[p.grad for p in g['params'] if p.grad is not None] for g in groups]
        norms = [total_grad_norm(gs) for gs in grads]
        weights = [total_grad_norm([p.detach() for p in g['params'] if p.grad is not None])
                   for g in groups]
        values = [t.detach().reshape(()).float() for t in terms.values()]
        values += [n.detach().float() for n in norms + weights]
        stacked = torch.stack([v.to(values[0].device) for v in values])
        floats = stacked.tolist()  # one sync
        n_terms, n_groups = len(terms), len(groups)
        result = dict(zip(terms, floats[:n_terms]))
        group_norms = floats[n_terms:n_terms + n_groups]
        bad = [i for i in range(n_groups) if not (math.isfinite(group_norms[i])
                                                  and math.isfinite(floats[n_terms + n_groups + i]))]
        good_norms = [v for i, v in enumerate(group_norms) if i not in bad]
        if any(not math.isfinite(v) for v in result.values()) or (groups and not good_norms):
            optim_wrapper.zero_grad()
            self._refuse(dict(result, grad_norm=max(group_norms, default=0.0)), iteration,
                         optim_wrapper.message_hub)
            return result, False
        for i in bad:
            for p in groups[i]['params']:
                p.grad = None
            report = getattr(optim_wrapper, 'on_bad_group', None)
            if report is not None:
                report(groups[i].get('name', str(i)))
        max_norm = (optim_wrapper.clip_grad_kwargs or {}).get('max_norm')
        for i, gs in enumerate(grads):
            if i not in bad and max_norm is not None:
                _clip_(gs, norms[i], float(max_norm))
        kwargs, optim_wrapper.clip_grad_kwargs = optim_wrapper.clip_grad_kwargs, {}
        try:
            optim_wrapper.step()
        finally:
            optim_wrapper.clip_grad_kwargs = kwargs
        optim_wrapper.zero_grad()
        result['grad_norm'] = max(good_norms, default=0.0)
        return result, True

    def _refuse(self, values: Dict[str, float], iteration: int, hub: MessageHub) -> None:
        shown = ', '.join(f'{k}={v:.4g}' for k, v in values.items())
        if self.skipped < self.max_skips:
            self.skipped += 1
            logger.warning('non-finite values at iteration %d (%s): step skipped (%d of %d '
                           'allowed skips used)', iteration + 1, shown, self.skipped,
                           self.max_skips)
            return
        where = '' if any(not math.isfinite(v) for v in values.values()) else \
            ' in another process; here'
        raise NonFiniteError(f'non-finite values at iteration {iteration + 1}{where} ({shown}): '
                             f'the step was not applied and training stopped; '
                             f'{last_good_checkpoint(hub)} (lower the learning rate, or set '
                             'nonfinite_guard=dict(max_skips=N) to skip up to N bad steps)')

    @staticmethod
    def _apply(optim_wrapper: OptimWrapper, grads: List[Tensor], norm: Optional[Tensor]) -> None:
        """Clip (by norm: with the norm already computed), step, zero the gradients."""
        kwargs = optim_wrapper.clip_grad_kwargs
        clip_by_norm = bool(kwargs) and optim_wrapper.clip_func is torch.nn.utils.clip_grad_norm_
        if clip_by_norm and float(kwargs.get('norm_type', 2.0)) == 2.0 and norm is not None:
            _clip_(grads, norm, float(kwargs['max_norm']))
            # the wrapper's own step (parameter schedulers count its calls), minus its clipping
            optim_wrapper.clip_grad_kwargs = {}
            try:
                optim_wrapper.step()
            finally:
                optim_wrapper.clip_grad_kwargs = kwargs
        else:
            optim_wrapper.step()
        optim_wrapper.zero_grad()


def attach_guard(model: torch.nn.Module, optim_wrapper: OptimWrapper,
                 guard: NonFiniteGuard, get_iteration: Callable[[], int]) -> None:
    """Route ``optim_wrapper.update_params`` (what mmengine's ``BaseModel.train_step`` calls)
    through ``guard``, with the loss terms that ``model.parse_losses`` produced.

    The logged values (``log_vars``, which ``train_step`` returns to the logger) are replaced by
    the floats the guard read, so the logger does not read them from the device again.

    Args:
        model: the model whose ``parse_losses`` gives the terms (unwrapped from DDP).
        optim_wrapper: the wrapper to guard.
        guard: the guard.
        get_iteration: returns the current 0-based iteration.
    """
    pending: Dict[str, Dict] = {}
    parse_losses = model.parse_losses

    def parse_and_keep(losses):
        loss, log_vars = parse_losses(losses)
        pending['log_vars'] = log_vars
        return loss, log_vars

    def update_params(loss: Tensor, step_kwargs: Optional[dict] = None,
                      zero_kwargs: Optional[dict] = None) -> None:
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        log_vars = pending.pop('log_vars', None)
        terms = {k: v for k, v in (log_vars or {}).items() if torch.is_tensor(v)}
        terms = terms or {'loss': loss}
        floats, _ = guard.step(optim_wrapper, terms, iteration=get_iteration(),
                               update=optim_wrapper.should_update())
        if log_vars is not None:
            for key in terms:
                log_vars[key] = floats[key]
        if 'grad_norm' in floats:
            optim_wrapper.message_hub.update_scalar('train/grad_norm', floats['grad_norm'])

    model.parse_losses = parse_and_keep
    optim_wrapper.update_params = update_params
    optim_wrapper.nonfinite_guard = guard


def nonfinite_tensors(tensors: Iterable[Tuple[str, Tensor]]) -> Tuple[List[str], int]:
    """Names of the floating-point tensors holding ``nan``/``inf``, and how many were checked.

    The flags are reduced on each tensor's device and read with one transfer per device.
    """
    named = [(k, v) for k, v in tensors if torch.is_tensor(v) and v.is_floating_point()
             and v.numel()]
    by_device: Dict[torch.device, List[Tuple[str, Tensor]]] = {}
    for k, v in named:
        by_device.setdefault(v.device, []).append((k, v))
    bad: List[str] = []
    for items in by_device.values():
        flags = torch.stack([torch.isfinite(v).all() for _, v in items]).tolist()
        bad += [k for (k, _), ok in zip(items, flags) if not ok]
    return bad, len(named)
