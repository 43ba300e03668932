"""Batching of multi-crop samples, with iBOT masks for the global crops.

Crops are stacked crop-major, as the DINO / iBOT losses expect: ``global_crops[c * B + b]`` is
crop ``c`` of image ``b``, and likewise for local and Gram crops.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import FUNCTIONS

from ..registry import MODELS
from .losses import masked_patch_weights
from .masking import MaskingGenerator, sample_masks


def _stack_crop_major(samples: Sequence[dict], key: str) -> torch.Tensor:
    counts = {len(s[key]) for s in samples}
    if len(counts) != 1:
        raise ValueError(f'all samples must have the same number of {key}, got {sorted(counts)}')
    n = counts.pop()
    if n == 0:
        return torch.empty(0)
    return torch.stack([s[key][c] for c in range(n) for s in samples])


def _mask_rng(samples: Sequence[dict], rng: np.random.Generator | None) -> np.random.Generator:
    if rng is not None:
        return rng
    seeds = [s.get('seed') for s in samples]
    if all(isinstance(seed, int) for seed in seeds):  # reproducible from the samples' own seeds
        return np.random.default_rng(np.random.SeedSequence([*seeds, 0x6D61736B]))
    return np.random.default_rng()


def _generator_for(spec: MaskingGenerator | dict, grid: tuple[int, int]) -> MaskingGenerator:
    """The generator itself, or one built for ``grid`` from a dict of its options (configs)."""
    if isinstance(spec, MaskingGenerator):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(f'mask_generator must be a MaskingGenerator or a dict of its options, '
                        f'got {type(spec).__name__}')
    options = {k: v for k, v in spec.items() if k != 'type'}
    return MaskingGenerator(grid, **options)


# Registered in mmengine's root FUNCTIONS (the Runner looks collate functions up there only), so
# a config can say ``collate_fn=dict(type='collate_multicrop', mask_generator=dict(), ...)``.
@FUNCTIONS.register_module(name='collate_multicrop')
def collate_multicrop(samples: Sequence[dict],
                      mask_generator: MaskingGenerator | dict | None = None,
                      mask_probability: float = 0.5,
                      mask_ratio_range: Sequence[float] = (0.1, 0.5), patch_size: int = 16,
                      rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
    """Collate :class:`~.augment.MultiCropAugmentation` outputs into a batch.

    Args:
        samples: B dicts with ``global_crops`` (n_global tensors (3, G, G)), ``local_crops``
            (n_local tensors (3, L, L)), optionally ``gram_crops``, ``label`` (int) and ``seed``.
        mask_generator: if given, build iBOT block masks for the global crops with it
            (:func:`~.masking.sample_masks`: round(2B x p) crops masked, ratios stratified);
            a dict of :class:`~.masking.MaskingGenerator` options (``{}`` for the defaults)
            builds one for the grid G / patch_size.
        mask_probability: fraction of the global crops that are masked.
        mask_ratio_range: (min, max) masked fraction, stratified over the masked crops.
        patch_size: the backbone's patch size; G must be a multiple of it.
        rng: random generator for the masks; ``None``: derived from the samples' ``seed`` when
            they all carry one (reproducible), else fresh OS entropy.

    Returns:
        ``global_crops`` (n_global * B, 3, G, G) and ``local_crops`` (n_local * B, 3, L, L),
        crop-major; ``gram_crops`` likewise when present; ``labels`` (B,) long when the samples
        carry ``label``; with a mask generator: ``masks`` (n_global * B, h * w) bool,
        ``mask_indices`` (M,) long flat indices into ``masks``, ``masks_weight`` (M,) float with
        1 / (its crop's masked count) per masked patch, and ``n_masked_patches`` (1,) long = M.
    """
    if len(samples) == 0:
        raise ValueError('collate_multicrop got an empty batch')
    batch = {'global_crops': _stack_crop_major(samples, 'global_crops'),
             'local_crops': _stack_crop_major(samples, 'local_crops')}
    if 'gram_crops' in samples[0]:
        batch['gram_crops'] = _stack_crop_major(samples, 'gram_crops')
    has_label = ['label' in s for s in samples]
    if any(has_label):
        if not all(has_label):
            raise ValueError(f'only {sum(has_label)} of {len(samples)} samples carry a label')
        batch['labels'] = torch.as_tensor([int(s['label']) for s in samples], dtype=torch.long)
    if mask_generator is not None:
        size = batch['global_crops'].shape[-1]
        if patch_size < 1 or size % patch_size:
            raise ValueError(f'global crop size {size} is not a multiple of patch_size '
                             f'{patch_size}')
        grid = (batch['global_crops'].shape[-2] // patch_size, size // patch_size)
        masks = sample_masks(len(batch['global_crops']), grid, mask_probability=mask_probability,
                             ratio_range=tuple(mask_ratio_range), rng=_mask_rng(samples, rng),
                             generator=_generator_for(mask_generator, grid))
        batch['masks'] = masks
        batch['mask_indices'] = masks.flatten().nonzero().flatten()
        batch['masks_weight'] = masked_patch_weights(masks)
        batch['n_masked_patches'] = torch.tensor([len(batch['mask_indices'])], dtype=torch.long)
    return batch


@MODELS.register_module()
class MultiCropDataPreprocessor(BaseDataPreprocessor):
    """Moves a :func:`~.collate.collate_multicrop` batch to the model's device (crops are already
    normalised by :class:`~.augment.MultiCropAugmentation`)."""

    def forward(self, data: dict, training: bool = False) -> dict:
        """Return ``data`` with every tensor on the model's device."""
        return self.cast_data(data)
