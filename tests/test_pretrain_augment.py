"""Multi-crop augmentation, multi-crop collate and the unlabeled image folder (pretraining data)."""
import functools
import logging

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densedino.datasets import DatasetError, write_ade20k
from densedino.pretrain.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCropAugmentation,
    adjust_color,
    sample_crop_box,
)
from densedino.pretrain.collate import collate_multicrop
from densedino.pretrain.datasets import UnlabeledImageFolder, sample_seed

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)
PLAIN = dict(flip_probability=0.0, color_jitter_probability=0.0, grayscale_probability=0.0,
             blur_probabilities=(0.0, 0.0, 0.0), solarize_probability=0.0)


def _image(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """A smooth colourful image plus a little noise, uint8 (h, w, 3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin((x + y) / 15.0)], axis=2)
    noise = np.random.default_rng(seed).normal(0, 0.03, base.shape)
    return (np.clip(base + noise, 0, 1) * 255).round().astype(np.uint8)


def _denorm(x: torch.Tensor) -> torch.Tensor:
    return x * STD + MEAN


def _small(**kwargs) -> MultiCropAugmentation:
    return MultiCropAugmentation(**{'global_size': 32, 'local_size': 16, 'n_local': 3, **kwargs})


def test_output_shapes_dtypes_and_normalisation():
    out = MultiCropAugmentation(gram_size=448)(_image(), rng=0)
    assert [tuple(t.shape) for t in out['global_crops']] == [(3, 224, 224)] * 2
    assert [tuple(t.shape) for t in out['local_crops']] == [(3, 96, 96)] * 8
    assert [tuple(t.shape) for t in out['gram_crops']] == [(3, 448, 448)] * 2
    for t in out['global_crops'] + out['local_crops'] + out['gram_crops']:
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    # A constant image without photometric changes becomes (c / 255 - mean) / std exactly.
    colour = np.array([200, 30, 120], np.uint8)
    flat = np.broadcast_to(colour, (50, 70, 3)).copy()
    crops = _small(**PLAIN)(flat, rng=1)
    expected = (torch.tensor(colour / 255.0, dtype=torch.float32).view(3, 1, 1) - MEAN) / STD
    for t in crops['global_crops'] + crops['local_crops']:
        torch.testing.assert_close(t, expected.expand_as(t), atol=1e-5, rtol=0)
    assert 'gram_crops' not in crops


def test_same_seed_same_crops_other_seed_different():
    aug, image = _small(), _image()
    a, b = aug(image, rng=np.random.default_rng(5)), aug(image, rng=5)
    c = aug(image, rng=6)
    for key in ('global_crops', 'local_crops'):
        for x, y in zip(a[key], b[key]):
            assert torch.equal(x, y)
    pairs = zip(a['global_crops'], c['global_crops'])
    assert not all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.parametrize('scale', [(0.32, 1.0), (0.4, 1.0), (0.05, 0.32)])
def test_crop_boxes_respect_scale_and_ratio(scale):
    rng, (h, w) = np.random.default_rng(0), (300, 400)
    fractions = []
    for _ in range(500):
        box = sample_crop_box(h, w, scale, (3 / 4, 4 / 3), rng)
        assert 0 <= box.top and box.top + box.height <= h
        assert 0 <= box.left and box.left + box.width <= w
        # Rounding each side to an integer moves the area by at most about (w + h + 1) / area.
        tol = (box.width + box.height + 1) / (h * w)
        fraction = box.height * box.width / (h * w)
        assert scale[0] - tol <= fraction <= scale[1] + tol, (box, fraction)
        fractions.append(fraction)
    assert min(fractions) < scale[0] + 0.1 * (scale[1] - scale[0])  # the range is covered
    assert max(fractions) > scale[1] - 0.25 * (scale[1] - scale[0])


def test_crop_box_fallback_is_centred_and_ratio_clamped():
    box = sample_crop_box(10, 1000, (0.9, 1.0), (3 / 4, 4 / 3), np.random.default_rng(0))
    assert (box.height, box.width) == (10, 13) and box.left == (1000 - 13) // 2 and box.top == 0


def test_solarize_only_on_second_global_crop():
    image = _image()
    plain = _small(**PLAIN)(image, rng=3)
    solar = _small(**{**PLAIN, 'solarize_probability': 1.0})(image, rng=3)
    assert torch.equal(plain['global_crops'][0], solar['global_crops'][0])
    for x, y in zip(plain['local_crops'], solar['local_crops']):
        assert torch.equal(x, y)
    before, after = _denorm(plain['global_crops'][1]), _denorm(solar['global_crops'][1])
    high = before * 255 >= 128
    assert high.any() and (~high).any()
    torch.testing.assert_close(after[high], 1 - before[high], atol=1e-5, rtol=0)
    torch.testing.assert_close(after[~high], before[~high], atol=1e-5, rtol=0)


@pytest.mark.parametrize('probs', [(1.0, 0.0, 0.0), (0.0, 1.0, 1.0)])
def test_blur_probabilities_are_honoured(probs):
    image = _image()
    aug = _small(**{**PLAIN, 'blur_probabilities': probs})
    global_params, local_params = aug.sample_params(*image.shape[:2], np.random.default_rng(0))
    blurred = [p.blur_sigma is not None for p in global_params + local_params]
    assert blurred == [bool(probs[0]), bool(probs[1])] + [bool(probs[2])] * 3
    for p in global_params + local_params:
        assert p.blur_sigma is None or 0.1 <= p.blur_sigma <= 2.0
    plain, out = _small(**PLAIN)(image, rng=4), aug(image, rng=4)
    crops = list(zip(plain['global_crops'] + plain['local_crops'],
                     out['global_crops'] + out['local_crops']))
    assert [not torch.equal(x, y) for x, y in crops] == blurred


def test_default_blur_choice_is_dinov1():
    assert MultiCropAugmentation().blur_probabilities == (1.0, 0.1, 0.5)


def test_grayscale_gives_equal_channels():
    out = _small(**{**PLAIN, 'grayscale_probability': 1.0})(_image(), rng=0)
    for t in out['global_crops'] + out['local_crops']:
        x = _denorm(t)
        torch.testing.assert_close(x[0], x[1], atol=1e-5, rtol=0)
        torch.testing.assert_close(x[0], x[2], atol=1e-5, rtol=0)


def test_zero_strength_colour_jitter_is_identity():
    image = _image()
    zero = _small(**{**PLAIN, 'color_jitter_probability': 1.0, 'color_jitter': (0, 0, 0, 0)})
    plain, out = _small(**PLAIN)(image, rng=2), zero(image, rng=2)
    for x, y in zip(plain['global_crops'] + plain['local_crops'],
                    out['global_crops'] + out['local_crops']):
        assert torch.equal(x, y)
    strong = _small(**{**PLAIN, 'color_jitter_probability': 1.0})(image, rng=2)
    assert not torch.equal(strong['global_crops'][0], plain['global_crops'][0])


def test_colour_adjustments_match_their_definitions():
    x = _image(20, 30).astype(np.float32) / 255
    luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(adjust_color(x, 'brightness', 0.5), x * 0.5, atol=1e-6)
    np.testing.assert_allclose(adjust_color(x, 'contrast', 0.0), np.full_like(x, luma.mean()),
                               atol=1e-5)
    np.testing.assert_allclose(adjust_color(x, 'saturation', 0.0),
                               np.repeat(luma[..., None], 3, 2), atol=1e-5)
    np.testing.assert_allclose(adjust_color(x, 'hue', 0.0), x, atol=1e-4)
    red = np.zeros((1, 1, 3), np.float32)
    red[..., 0] = 1
    np.testing.assert_allclose(adjust_color(red, 'hue', 1 / 3), [[[0, 1, 0]]], atol=1e-4)


def test_gram_crops_are_the_global_crops_at_higher_resolution():
    image = _image(240, 320)
    without = _small(**PLAIN)(image, rng=7)
    out = _small(**PLAIN, gram_size=64)(image, rng=7)
    for g, gram, ref in zip(out['global_crops'], out['gram_crops'], without['global_crops'],
                                strict=True):
        assert torch.equal(g, ref)  # making Gram crops does not change the global crops
        down = F.interpolate(gram[None], size=(32, 32), mode='bilinear', antialias=True)[0]
        assert (down - g).abs().mean() < 0.1


@pytest.mark.parametrize('kwargs, match', [
    (dict(mean=(123.675, 116.28, 103.53)), r'\[0, 1\] units'),
    (dict(global_scale=(0.5, 0.2)), 'global_scale'),
    (dict(blur_probabilities=(1.0, 0.1)), 'blur_probabilities'),
    (dict(local_size=0), 'local_size'),
    (dict(color_jitter=(0.4, 0.4, 0.2, 0.7)), 'color_jitter'),
])
def test_invalid_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiCropAugmentation(**kwargs)


def test_rejects_non_uint8_rgb_images():
    with pytest.raises(ValueError, match='float32'):
        _small()(np.zeros((10, 10, 3), np.float32), rng=0)


def _tagged_samples(batch: int, n_global: int = 2, n_local: int = 3, size: int = 32) -> list:
    """Crops filled with 100 * image + crop (globals) and 1000 + 100 * image + crop (locals)."""
    return [{'global_crops': [torch.full((3, size, size), 100.0 * b + c) for c in range(n_global)],
             'local_crops': [torch.full((3, 8, 8), 1000 + 100.0 * b + c) for c in range(n_local)],
             'label': b % 2, 'seed': 11 + b} for b in range(batch)]


def _blocks(grid=(2, 2)):
    """The block-masking generator on a crop's token grid."""
    from densedino.pretrain.masking import MaskingGenerator
    return MaskingGenerator(grid, min_num_patches=1, rng=0)


def test_collate_is_crop_major_and_passes_labels():
    batch = collate_multicrop(_tagged_samples(3))
    assert batch['global_crops'].shape == (6, 3, 32, 32)
    assert batch['local_crops'].shape == (9, 3, 8, 8)
    assert batch['global_crops'][:, 0, 0, 0].tolist() == [0, 100, 200, 1, 101, 201]
    assert batch['local_crops'][:, 0, 0, 0].tolist() == [
        1000, 1100, 1200, 1001, 1101, 1201, 1002, 1102, 1202]
    assert batch['labels'].tolist() == [0, 1, 0] and batch['labels'].dtype == torch.long
    assert 'masks' not in batch


def test_collate_masks_counts_and_weights():
    batch_size, grid, patch = 8, (4, 4), 8
    generator = _blocks(grid)
    batch = collate_multicrop(_tagged_samples(batch_size), mask_generator=generator,
                              patch_size=patch)
    masks, n = batch['masks'], grid[0] * grid[1]
    assert masks.shape == (2 * batch_size, n) and masks.dtype == torch.bool
    counts = masks.sum(1)
    masked = int((counts > 0).sum())
    assert masked == batch_size  # mask_probability 0.5 of the 2B global crops
    # stratified ratios: the i-th smallest count is at most the top of the i-th bin of
    # [0.1, 0.5] (block masking may fall a few patches short of its target, never over)
    edges = np.linspace(0.1, 0.5, masked + 1)
    for i, count in enumerate(sorted(counts[counts > 0].tolist())):
        assert 1 <= count <= int(n * edges[i + 1])
    assert torch.equal(batch['mask_indices'], masks.flatten().nonzero().flatten())
    assert batch['n_masked_patches'].tolist() == [int(masks.sum())]
    assert batch['masks_weight'].shape == (int(masks.sum()),)
    torch.testing.assert_close(batch['masks_weight'].sum(), torch.tensor(float(masked)))
    again = collate_multicrop(_tagged_samples(batch_size), mask_generator=generator,
                              patch_size=patch)
    assert torch.equal(again['masks'], masks)  # reproducible from the samples' seeds


def test_collate_rejects_bad_masks_and_patch_size():
    samples = _tagged_samples(2)
    with pytest.raises(ValueError, match='not a multiple of patch_size 14'):
        collate_multicrop(samples, mask_generator=_blocks((4, 4)), patch_size=14)
    with pytest.raises(ValueError, match=r'generator grid \(2, 2\) != grid \(4, 4\)'):
        collate_multicrop(samples, mask_generator=_blocks((2, 2)), patch_size=8)


def _write_folder(root) -> None:
    for i, sub in enumerate(['a', 'a', 'b/c']):
        path = root / sub / f'img{i}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), _image(40 + 10 * i, 50, seed=i))
    (root / 'b' / 'broken.jpg').write_bytes(b'not an image')
    (root / 'notes.txt').write_text('ignored')
    (root / 'labels.txt').write_text('a/img0.png 3\nimg1 4\nb/c/img2 5\nbroken 6\n')


def test_image_folder_reads_labels_and_is_reproducible(tmp_path):
    _write_folder(tmp_path)
    aug = _small(n_local=2)
    data = UnlabeledImageFolder(tmp_path, transform=aug, labels_file=tmp_path / 'labels.txt',
                                seed=1)
    assert data.files == ['a/img0.png', 'a/img1.png', 'b/broken.jpg', 'b/c/img2.png']
    sample = data[3]
    assert sample['label'] == 5 and sample['index'] == 3 and sample['seed'] == sample_seed(1, 0, 3)
    assert sample['global_crops'][0].shape == (3, 32, 32) and len(sample['local_crops']) == 2
    assert torch.equal(data[3]['global_crops'][0], sample['global_crops'][0])
    data.set_epoch(1)
    assert not torch.equal(data[3]['global_crops'][0], sample['global_crops'][0])
    raw = UnlabeledImageFolder(tmp_path)[0]['image']
    assert raw.dtype == np.uint8 and raw.shape == (40, 50, 3)
    # BGR on disk -> RGB in memory
    np.testing.assert_array_equal(raw, cv2.cvtColor(_image(40, 50, seed=0), cv2.COLOR_RGB2BGR))
    batch = collate_multicrop([data[0], data[1]])
    assert batch['labels'].tolist() == [3, 4]


def test_image_folder_unreadable_image_raises_or_skips(tmp_path, caplog):
    _write_folder(tmp_path)
    strict = UnlabeledImageFolder(tmp_path, transform=_small())
    with pytest.raises(DatasetError, match='cannot read image .*broken.jpg'):
        strict[2]
    lenient = UnlabeledImageFolder(tmp_path, transform=_small(), on_unreadable='skip',
                                   labels_file=tmp_path / 'labels.txt')
    with caplog.at_level(logging.WARNING, logger='densedino.pretrain.datasets'):
        sample = lenient[2]
    assert 'broken.jpg' in caplog.text
    assert sample['label'] == 5  # the next readable image, b/c/img2.png


def test_image_folder_errors_name_the_file(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / 'partial.txt').write_text('a/img0.png 3\n')
    with pytest.raises(DatasetError, match='3 images .* no label in .*partial.txt'):
        UnlabeledImageFolder(tmp_path, labels_file=tmp_path / 'partial.txt')
    (tmp_path / 'bad.txt').write_text('a/img0.png three\n')
    with pytest.raises(DatasetError, match='bad.txt:1'):
        UnlabeledImageFolder(tmp_path, labels_file=tmp_path / 'bad.txt')
    with pytest.raises(DatasetError, match='does not exist'):
        UnlabeledImageFolder(tmp_path / 'missing')


def test_synthetic_ade20k_folder_with_its_image_labels(tmp_path):
    root = write_ade20k(tmp_path, num_train=3, num_val=1)
    data = UnlabeledImageFolder(f'{root}/images/training', transform=_small(n_local=1),
                                labels_file=f'{root}/image_labels_training.txt')
    lines = open(f'{root}/image_labels_training.txt').read().split()
    assert len(data) == 3 and [data[i]['label'] for i in range(3)] == [int(v) for v in lines[1::2]]


def test_dataloader_workers_reproduce_the_single_process_batches(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / 'b' / 'broken.jpg').unlink()
    data = UnlabeledImageFolder(tmp_path, transform=_small(n_local=1), seed=3)
    collate = functools.partial(collate_multicrop, mask_generator=_blocks(), patch_size=16)
    batches = [list(torch.utils.data.DataLoader(data, batch_size=2, num_workers=n,
                                                collate_fn=collate)) for n in (0, 2)]
    for a, b in zip(*batches):
        assert torch.equal(a['global_crops'], b['global_crops'])
        assert torch.equal(a['masks'], b['masks'])


def test_collate_with_the_block_masking_generator_is_reproducible():
    from densedino.pretrain.masking import MaskingGenerator
    samples = _tagged_samples(4, size=64)
    generator = MaskingGenerator((4, 4), min_num_patches=1)
    batches = [collate_multicrop(samples, mask_generator=generator, patch_size=16)
               for _ in range(2)]
    assert torch.equal(batches[0]['masks'], batches[1]['masks'])
    assert int((batches[0]['masks'].sum(1) > 0).sum()) <= 4
