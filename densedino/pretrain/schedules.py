"""Per-iteration schedules of the pretraining model: teacher EMA momentum, teacher temperature
and the Gram loss weight (the learning rate and weight decay are mmengine parameter schedulers).

Each is a pure function of the iteration, so a resumed run continues exactly.
"""
import math


def cosine_momentum(base: float, iteration: int, max_iters: int) -> float:
    """Teacher EMA momentum ``1 - (1 - base) (cos(pi it / max_iters) + 1) / 2``: base -> 1."""
    if max_iters <= 0:
        return base
    progress = min(max(iteration / max_iters, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def warmup_teacher_temp(iteration: int, start: float, end: float, warmup_iters: int) -> float:
    """Teacher temperature, linear from ``start`` to ``end`` over ``warmup_iters``, then ``end``."""
    if warmup_iters <= 0 or iteration >= warmup_iters:
        return end
    return start + (end - start) * iteration / warmup_iters


def gram_weight(iteration: int, weight: float, start: int, warmup_iters: int) -> float:
    """Gram loss weight: 0 before ``start``, then linear to ``weight`` over ``warmup_iters``."""
    if iteration < start:
        return 0.0
    if warmup_iters <= 0:
        return weight
    return weight * min(1.0, (iteration - start + 1) / warmup_iters)
