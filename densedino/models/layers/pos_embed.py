"""Position encodings: resampled absolute embeddings (DINOv1/v2) and 2-D RoPE (DINOv3)."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def resample_abs_pos_embed(pos_embed: torch.Tensor, grid_hw: Tuple[int, int], *,
                           offset: float = 0.0, antialias: bool = False) -> torch.Tensor:
    """Resample a square grid of patch position embeddings to ``grid_hw`` (bicubic, in fp32).

    In eager PyTorch this is ``F.interpolate(mode='bicubic')``. While a graph is exported
    (``torch.compiler.is_exporting()`` / ``torch.onnx.is_in_onnx_export()``) the same
    resampling is written as two interpolation matrices built with tensor ops from ``h`` and
    ``w`` (:func:`bicubic_resample_matrix`), ``out = A_h @ P @ A_w^T``, so an exported graph
    with a dynamic input size resamples exactly for every size (F.interpolate's scale would
    be a constant of the export size). The two agree to fp32 rounding (max difference about
    1e-6 of the largest value, as far apart as PyTorch's own fp32 and fp64 results); eager
    keeps F.interpolate, whose numbers the released models were evaluated with. One difference
    while exporting: a target grid equal to the trained one returns the embeddings unchanged,
    since ``DinoVisionTransformer`` skips the resampling for that size in eager mode, a branch
    on the input size that a dynamic graph cannot keep.

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
    h, w = grid_hw
    if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
        grid = pos_embed.float().reshape(side, side * dim)
        a_h = bicubic_resample_matrix(h, side, offset=offset, antialias=antialias)
        a_w = bicubic_resample_matrix(w, side, offset=offset, antialias=antialias)
        # the trained grid itself stays as it is: DinoVisionTransformer skips this call for it,
        # a branch on the input size that an exported graph cannot keep
        trained = (_size_tensor(h) == side) & (_size_tensor(w) == side)
        a_h = torch.where(trained, _identity(h, side), a_h)
        a_w = torch.where(trained, _identity(w, side), a_w)
        rows = (a_h @ grid).reshape(h, side, dim)  # (h, side, D)
        return (a_w @ rows).reshape(1, h * w, dim)  # (w, side) @ (h, side, D) -> (h, w, D)
    grid = pos_embed.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    if offset:
        size_kw = dict(scale_factor=((h + offset) / side, (w + offset) / side))
    else:
        size_kw = dict(size=(h, w))
    grid = F.interpolate(grid, mode='bicubic', antialias=antialias, **size_kw)
    if grid.shape[-2:] != (h, w):
        raise RuntimeError(f'resampled position grid {tuple(grid.shape[-2:])} != {(h, w)}')
    return grid.permute(0, 2, 3, 1).reshape(1, h * w, dim)


def _size_tensor(size) -> torch.Tensor:
    """A (possibly symbolic) size as a (1,) int64 tensor, built with tensor ops."""
    return torch.arange(size)[-1:] + 1


def _identity(size, side: int) -> torch.Tensor:
    """(size, side) float32 with ones where row == column."""
    rows = torch.arange(size, dtype=torch.float32)[:, None]
    return (rows == torch.arange(side, dtype=torch.float32)[None, :]).float()


def _cubic(x: torch.Tensor, a: float) -> torch.Tensor:
    """Keys' cubic convolution kernel at ``x`` (PyTorch's two polynomial pieces), 0 beyond 2."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _source_scale(out_size, in_size: int, offset: float) -> torch.Tensor:
    """Input pixels per output pixel, fp32, as PyTorch's upsampling kernels compute it:
    ``1 / scale_factor`` in double (scale_factor = (out + offset) / in) cast to float, or
    ``float(in) / out`` when the size is asked for (offset 0)."""
    out = _size_tensor(out_size)  # a tensor, so that an exported graph computes it per size
    if offset:
        return (1.0 / ((out.double() + offset) / in_size)).float()
    return torch.full_like(out, in_size, dtype=torch.float32) / out.float()


def bicubic_resample_matrix(out_size, in_size: int, *, offset: float = 0.0,
                            antialias: bool = False) -> torch.Tensor:
    """(out_size, in_size) weights of 1-D bicubic resampling with ``align_corners=False``.

    ``A @ x`` equals ``F.interpolate`` along one axis: A = -0.75 and border indices clamped
    (PyTorch's ``upsample_bicubic2d``), or with ``antialias`` PyTorch's antialiased bicubic
    (A = -0.5, support widened by the scale when downsampling, border taps dropped and every
    row normalised). ``out_size`` may be a symbolic size; everything is built with tensor ops.
    """
    scale = _source_scale(out_size, in_size, offset)
    dst = torch.arange(out_size, dtype=torch.float32)[:, None]
    cols = torch.arange(in_size, dtype=torch.float32)[None, :]
    if antialias:
        return _antialiased_matrix(dst, cols, scale, in_size)
    src = scale * (dst + 0.5) - 0.5
    index = torch.clamp(torch.floor(src), max=in_size - 1)
    t = torch.clamp(src - index, 0.0, 1.0)
    weights = torch.zeros_like(src * cols)
    for k in range(4):  # taps index - 1 .. index + 2, clamped to the border
        tap = torch.clamp(index + (k - 1), 0, in_size - 1)
        weights = weights + _cubic(t - (k - 1), -0.75) * (tap == cols).float()
    return weights


def _antialiased_matrix(dst: torch.Tensor, cols: torch.Tensor, scale: torch.Tensor,
                        in_size: int) -> torch.Tensor:
    """PyTorch's ``_upsample_bicubic2d_aa`` weights (``_compute_indices_min_size_weights_aa``)."""
    support = torch.where(scale >= 1.0, 2.0 * scale, torch.full_like(scale, 2.0))
    invscale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    center = scale * (dst + 0.5)
    first = torch.clamp(torch.floor(center - support + 0.5), min=0)
    stop = torch.clamp(torch.floor(center + support + 0.5), max=in_size)
    inside = ((cols >= first) & (cols < stop)).float()
    weights = _cubic((cols - center + 0.5) * invscale, -0.5) * inside
    total = weights.sum(dim=1, keepdim=True)
    weights = weights / torch.where(total != 0, total, torch.ones_like(total))
    # an axis whose size does not change is copied, whatever the scale factor
    same = _size_tensor(dst.shape[0]) == in_size
    return torch.where(same, (dst == cols).float(), weights)


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
