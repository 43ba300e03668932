"""Depth losses: the scale-invariant log loss (``SigLoss``) and multi-scale ``GradientLoss``.

Both are called by ``DepthHead`` as ``loss(pred, gt, valid_mask)`` with (B, 1, H, W) tensors
(the prediction already resized to the ground truth) and pool the valid pixels of the whole
batch, as the Monocular-Depth-Estimation-Toolbox that DINOv2 evaluates with does: a batch gives
the value of one image made of all its images' valid pixels, not the mean of per-image losses.

References:
    Eigen et al., "Depth Map Prediction from a Single Image using a Multi-Scale Deep Network",
    NeurIPS 2014 (scale-invariant log error). Bhat et al., "AdaBins", CVPR 2021 (the
    sqrt(var + 0.15 mean^2) form DINOv2 uses). Li and Snavely, "MegaDepth", CVPR 2018 and
    Ranftl et al., "MiDaS", TPAMI 2020 (multi-scale gradient matching).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub
from torch import Tensor, nn

from ...registry import MODELS

SIG_VARIANTS = ('dinov2', 'lambda')
# sqrt is not differentiable at 0; values below this are raised to it (a loss < 1e-6).
_SQRT_FLOOR = 1e-12


def _check_inputs(pred: Tensor, gt: Tensor, valid_mask: Optional[Tensor]) -> Tensor:
    """The valid mask (``gt > 0`` when None) after checking that shapes agree."""
    if pred.shape != gt.shape:
        raise ValueError(f'pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape')
    if valid_mask is None:
        return gt > 0
    if valid_mask.shape != gt.shape:
        raise ValueError(f'valid_mask {tuple(valid_mask.shape)} and gt {tuple(gt.shape)} '
                         'differ in shape')
    return valid_mask.bool()


def _check_loss_name(loss_name: str) -> None:
    if not loss_name.startswith('loss_'):
        raise ValueError(f"loss_name must start with 'loss_' (mmengine only backpropagates "
                         f'those), got {loss_name!r}')


def log_difference(pred: Tensor, gt: Tensor, eps: float) -> Tensor:
    """``log(pred + eps) - log(gt + eps)`` in float32 (the toolbox's eps = 1e-3)."""
    return torch.log(pred.float() + eps) - torch.log(gt.float() + eps)


def training_iteration() -> Optional[int]:
    """The runner's current training iteration, or None outside a running training loop.

    mmengine's ``RuntimeInfoHook`` stores ``iter`` (iterations done, so 0 in the first one) and
    ``loop_stage`` in the current ``MessageHub``; ``loop_stage`` is removed when training ends,
    so a hub left over by an earlier runner is not mistaken for a running one.
    """
    hub = MessageHub.get_current_instance()
    if hub.get_info('loop_stage') != 'train':
        return None
    return hub.get_info('iter')


@MODELS.register_module()
class SigLoss(nn.Module):
    """Scale-invariant log loss on valid pixels, pooled over the batch.

    With ``g = log(pred + eps) - log(gt + eps)`` over the valid pixels of the batch:

    * ``variant='dinov2'`` (DINOv2 / depth toolbox, after AdaBins):
      ``sqrt(var(g) + 0.15 mean(g)^2)``, ``var`` unbiased (``torch.var``'s default, divisor
      n - 1) as the toolbox computes it; a single valid pixel gives ``var = 0``.
      With ``warm_up``, the first ``warm_iter`` iterations use ``sqrt(0.15 mean(g)^2)`` only.
    * ``variant='lambda'`` (mmseg ``SiLogLoss`` / Depth-Anything):
      ``sqrt(mean(g^2) - lambd mean(g)^2)``. mmseg differs from this in three ways: it averages
      the loss per image then over the batch (we pool, as Depth-Anything does), clamps pred and
      gt at ``eps`` instead of adding it, and takes its valid pixels as ``gt > eps`` only.
      Depth-Anything adds no eps (``eps=0``).

    Warm-up counts training iterations: the runner's (``training_iteration``, so a resumed run
    continues where it stopped) while a runner trains, else the calls of this module (as the
    toolbox counts). The call counter is a plain attribute, not in the state dict.

    Args:
        loss_weight: Factor on the loss (DINOv2's depth evaluation uses 10, DINOv3 1).
        variant: ``'dinov2'`` or ``'lambda'`` (above).
        lambd: Weight of the squared mean for ``variant='lambda'``, in [0, 1].
        warm_up: Use the warm-up form for the first ``warm_iter`` iterations (``'dinov2'`` only).
        warm_iter: Number of warm-up iterations.
        eps: Added to pred and gt before the log (toolbox: 1e-3, "avoid grad explode").
        loss_name: Key of the loss in the loss dict (must start with ``loss_``).
    """

    def __init__(self, *, loss_weight: float = 1.0, variant: str = 'dinov2', lambd: float = 0.5,
                 warm_up: bool = False, warm_iter: int = 100, eps: float = 1e-3,
                 loss_name: str = 'loss_depth') -> None:
        super().__init__()
        if variant not in SIG_VARIANTS:
            raise ValueError(f'variant must be one of {SIG_VARIANTS}, got {variant!r}')
        if not 0.0 <= lambd <= 1.0:
            raise ValueError(f'lambd must be in [0, 1], got {lambd}')
        if warm_up and variant != 'dinov2':
            raise ValueError(f"warm_up applies to variant='dinov2' only, got variant={variant!r}")
        if warm_iter < 0:
            raise ValueError(f'warm_iter must be >= 0, got {warm_iter}')
        if eps < 0:
            raise ValueError(f'eps must be >= 0, got {eps}')
        _check_loss_name(loss_name)
        self.loss_weight, self.variant, self.lambd = float(loss_weight), variant, float(lambd)
        self.warm_up, self.warm_iter, self.eps = warm_up, int(warm_iter), float(eps)
        self._loss_name = loss_name
        self.calls = 0

    @property
    def loss_name(self) -> str:
        """Key of this loss in the loss dict."""
        return self._loss_name

    def in_warm_up(self) -> bool:
        """Whether the current iteration uses the warm-up form."""
        if not self.warm_up:
            return False
        step = training_iteration()
        return (self.calls if step is None else step) < self.warm_iter

    def forward(self, pred: Tensor, gt: Tensor, valid_mask: Optional[Tensor] = None) -> Tensor:
        """Weighted loss of (B, 1, H, W) ``pred`` against ``gt`` on ``valid_mask`` (default gt > 0).

        Returns a scalar; 0 (still attached to ``pred``'s graph) when no pixel is valid.
        """
        valid = _check_inputs(pred, gt, valid_mask)
        warm = self.in_warm_up()
        self.calls += 1
        g = log_difference(pred[valid], gt[valid], self.eps)
        n = g.numel()
        if n == 0:
            return pred.sum() * 0.0
        mean = g.mean()
        if warm:
            value = 0.15 * mean ** 2
        elif self.variant == 'dinov2':
            var = ((g - mean) ** 2).sum() / max(n - 1, 1)
            value = var + 0.15 * mean ** 2
        else:
            value = (g ** 2).mean() - self.lambd * mean ** 2
        return self.loss_weight * value.clamp(min=_SQRT_FLOOR).sqrt()

    def extra_repr(self) -> str:
        return (f'variant={self.variant!r}, loss_weight={self.loss_weight}, warm_up={self.warm_up}'
                f', warm_iter={self.warm_iter}, eps={self.eps}, loss_name={self.loss_name!r}')


def gradient_terms(pred: Tensor, gt: Tensor, valid_mask: Tensor, *, strides: Sequence[int],
                   offset: int, eps: float) -> Tuple[Tensor, Tensor]:
    """Per-scale sums of log-difference gradients and numbers of valid pixels, per image.

    At scale ``s`` the maps are subsampled as ``x[..., ::s, ::s]``; ``d = log(pred + eps) -
    log(gt + eps)``; a gradient is ``|d[i + offset] - d[i]|`` along H and along W, counted only
    where both pixels are valid.

    Args:
        pred, gt: (B, 1, H, W) (any (B, ..., H, W) works).
        valid_mask: Bool, same shape.
        strides: Subsampling stride of each scale.
        offset: Distance of the two pixels of a gradient (MiDaS 1, MegaDepth / toolbox 2).
        eps: Added before the log.

    Returns:
        (sums, counts): each (B, S) float32, S = ``len(strides)``.
    """
    d = torch.where(valid_mask, log_difference(pred, gt, eps), 0.0)
    sums, counts = [], []
    for s in strides:
        ds, ms = d[..., ::s, ::s], valid_mask[..., ::s, ::s]
        gy = (ds[..., offset:, :] - ds[..., :-offset, :]).abs() * (ms[..., offset:, :] &
                                                                  ms[..., :-offset, :])
        gx = (ds[..., offset:] - ds[..., :-offset]).abs() * (ms[..., offset:] & ms[..., :-offset])
        sums.append(gy.flatten(1).sum(1) + gx.flatten(1).sum(1))
        counts.append(ms.flatten(1).sum(1).float())
    return torch.stack(sums, dim=1), torch.stack(counts, dim=1)


@MODELS.register_module()
class GradientLoss(nn.Module):
    """Multi-scale gradient matching of log depth on valid pixels (MegaDepth / MiDaS).

    ``loss = sum over scales of (sum of valid gradients) / (number of valid pixels)``, both
    summed over the batch first (a batch equals the pool of its images; MiDaS's batch-based
    reduction). Like the toolbox and MiDaS it normalises by the valid pixels of the scale, not
    by the number of gradient pairs. Scale invariant: ``pred = c * gt`` gives 0 (up to eps).

    Defaults are MiDaS's geometry (strides 1, 2, 4, 8; adjacent pixels). The depth toolbox /
    DINOv2 ``GradientLoss`` is ``strides=(1, 2, 4, 6), offset=2`` (it subsamples by ``2 * i``
    and differences pixels two apart); its slicing assumes 2-D maps and on (B, 1, H, W) batches
    slices the batch dimension, which is not reproduced.

    Args:
        loss_weight: Factor on the loss.
        strides: Subsampling stride of each scale.
        offset: Distance of the two pixels of a gradient.
        eps: Added to pred and gt before the log.
        loss_name: Key of the loss in the loss dict (must start with ``loss_``).
    """

    def __init__(self, *, loss_weight: float = 1.0, strides: Sequence[int] = (1, 2, 4, 8),
                 offset: int = 1, eps: float = 1e-3, loss_name: str = 'loss_grad') -> None:
        super().__init__()
        strides = tuple(int(s) for s in strides)
        if not strides or min(strides) < 1:
            raise ValueError(f'strides must be positive integers, got {strides}')
        if offset < 1:
            raise ValueError(f'offset must be >= 1, got {offset}')
        if eps < 0:
            raise ValueError(f'eps must be >= 0, got {eps}')
        _check_loss_name(loss_name)
        self.loss_weight, self.strides, self.offset = float(loss_weight), strides, int(offset)
        self.eps = float(eps)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Key of this loss in the loss dict."""
        return self._loss_name

    def forward(self, pred: Tensor, gt: Tensor, valid_mask: Optional[Tensor] = None) -> Tensor:
        """Weighted loss of (B, 1, H, W) ``pred`` against ``gt`` on ``valid_mask`` (default gt > 0).

        Returns a scalar; 0 (still attached to ``pred``'s graph) when no pixel is valid.
        """
        valid = _check_inputs(pred, gt, valid_mask)
        sums, counts = gradient_terms(pred, gt, valid, strides=self.strides,
                                      offset=self.offset, eps=self.eps)
        sums, counts = sums.sum(0), counts.sum(0)
        # scales without a valid pair give 0, still attached to pred's graph (no host sync)
        per_scale = torch.where(counts > 0, sums / counts.clamp(min=1), 0.0)
        return self.loss_weight * per_scale.sum()

    def extra_repr(self) -> str:
        return (f'loss_weight={self.loss_weight}, strides={self.strides}, offset={self.offset}, '
                f'eps={self.eps}, loss_name={self.loss_name!r}')
