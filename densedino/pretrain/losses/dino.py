"""The DINO self-distillation loss and its teacher targets (centering or Sinkhorn-Knopp).

The student's log-probabilities ``log_softmax(s / 0.1)`` are matched by cross-entropy to teacher
probabilities made by either

* centering + sharpening (DINOv1): ``softmax((t - c) / tau_t)``, ``c`` an EMA (momentum 0.9) of
  the global batch mean of the teacher logits, kept as a buffer so checkpoints keep it; or
* Sinkhorn-Knopp (DINOv2 large models, DINOv3): ``exp(t / tau_t)`` renormalised alternately
  over prototypes and samples (3 iterations) towards equipartition of the prototypes.

Everything is computed in fp32. Only the teacher-side helpers talk to ``torch.distributed``
(all-reduced sums/counts when a process group is initialised); the cross-entropy itself is local.

References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024.
    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments" (SwAV), NeurIPS 2020 (Sinkhorn-Knopp).
"""
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from torch import Tensor, nn

from ...registry import MODELS

NORMALIZATIONS = ('dinov2', 'pairs')


def _summed(x: Tensor) -> Tensor:
    """``x`` summed over the processes (in place; ``x`` itself in a single process)."""
    all_reduce(x)
    return x


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: Tensor, teacher_temp: float, n_iterations: int = 3) -> Tensor:
    """Sinkhorn-Knopp teacher targets, the DINOv2 variant.

    ``Q = exp(logits / temp).T`` (K, B) is scaled to total mass 1, then ``n_iterations`` times its
    rows (prototypes) are scaled to sum 1/K and its columns (samples) to 1/B; finally each column
    is scaled to sum 1. B is the global number of samples and row/total sums are all-reduced when
    distributed. The global max logit is subtracted before ``exp`` (a constant factor that the
    first normalisation removes) so that low temperatures cannot overflow.

    Args:
        teacher_logits: (B, K) teacher logits of this rank.
        teacher_temp: teacher temperature (> 0).
        n_iterations: number of row/column normalisation rounds (>= 1).

    Returns:
        (B, K) fp32 targets; each row is a probability distribution.
    """
    if teacher_temp <= 0:
        raise ValueError(f'teacher_temp must be > 0, got {teacher_temp}')
    if teacher_logits.dim() != 2:
        raise ValueError(f'teacher_logits must be (B, K), got {tuple(teacher_logits.shape)}')
    if n_iterations < 1:
        raise ValueError(f'n_iterations must be >= 1, got {n_iterations}')
    logits = teacher_logits.float() / teacher_temp
    shift = logits.max().reshape(1)
    all_reduce(shift, 'max')  # mmengine's collectives: in place, a no-op in a single process
    q = torch.exp(logits - shift).t()  # (K, B)
    n_prototypes = q.shape[0]
    n_samples = torch.tensor(float(q.shape[1]), device=q.device)
    all_reduce(n_samples)
    q /= _summed(q.sum())
    for _ in range(n_iterations):
        q /= _summed(q.sum(dim=1, keepdim=True))
        q /= n_prototypes
        q /= q.sum(dim=0, keepdim=True)
        q /= n_samples
    q *= n_samples
    return q.t()


class CenteredTeacherLoss(nn.Module):
    """Base for DINO/iBOT losses: the EMA center buffer and the two teacher-target makers.

    Args:
        out_dim: number of prototypes K.
        student_temp: student temperature.
        center_momentum: EMA momentum of the center.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f'out_dim must be >= 1, got {out_dim}')
        if student_temp <= 0:
            raise ValueError(f'student_temp must be > 0, got {student_temp}')
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f'center_momentum must be in [0, 1], got {center_momentum}')
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer('center', torch.zeros(1, out_dim))

    @torch.no_grad()
    def softmax_center_teacher(self, teacher_logits: Tensor, teacher_temp: float) -> Tensor:
        """``softmax((t - center) / teacher_temp)`` in fp32, (..., K) -> (..., K)."""
        if teacher_temp <= 0:
            raise ValueError(f'teacher_temp must be > 0, got {teacher_temp}')
        return F.softmax((teacher_logits.float() - self.center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(self, teacher_logits: Tensor, teacher_temp: float,
                               n_iterations: int = 3) -> Tensor:
        """Sinkhorn-Knopp targets (B, K) for teacher logits (B, K); see :func:`sinkhorn_knopp`."""
        return sinkhorn_knopp(teacher_logits, teacher_temp, n_iterations)

    @torch.no_grad()
    def update_center(self, teacher_logits: Union[Tensor, Sequence[Tensor]]) -> None:
        """EMA update ``c <- m c + (1 - m) mean(t)`` with the mean over the global batch.

        Args:
            teacher_logits: (B, K) logits, or a sequence of them (e.g. one per global crop),
                all rows pooled. Sums and counts are all-reduced when distributed. With no row
                in the whole (global) batch the center is kept.
        """
        if not isinstance(teacher_logits, Tensor):
            teacher_logits = torch.cat(list(teacher_logits))
        logits = teacher_logits.float().reshape(-1, self.out_dim)
        total = _summed(logits.sum(dim=0, keepdim=True))
        count = _summed(torch.tensor(float(logits.shape[0]), device=logits.device))
        # no rows anywhere (iBOT: no patch masked in the whole batch, likely with small
        # per-process batches): keep the center; 0 / 0 would make it NaN for the rest of the run
        updated = self.center * self.center_momentum + \
            total / count.clamp(min=1) * (1 - self.center_momentum)
        self.center.copy_(torch.where(count > 0, updated, self.center))

    def log_probs(self, student_logits: Tensor) -> Tensor:
        """``log_softmax(s / student_temp)`` in fp32, (..., K) -> (..., K)."""
        return F.log_softmax(student_logits.float() / self.student_temp, dim=-1)

    def cross_entropy(self, student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
        """Per-sample ``-sum_k p_t log_softmax(s / student_temp)``, (..., K) -> (...)."""
        return -(teacher_probs.float() * self.log_probs(student_logits)).sum(dim=-1)


@MODELS.register_module()
class DINOLoss(CenteredTeacherLoss):
    """DINO loss on class-token logits: cross-entropy summed over all pairs of different views,
    divided by a number of terms.

    With ``n_t`` teacher (global) views and ``n_l`` further (local) student views the sum holds
    ``n_t (n_t - 1) + n_l n_t`` pair terms (each a batch mean). ``normalization`` sets the
    divisor:

    * ``'dinov2'``: ``n_t (n_t - 1) + max(n_l n_t, 1)``, as DINOv2's training code divides (its
      local term count is at least 1). With local crops this is the number of pairs; without
      any, 2 global crops give 2 terms divided by 3.
    * ``'pairs'``: the number of pairs, a mean (DINOv1; DINOv3, whose code requires local
      crops, so the two agree there).

    Args:
        out_dim: number of prototypes K.
        student_temp: student temperature (0.1).
        center_momentum: EMA momentum of the center (0.9).
        normalization: ``'dinov2'`` or ``'pairs'`` (above).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 normalization: str = 'dinov2') -> None:
        super().__init__(out_dim, student_temp, center_momentum)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got '
                             f'{normalization!r}')
        self.normalization = normalization

    def forward(self, student_logits_list: Sequence[Tensor],
                teacher_probs_list: Sequence[Tensor]) -> Tensor:
        """Cross-entropy over (teacher view, student view) pairs of different views.

        Student view ``i`` for ``i < len(teacher_probs_list)`` is the same crop as teacher view
        ``i`` (the global crops come first) and that pair is skipped: 2 global teacher views x
        10 student views give 20 - 2 = 18 terms. Each term is the batch mean; their sum is
        divided as ``normalization`` says (18 here either way).

        Args:
            student_logits_list: per view (B, K) student logits (global crops first).
            teacher_probs_list: per global view (B, K) teacher targets (from
                :meth:`softmax_center_teacher` or :meth:`sinkhorn_knopp_teacher`).

        Returns:
            Scalar fp32 loss.
        """
        if len(teacher_probs_list) > len(student_logits_list):
            raise ValueError(f'{len(teacher_probs_list)} teacher views but only '
                             f'{len(student_logits_list)} student views')
        # one log_softmax per student view, shared by its pairs with every teacher view
        log_qs = [self.log_probs(logits) for logits in student_logits_list]
        total, n_terms = 0.0, 0
        for t_idx, probs in enumerate(teacher_probs_list):
            probs = probs.float()
            for s_idx, log_q in enumerate(log_qs):
                if s_idx == t_idx:
                    continue
                total = total - (probs * log_q).sum(dim=-1).mean()
                n_terms += 1
        if n_terms == 0:
            raise ValueError('no pair of different views: need >= 2 student views, got '
                             f'{len(student_logits_list)}')
        return total / self.n_divisor(len(teacher_probs_list), len(student_logits_list))

    def n_divisor(self, n_teacher_views: int, n_student_views: int) -> int:
        """The divisor of the summed pair terms (see the class docstring)."""
        n_global_terms = n_teacher_views * (n_teacher_views - 1)
        n_local_terms = (n_student_views - n_teacher_views) * n_teacher_views
        if self.normalization == 'dinov2':
            return n_global_terms + max(n_local_terms, 1)
        return n_global_terms + n_local_terms
