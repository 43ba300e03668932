"""Position encodings: resampled absolute embeddings (DINOv1/v2) and 2-D RoPE (DINOv3)."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def resample_abs_pos_embed(pos_embed: torch.Tensor, grid_hw: Tuple[int, int], *,
                           offset: float = 0.0, antialias: bool = False) -> torch.Tensor:
    """Resample a square grid of patch position embeddings to ``grid_hw`` (bicubic, in fp32).

    Args:
        pos_embed: (1, N, D) patch position embeddings of a sqrt(N) x sqrt(N) grid (no class slot).
        grid_hw: Target token grid (h, w).
        offset: DINOv1 and DINOv2 (without registers) scale by ``(h + 0.1) / sqrt(N)`` instead of
            asking for the size; kept on purpose, it changes the sampling positions slightly.
        antialias: DINOv2 with registers resamples with antialiasing.

    Returns:
        (1, h * w, D) in fp32.
    """
    n, dim = pos_embed.shape[1:]
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f'position embedding holds {n} patch positions, not a square grid')
    grid = pos_embed.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    h, w = grid_hw
    if offset:
        size_kw = dict(scale_factor=((h + offset) / side, (w + offset) / side))
    else:
        size_kw = dict(size=(h, w))
    grid = F.interpolate(grid, mode='bicubic', antialias=antialias, **size_kw)
    if grid.shape[-2:] != (h, w):
        raise RuntimeError(f'resampled position grid {tuple(grid.shape[-2:])} != {(h, w)}')
    return grid.permute(0, 2, 3, 1).reshape(1, h * w, dim)


def rope_rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rope_apply(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., N, hd) by angles given as sin/cos of shape (N, hd)."""
    return x * cos + rope_rotate_half(x) * sin


class RopePositionEmbedding(nn.Module):
    """DINOv3 axial 2-D rotary embedding over patch centres normalised to [-1, 1] per axis.

    The buffer ``periods`` (head_dim / 4 values, ``base ** (2j / (head_dim / 2))``) is part of
    official checkpoints and is loaded from them.

    DINOv3 trains with random coordinate augmentations, drawn once per forward (one draw for the
    whole batch, from torch's default generator on the buffer's device) and applied in training
    mode only, in this order to the normalised coordinates ``c`` (h * w, 2):

    * shift: ``c + u``, ``u`` (2,) uniform in [-shift, shift], one value per axis;
    * jitter: ``c * f``, ``f`` (2,) log-uniform in [1 / jitter, jitter], one factor per axis;
    * rescale: ``c * s``, ``s`` log-uniform in [1 / rescale, rescale], one factor for both axes.

    ``None`` turns an augmentation off (nothing is drawn). DINOv3's released training configs
    use ``rescale_coords=2`` and neither shift nor jitter. In eval mode the coordinates are the
    patch centres whatever the options.

    Args:
        head_dim: Per-head width; must be a multiple of 4.
        base: Period base (100 for every released DINOv3 model).
        shift_coords: Largest coordinate shift (>= 0), or None.
        jitter_coords: Largest per-axis factor (>= 1), or None.
        rescale_coords: Largest common factor (>= 1), or None.
    """

    def __init__(self, *, head_dim: int, base: float = 100.0,
                 shift_coords: Optional[float] = None, jitter_coords: Optional[float] = None,
                 rescale_coords: Optional[float] = None) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f'RoPE needs a head dim divisible by 4, got {head_dim}')
        if shift_coords is not None and not shift_coords >= 0:
            raise ValueError(f'shift_coords must be >= 0 or None, got {shift_coords}')
        for name, value in (('jitter_coords', jitter_coords), ('rescale_coords', rescale_coords)):
            if value is not None and not value >= 1:
                raise ValueError(f'{name} must be >= 1 or None, got {value}')
        self.head_dim = head_dim
        self.base = base
        self.shift_coords = shift_coords
        self.jitter_coords = jitter_coords
        self.rescale_coords = rescale_coords
        self.register_buffer('periods', self.default_periods(), persistent=True)

    def default_periods(self) -> torch.Tensor:
        j = torch.arange(self.head_dim // 4, dtype=torch.float32)
        return self.base ** (2 * j / (self.head_dim // 2))

    def coords(self, h: int, w: int) -> torch.Tensor:
        """Patch coordinates (h * w, 2) as (y, x), fp32: the centres in [-1, 1] per axis, then
        the training-time augmentations (in training mode, for the options that are set)."""
        dev = self.periods.device
        ys = torch.arange(0.5, h, device=dev, dtype=torch.float32) / h
        xs = torch.arange(0.5, w, device=dev, dtype=torch.float32) / w
        coords = torch.stack(torch.meshgrid(ys, xs, indexing='ij'), dim=-1).flatten(0, 1)
        coords = 2.0 * coords - 1.0
        if not self.training:
            return coords
        if self.shift_coords is not None:
            shift = torch.empty(2, device=dev).uniform_(-self.shift_coords, self.shift_coords)
            coords = coords + shift
        if self.jitter_coords is not None:
            coords = coords * _log_uniform(2, self.jitter_coords, dev)
        if self.rescale_coords is not None:
            coords = coords * _log_uniform(1, self.rescale_coords, dev)
        return coords

    def forward(self, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (sin, cos), each (h * w, head_dim), fp32."""
        coords = self.coords(h, w)
        angles = 2 * math.pi * coords[:, :, None] / self.periods.float()[None, None, :]
        angles = angles.flatten(1, 2).tile(2)
        return torch.sin(angles), torch.cos(angles)


def _log_uniform(n: int, limit: float, device: torch.device) -> torch.Tensor:
    """(n,) factors whose logs are uniform in [-log limit, log limit], fp32."""
    log_limit = math.log(limit)
    return torch.empty(n, device=device).uniform_(-log_limit, log_limit).exp()
