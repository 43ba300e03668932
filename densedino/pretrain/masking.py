"""Block masking of patch grids for iBOT (BEiT-style) and per-batch mask sampling.

:class:`MaskingGenerator` masks a requested number of patches of an (h, w) grid by placing random
rectangles: each has a target area drawn uniformly between ``min_num_patches`` (4) and the number
still to mask (capped by ``max_num_patches``) and an aspect ratio drawn log-uniformly in
[0.3, 1/0.3]; sides are rounded, so a block can come out slightly smaller than its target area
(e.g. 1 x 3 for a target of 4), as in BEiT; redrawing such blocks instead makes masks fall short
of their target about twice as often. A rectangle is accepted when it adds between 1 and the
remaining number of new patches (overlaps allowed); ``max_attempts`` failed draws in a row end
the mask early, so a mask may fall short of its target by a few patches (it never exceeds it).

:func:`sample_masks` masks round(``mask_probability`` x n) images of a batch (which ones is
random), with mask ratios stratified in ``ratio_range``: the range is cut into as many equal bins
as masked images and one ratio is drawn per bin (as DINOv2's collate does). The rest are
unmasked.

References:
    Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022.
    Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022.
"""
import math
from typing import Optional, Tuple, Union

import numpy as np
import torch

Grid = Union[int, Tuple[int, int]]
RandomSource = Union[None, int, np.random.Generator, torch.Generator]


def _grid(grid: Grid) -> Tuple[int, int]:
    h, w = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if h < 1 or w < 1:
        raise ValueError(f'grid must be (h >= 1, w >= 1), got {grid}')
    return int(h), int(w)


def as_numpy_rng(rng: RandomSource) -> np.random.Generator:
    """A numpy Generator from a seed, a numpy Generator (returned as is) or a torch Generator.

    A torch Generator is advanced by one draw that seeds the numpy Generator, so a seeded torch
    Generator gives reproducible masks. None gives fresh OS entropy.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng).item())
        return np.random.default_rng(seed)
    if rng is None or isinstance(rng, int):
        return np.random.default_rng(rng)
    raise ValueError(f'rng must be None, an int, a numpy or a torch Generator, got {type(rng)}')


class MaskingGenerator:
    """BEiT-style block masking on an (h, w) patch grid.

    Args:
        grid: patch grid (h, w) or one int for a square grid.
        min_num_patches: minimum target area of one block.
        max_num_patches: maximum target area of one block (unbounded when None).
        min_aspect: minimum block aspect ratio h/w; the maximum is ``max_aspect`` or
            ``1 / min_aspect``.
        max_aspect: maximum block aspect ratio.
        max_attempts: consecutive failed block draws that end a mask.
        rng: default random source of calls that pass none (seed, numpy or torch Generator),
            so that ``generator(n)`` alone is reproducible when seeded.
    """

    def __init__(self, grid: Grid, *, min_num_patches: int = 4,
                 max_num_patches: Optional[int] = None, min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None, max_attempts: int = 10,
                 rng: RandomSource = None) -> None:
        self.height, self.width = _grid(grid)
        max_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
        if not 0 < min_aspect <= max_aspect:
            raise ValueError(f'need 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}')
        if min_num_patches < 1:
            raise ValueError(f'min_num_patches must be >= 1, got {min_num_patches}')
        if max_num_patches is not None and max_num_patches < min_num_patches:
            raise ValueError(f'max_num_patches={max_num_patches} < min_num_patches='
                             f'{min_num_patches}')
        if max_attempts < 1:
            raise ValueError(f'max_attempts must be >= 1, got {max_attempts}')
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches or self.height * self.width
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect))
        self.max_attempts = max_attempts
        self.rng = as_numpy_rng(rng)

    @property
    def num_patches(self) -> int:
        return self.height * self.width

    def _place_block(self, mask: np.ndarray, max_new: int, rng: np.random.Generator) -> int:
        """Mask one random rectangle adding 1..max_new new patches; the number added (0: failed)."""
        for _ in range(self.max_attempts):
            area = rng.uniform(self.min_num_patches, max(max_new, self.min_num_patches))
            aspect = math.exp(rng.uniform(*self.log_aspect))
            bh = int(round(math.sqrt(area * aspect)))
            bw = int(round(math.sqrt(area / aspect)))
            if not (1 <= bh <= self.height and 1 <= bw <= self.width):
                continue
            top = int(rng.integers(0, self.height - bh + 1))
            left = int(rng.integers(0, self.width - bw + 1))
            block = mask[top:top + bh, left:left + bw]
            added = bh * bw - int(block.sum())
            if 0 < added <= max_new:
                block[...] = True
                return added
        return 0

    def __call__(self, num_masking_patches: int, rng: RandomSource = None) -> torch.Tensor:
        """A (h, w) bool mask with at most ``num_masking_patches`` True entries.

        Args:
            num_masking_patches: target number of masked patches (0 .. h * w).
            rng: seed or Generator (see :func:`as_numpy_rng`); ``self.rng`` when None.
        """
        if not 0 <= num_masking_patches <= self.num_patches:
            raise ValueError(f'num_masking_patches must be in [0, {self.num_patches}], got '
                             f'{num_masking_patches}')
        rng = self.rng if rng is None else as_numpy_rng(rng)
        mask = np.zeros((self.height, self.width), dtype=bool)
        count = 0
        while count < num_masking_patches:
            max_new = min(num_masking_patches - count, self.max_num_patches)
            added = self._place_block(mask, max_new, rng)
            if added == 0:
                break
            count += added
        return torch.from_numpy(mask)


def sample_masks(n_images: int, grid: Grid, *, mask_probability: float = 0.5,
                 ratio_range: Tuple[float, float] = (0.1, 0.5), rng: RandomSource = None,
                 generator: Optional[MaskingGenerator] = None) -> torch.Tensor:
    """Block masks for a batch of global crops, half of them masked with stratified ratios.

    Args:
        n_images: number of images (all global crops of the batch).
        grid: patch grid (h, w) or one int.
        mask_probability: fraction of images masked; round(n_images x p) (halves round up).
        ratio_range: (min, max) mask ratio; bin i of ``linspace(min, max, n_masked + 1)`` gives
            the i-th masked image a ratio drawn uniformly in it, target ``int(ratio x h x w)``.
        rng: seed or Generator (numpy or torch) for reproducibility.
        generator: block-masking generator for ``grid`` (default settings when None).

    Returns:
        (n_images, h * w) bool, True = masked.
    """
    h, w = _grid(grid)
    if n_images < 0:
        raise ValueError(f'n_images must be >= 0, got {n_images}')
    if not 0.0 <= mask_probability <= 1.0:
        raise ValueError(f'mask_probability must be in [0, 1], got {mask_probability}')
    lo, hi = ratio_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f'ratio_range must satisfy 0 <= min <= max <= 1, got {ratio_range}')
    generator = generator or MaskingGenerator((h, w))
    if (generator.height, generator.width) != (h, w):
        raise ValueError(f'generator grid {(generator.height, generator.width)} != grid {(h, w)}')
    rng = as_numpy_rng(rng)
    n_masked = int(math.floor(n_images * mask_probability + 0.5))
    edges = np.linspace(lo, hi, n_masked + 1)
    masks = torch.zeros(n_images, h * w, dtype=torch.bool)
    for i, image in enumerate(rng.permutation(n_images)[:n_masked]):
        ratio = rng.uniform(edges[i], edges[i + 1])
        masks[image] = generator(int(ratio * h * w), rng).flatten()
    return masks
