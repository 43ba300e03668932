"""iBOT block masking: counts, stratified ratios, determinism and block shapes."""
import numpy as np
import pytest
import torch

from densedino.pretrain import MaskingGenerator, sample_masks


def _is_filled_rectangle(mask: torch.Tensor) -> bool:
    rows, cols = mask.nonzero(as_tuple=True)
    box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return bool(box.all())


@pytest.mark.parametrize('grid', [(14, 14), (7, 9), (16, 12)])
def test_generator_counts_never_exceed_and_reach_target(grid):
    gen = MaskingGenerator(grid)
    n_patches = grid[0] * grid[1]
    rng = np.random.default_rng(0)
    exact = 0
    for target in rng.integers(int(0.1 * n_patches), int(0.5 * n_patches) + 1, size=200):
        mask = gen(int(target), rng)
        assert mask.shape == grid and mask.dtype == torch.bool
        count = int(mask.sum())
        # never more than asked; short by less than one minimum block when the draws run out
        assert target - gen.min_num_patches < count <= target
        exact += count == target
    assert exact >= 100  # usually reaches the exact target


def test_generator_exact_count_when_reached():
    gen = MaskingGenerator((14, 14), rng=3)
    masks = [gen(40) for _ in range(20)]
    assert any(int(m.sum()) == 40 for m in masks)
    assert all(int(m.sum()) <= 40 for m in masks)
    assert int(gen(0).sum()) == 0
    with pytest.raises(ValueError, match='got 197'):
        gen(197)


def test_single_block_is_a_rectangle_with_bounded_aspect():
    gen = MaskingGenerator((6, 7))
    rng = np.random.default_rng(1)
    shapes = set()
    for _ in range(100):
        mask = gen(4, rng)
        if not mask.any():
            continue
        assert _is_filled_rectangle(mask)
        rows, cols = mask.nonzero(as_tuple=True)
        shape = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
        assert 1 / 4 <= shape[0] / shape[1] <= 4  # rounded log-uniform aspect in [0.3, 3.3]
        shapes.add(shape)
    assert {(2, 2), (1, 4), (4, 1)} <= shapes


def test_blocks_are_rectangles_when_placed_one_by_one():
    gen = MaskingGenerator((10, 11))
    rng = np.random.default_rng(2)
    for _ in range(50):
        mask = np.zeros((10, 11), dtype=bool)
        added = gen._place_block(mask, 20, rng)
        assert 0 < added <= 20 and added == mask.sum()
        assert _is_filled_rectangle(torch.from_numpy(mask))


@pytest.mark.parametrize('n_images,n_masked', [(8, 4), (5, 3), (2, 1), (1, 1), (0, 0)])
def test_half_of_the_images_are_masked(n_images, n_masked):
    masks = sample_masks(n_images, (14, 14), rng=0)
    assert masks.shape == (n_images, 196) and masks.dtype == torch.bool
    assert int(masks.any(dim=1).sum()) == n_masked


def test_ratios_stratified_in_range():
    grid, n_images = (20, 20), 8
    n_patches = 400
    for seed in range(5):
        counts = sample_masks(n_images, grid, rng=seed).sum(dim=1)
        masked = torch.sort(counts[counts > 0]).values
        assert len(masked) == 4
        edges = np.linspace(0.1, 0.5, 5) * n_patches  # one ratio drawn per bin
        for i, count in enumerate(masked.tolist()):
            assert edges[i] - 4 < count <= edges[i + 1]
        assert masked.min() >= 0.1 * n_patches - 3 and masked.max() <= 0.5 * n_patches


def test_masks_deterministic_with_seeds():
    a = sample_masks(6, (7, 9), rng=123)
    torch.testing.assert_close(a, sample_masks(6, (7, 9), rng=123))
    torch.testing.assert_close(a, sample_masks(6, (7, 9), rng=np.random.default_rng(123)))
    t1 = sample_masks(6, (7, 9), rng=torch.Generator().manual_seed(5))
    t2 = sample_masks(6, (7, 9), rng=torch.Generator().manual_seed(5))
    torch.testing.assert_close(t1, t2)
    assert not torch.equal(a, sample_masks(6, (7, 9), rng=124))
    g1, g2 = MaskingGenerator(8, rng=7), MaskingGenerator(8, rng=7)
    assert all(torch.equal(g1(20), g2(20)) for _ in range(5))


def test_argument_errors_name_the_value():
    with pytest.raises(ValueError, match='got 1.5'):
        sample_masks(4, 14, mask_probability=1.5)
    with pytest.raises(ValueError, match=r'got \(0.5, 0.1\)'):
        sample_masks(4, 14, ratio_range=(0.5, 0.1))
    with pytest.raises(ValueError, match='generator grid'):
        sample_masks(4, 14, generator=MaskingGenerator(8))
    with pytest.raises(ValueError, match='got -0.5'):
        MaskingGenerator(8, min_aspect=-0.5)
