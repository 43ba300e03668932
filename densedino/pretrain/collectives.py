"""The gradient averaging that :class:`~.ssl_model.DinoSSLModel` runs around backward.

Rank, world size and single-tensor reductions come from ``mmengine.dist`` (no-ops in a single
process); these are densedino's because they flatten the gradients into few all-reduces instead
of one per parameter. Kept apart from :mod:`.distributed` (the model wrapper and FSDP sharding).

Two ways, the same averages:

* :func:`average_gradients` (``grad_sync='flat'``): after backward, every gradient in one flat
  tensor and one blocking all-reduce. Simple; the reference.
* :class:`OverlappedGradientSync` (``grad_sync='overlap'``, the default): the parameters are
  grouped into buckets of about ``bucket_mb`` MB in the order their gradients arrive in backward,
  and each bucket's all-reduce starts (asynchronously) as soon as its last gradient is ready, so
  communication runs while backward computes the earlier layers; :meth:`~OverlappedGradientSync
  .finish` waits for them and writes the averages back. This is what DDP's reducer does, for a
  model that DDP cannot wrap (its train step runs the teacher, the EMA and the centres).
"""
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor, nn


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


class _Bucket:
    """Parameters of one dtype and device whose gradients are averaged by one all-reduce.

    The flat buffer holds every gradient (already divided by the world size) and then one flag
    per parameter: ``1 / world`` where this rank has a gradient, 0 where it has none; after the
    sum a flag above 0 says that some rank had one.
    """

    def __init__(self, params: List[Tensor]) -> None:
        self.params = params
        self.offsets = [0]
        for p in params:
            self.offsets.append(self.offsets[-1] + p.numel())
        self.flat: Optional[Tensor] = None  # allocated at the first use, on the gradients' device
        self.arrived = [False] * len(params)
        self.n_arrived = 0
        self.handle: Optional[dist.Work] = None

    @property
    def numel(self) -> int:
        return self.offsets[-1]

    def reset(self) -> None:
        self.arrived = [False] * len(self.params)
        self.n_arrived = 0
        self.handle = None

    def put(self, slot: int, grad: Optional[Tensor], world: int) -> None:
        """Store ``grad / world`` (zeros and a 0 flag for None) in ``slot``'s place."""
        if self.flat is None:
            p = self.params[0]
            self.flat = torch.empty(self.numel + len(self.params), dtype=p.dtype, device=p.device)
        part = self.flat[self.offsets[slot]:self.offsets[slot + 1]]
        if grad is None:
            part.zero_()
        else:  # divide before the sum, as mmengine's all_reduce(..., 'mean') does
            torch.div(grad.detach().reshape(-1), world, out=part)
        self.flat[self.numel + slot] = 0.0 if grad is None else 1.0 / world

    def launch(self) -> None:
        self.handle = dist.all_reduce(self.flat, op=dist.ReduceOp.SUM, async_op=True)

    def write_back(self) -> None:
        """Wait for the reduction and give every parameter that some rank had a gradient of
        the average (creating ``.grad`` where this rank had none)."""
        self.handle.wait()
        used = None  # the flags are read (a device sync) only for parameters without .grad
        for slot, p in enumerate(self.params):
            avg = self.flat[self.offsets[slot]:self.offsets[slot + 1]].view(p.shape)
            if p.grad is not None:
                p.grad.copy_(avg)
                continue
            if used is None:
                used = (self.flat[self.numel:] > 0).tolist()
            if used[slot]:
                p.grad = avg.clone()


def _make_buckets(params: List[Tensor], bucket_mb: float) -> List[_Bucket]:
    """Consecutive ``params`` in buckets of at most ``bucket_mb`` MB (at least one parameter
    each), a new bucket wherever the dtype or device changes."""
    limit = bucket_mb * 2**20
    buckets: List[List[Tensor]] = []
    size = 0.0
    for p in params:
        nbytes = p.numel() * p.element_size()
        last = buckets[-1][-1] if buckets else None
        if (last is None or size + nbytes > limit or last.dtype != p.dtype
                or last.device != p.device):
            buckets.append([])
            size = 0.0
        buckets[-1].append(p)
        size += nbytes
    return [_Bucket(ps) for ps in buckets]


class OverlappedGradientSync:
    """Average a module's gradients over the processes while backward runs (DDP-style buckets).

    At construction a hook (``Tensor.register_post_accumulate_grad_hook``) goes on every
    trainable parameter, and the parameters are grouped into buckets of about ``bucket_mb`` MB
    in reverse registration order (the order in which backward produces their gradients). Per
    synchronised backward::

        sync.prepare(enabled=optim_wrapper.should_sync())  # before backward
        loss.backward()  # each full bucket starts its all-reduce (async_op=True)
        sync.finish()  # on update steps: the remaining buckets, wait, write the averages back

    Buckets are launched strictly in order on every rank (a full bucket waits for the earlier
    ones), so the collectives match across ranks whatever order the gradients arrive in. A
    bucket holding a parameter that got no gradient in this backward (unused, or used only by
    other ranks) is reduced in :meth:`finish`, with the later ones: blocking, from the current
    ``.grad`` (zeros where None). A parameter that has a gradient on some rank gets the average
    over all ranks everywhere (missing gradients count as zeros, as in DDP); one with no
    gradient on any rank keeps ``grad = None``.

    Gradient accumulation: only the backward before an update should reduce. ``enabled=False``
    (the default outside :meth:`prepare`) makes the hooks do nothing; the gradients just
    accumulate. The hooks copy gradients into the buckets and never change ``.grad``, so a
    wrong guess only costs time: :meth:`finish` reduces whatever was not reduced in backward,
    and the next :meth:`prepare` drops reductions that no :meth:`finish` collected.

    Call :meth:`finish` before anything changes the gradients (e.g. the last-layer freeze,
    which sets them to None, or clipping). In a single process everything is a no-op and no
    hook is registered. The buckets cost one extra copy of the gradients.

    Args:
        module: the trained module (its parameters with ``requires_grad``).
        bucket_mb: bucket size in MB (DDP's default: 25).
    """

    def __init__(self, module: nn.Module, bucket_mb: float = 25.0) -> None:
        if bucket_mb <= 0:
            raise ValueError(f'bucket_mb must be > 0, got {bucket_mb}')
        self.world_size = get_world_size()
        self.enabled = False
        self._buckets: List[_Bucket] = []
        self._next = 0  # the first bucket not yet launched in this backward
        self._hooks: list = []
        if self.world_size == 1:
            return
        params = list({id(p): p for p in module.parameters() if p.requires_grad}.values())
        self._buckets = _make_buckets(params[::-1], bucket_mb)
        where: Dict[int, tuple] = {}
        for b, bucket in enumerate(self._buckets):
            for slot, p in enumerate(bucket.params):
                where[id(p)] = (b, slot)
        for p in params:
            self._hooks.append(p.register_post_accumulate_grad_hook(
                self._hook(*where[id(p)])))

    @property
    def n_buckets(self) -> int:
        """The number of buckets (0 in a single process)."""
        return len(self._buckets)

    def _hook(self, b: int, slot: int):
        def on_grad(param: Tensor) -> None:
            if self.enabled:
                self._arrived(b, slot, param)
        return on_grad

    def _arrived(self, b: int, slot: int, param: Tensor) -> None:
        bucket = self._buckets[b]
        if bucket.arrived[slot] or bucket.handle is not None:
            raise RuntimeError('a gradient arrived twice in one synchronised backward: call '
                               'OverlappedGradientSync.prepare() before each backward')
        bucket.put(slot, param.grad, self.world_size)
        bucket.arrived[slot] = True
        bucket.n_arrived += 1
        while (self._next < len(self._buckets)
               and self._buckets[self._next].n_arrived == len(self._buckets[self._next].params)):
            self._buckets[self._next].launch()
            self._next += 1

    def prepare(self, enabled: bool = True) -> None:
        """Arm (``enabled``) or disarm the hooks for the next backward; forget the last one.

        Args:
            enabled: reduce in this backward: True on the backward before an optimiser update
                (``OptimWrapper.should_sync()``), False while accumulating.
        """
        self._drain()
        self.enabled = enabled

    def _drain(self) -> None:
        """Wait for reductions no :meth:`finish` collected (results dropped), then reset."""
        for bucket in self._buckets:
            if bucket.handle is not None:
                bucket.handle.wait()
            bucket.reset()
        self._next = 0

    def finish(self) -> None:
        """Reduce the buckets that backward did not launch, wait for all, write the averages
        into ``.grad`` and disarm the hooks."""
        if self.world_size == 1:
            return
        for bucket in self._buckets[self._next:]:
            for slot, p in enumerate(bucket.params):
                if not bucket.arrived[slot]:
                    bucket.put(slot, p.grad, self.world_size)
            bucket.launch()
        self._next = len(self._buckets)
        for bucket in self._buckets:
            bucket.write_back()
        self.enabled = False
        self._drain()

    def remove(self) -> None:
        """Remove the hooks (the synchroniser is then unusable)."""
        self._drain()
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._buckets = []
