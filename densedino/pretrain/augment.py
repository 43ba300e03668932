"""Multi-crop augmentation for DINO-style self-supervised pretraining (numpy / OpenCV / torch).

Recipe (DINOv1, Caron et al. 2021, kept by DINOv2 / DINOv3): two global crops and ``n_local`` local
crops of one image, each made by a random resized crop, a horizontal flip, colour jitter in a
random order, random grayscale, Gaussian blur and, on the second global crop only, solarisation.
Every random decision comes from a ``numpy.random.Generator`` passed per call, so a dataset can
seed each sample from ``(base seed, epoch, index)`` and reproduce it in any dataloader worker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..models.backbones.presets import IMAGENET_MEAN, IMAGENET_STD

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as PIL 'L'
_JITTER_OPS = ('brightness', 'contrast', 'saturation', 'hue')


class CropBox(NamedTuple):
    """A crop rectangle in pixels: rows ``top:top+height``, columns ``left:left+width``."""
    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class CropParams:
    """Everything random about one crop, sampled once and rendered at any output size.

    Attributes:
        box: the source rectangle.
        flip: mirror horizontally.
        jitter: ``(op, factor)`` pairs applied in this order; empty when jitter is not applied.
        grayscale: convert to 3-channel grayscale.
        blur_sigma: Gaussian blur sigma in pixels of a crop at the reference size, or ``None``.
        solarize: invert the pixels at or above the threshold.
    """
    box: CropBox
    flip: bool
    jitter: tuple[tuple[str, float], ...]
    grayscale: bool
    blur_sigma: float | None
    solarize: bool


def sample_crop_box(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
                    rng: np.random.Generator, attempts: int = 10) -> CropBox:
    """Sample a RandomResizedCrop rectangle (Szegedy et al. 2015, as in torchvision).

    Up to ``attempts`` times, draw an area fraction uniformly in ``scale`` and an aspect ratio
    (width / height) log-uniformly in ``ratio``; return the first rectangle that fits, at a uniform
    position. Otherwise fall back to the largest centred crop whose aspect is ``ratio`` clamped.

    Args:
        height: image height H in pixels.
        width: image width W in pixels.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio width / height.
        rng: the random generator.
        attempts: number of tries before the fallback.

    Returns:
        The crop rectangle.
    """
    if height < 1 or width < 1:
        raise ValueError(f'image must be at least 1x1, got {height}x{width}')
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        crop_w = int(round(math.sqrt(target * aspect)))
        crop_h = int(round(math.sqrt(target / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return CropBox(top, left, crop_h, crop_w)
    aspect = width / height
    crop_h, crop_w = height, width
    if aspect < ratio[0]:
        crop_h = max(1, min(height, int(round(width / ratio[0]))))
    elif aspect > ratio[1]:
        crop_w = max(1, min(width, int(round(height * ratio[1]))))
    return CropBox((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)


def resized_crop(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crop ``box`` from a uint8 (H, W, 3) image and resize it to (size, size) bicubically.

    Uses torch's antialiased bicubic resize (torchvision's and, closely, PIL's behaviour).

    Returns:
        float32 (size, size, 3) in [0, 1].
    """
    patch = image[box.top:box.top + box.height, box.left:box.left + box.width]
    x = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float() / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode='bicubic', align_corners=False, antialias=True)
    return x[0].clamp_(0.0, 1.0).permute(1, 2, 0).contiguous().numpy()


def grayscale(image: np.ndarray) -> np.ndarray:
    """Luma (0.299 R + 0.587 G + 0.114 B) of a float (H, W, 3) image, as (H, W, 1)."""
    return (image @ _LUMA)[..., None]


def adjust_color(image: np.ndarray, op: str, factor: float) -> np.ndarray:
    """One torchvision-style colour adjustment of a float (H, W, 3) image in [0, 1].

    Args:
        image: the image.
        op: 'brightness' (scale by ``factor``), 'contrast' (blend with the mean luma),
            'saturation' (blend with the luma image) or 'hue' (shift by ``factor`` turns).
        factor: blend factor (1 = identity), or the hue shift in [-0.5, 0.5].

    Returns:
        The adjusted image, clipped to [0, 1].
    """
    if op == 'brightness':
        out = image * factor
    elif op == 'contrast':
        out = factor * image + (1.0 - factor) * float(grayscale(image).mean())
    elif op == 'saturation':
        out = factor * image + (1.0 - factor) * grayscale(image)
    elif op == 'hue':
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # float input: H in degrees [0, 360)
        hsv[..., 0] = np.mod(hsv[..., 0] + factor * 360.0, 360.0)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    else:
        raise ValueError(f'unknown colour op {op!r}; expected one of {_JITTER_OPS}')
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with kernel size ``2 * ceil(3 sigma) + 1`` and reflected borders."""
    k = 2 * math.ceil(3.0 * sigma) + 1
    return cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def solarize(image: np.ndarray, threshold: float = 128.0) -> np.ndarray:
    """Invert (``1 - x``) the pixels of a [0, 1] image whose uint8 value is >= ``threshold``."""
    return np.where(image * 255.0 >= threshold, 1.0 - image, image).astype(np.float32)


def _pair(name: str, value: Sequence[float], low: float, high: float = math.inf,
          open_low: bool = False) -> tuple[float, float]:
    ok = len(value) == 2 and value[0] <= value[1] and value[1] <= high and (
        value[0] > low if open_low else value[0] >= low)
    if not ok:
        bound = '(' if open_low else '['
        raise ValueError(f'{name} must be (min, max) with min <= max in {bound}{low}, {high}], '
                         f'got {value!r}')
    return float(value[0]), float(value[1])


def _prob(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be a probability in [0, 1], got {value!r}')
    return float(value)


def _size(name: str, value: int, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f'{name} must be an integer >= {0 if allow_zero else 1}, got {value!r}')
    return value


class MultiCropAugmentation:
    """DINO multi-crop augmentation: 2 global crops, ``n_local`` local crops, optional Gram crops.

    Per crop: RandomResizedCrop (bicubic, antialiased) -> horizontal flip -> colour jitter
    (brightness, contrast, saturation, hue in a random order) with probability
    ``color_jitter_probability`` -> grayscale -> Gaussian blur (sigma uniform in ``blur_sigma``)
    -> solarize (second global crop only) -> ImageNet normalisation.

    Blur probabilities: the default ``(1.0, 0.1, 0.5)`` (global crop 1, global crop 2, local crops)
    is DINOv1's recipe, chosen deliberately. The DINOv2 / DINOv3 code passes its blur probabilities
    inverted by accident (its transforms blur with probability ``1 - p``, i.e. global 1 is never
    blurred, global 2 is blurred 90% of the time and locals 50%); pass ``blur_probabilities=
    (0.0, 0.9, 0.5)`` to reproduce that behaviour.

    Gram crops (DINOv3 Gram anchoring): with ``gram_size`` set, each global crop is also rendered
    at ``gram_size`` from the same sampled parameters (same box, flip, jitter, grayscale and
    solarisation; the blur sigma scales with the resolution), so the Gram teacher sees the same
    view at a higher resolution. The global crops do not depend on whether Gram crops are made.

    Every call draws the same number of random numbers per crop whatever the probabilities, so
    changing a probability changes only that decision.

    Args:
        global_size: side G of the global crops.
        local_size: side L of the local crops.
        n_local: number of local crops (0 allowed).
        global_scale: area fraction range of global crops (DINOv2/v3: (0.32, 1.0); v1: (0.4, 1.0)).
        local_scale: area fraction range of local crops.
        ratio: aspect ratio (width / height) range of every crop.
        flip_probability: horizontal flip probability.
        color_jitter: strengths (brightness, contrast, saturation, hue); 0 disables an op.
        color_jitter_probability: probability of applying the jitter.
        grayscale_probability: probability of converting to grayscale.
        blur_probabilities: blur probabilities (global 1, global 2, local); see above.
        blur_sigma: (min, max) blur sigma in output pixels.
        solarize_probability: solarize probability of global crop 2 (the others never are).
        solarize_threshold: uint8 threshold at or above which pixels are inverted.
        gram_size: side of the Gram-teacher crops, typically ``2 * global_size``; ``None``: none.
        mean: per-channel normalisation mean, in [0, 1] units.
        std: per-channel normalisation std, in [0, 1] units.
    """

    def __init__(self, *, global_size: int = 224, local_size: int = 96, n_local: int = 8,
                 global_scale: Sequence[float] = (0.32, 1.0),
                 local_scale: Sequence[float] = (0.05, 0.32),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), flip_probability: float = 0.5,
                 color_jitter: Sequence[float] = (0.4, 0.4, 0.2, 0.1),
                 color_jitter_probability: float = 0.8, grayscale_probability: float = 0.2,
                 blur_probabilities: Sequence[float] = (1.0, 0.1, 0.5),
                 blur_sigma: Sequence[float] = (0.1, 2.0), solarize_probability: float = 0.2,
                 solarize_threshold: float = 128.0, gram_size: int | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.global_size = _size('global_size', global_size)
        self.local_size = _size('local_size', local_size)
        self.n_local = _size('n_local', n_local, allow_zero=True)
        self.gram_size = None if gram_size is None else _size('gram_size', gram_size)
        self.global_scale = _pair('global_scale', global_scale, 0.0, 1.0, open_low=True)
        self.local_scale = _pair('local_scale', local_scale, 0.0, 1.0, open_low=True)
        self.ratio = _pair('ratio', ratio, 0.0, open_low=True)
        self.flip_probability = _prob('flip_probability', flip_probability)
        if len(color_jitter) != 4 or min(color_jitter) < 0 or color_jitter[3] > 0.5:
            raise ValueError('color_jitter must be 4 strengths >= 0 (brightness, contrast, '
                             f'saturation, hue <= 0.5), got {color_jitter!r}')
        self.color_jitter = tuple(float(v) for v in color_jitter)
        self.color_jitter_probability = _prob('color_jitter_probability', color_jitter_probability)
        self.grayscale_probability = _prob('grayscale_probability', grayscale_probability)
        if len(blur_probabilities) != 3:
            raise ValueError('blur_probabilities must be (global 1, global 2, local), got '
                             f'{blur_probabilities!r}')
        self.blur_probabilities = tuple(_prob('blur_probabilities', p) for p in blur_probabilities)
        self.blur_sigma = _pair('blur_sigma', blur_sigma, 0.0, open_low=True)
        self.solarize_probability = _prob('solarize_probability', solarize_probability)
        self.solarize_threshold = float(solarize_threshold)
        self.mean, self.std = self._check_mean_std(mean, std)

    @staticmethod
    def _check_mean_std(mean: Sequence[float],
                        std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f'mean and std must have 3 values with std > 0, got {mean!r}, {std!r}')
        if max(mean) > 1.0 or max(std) > 1.0:
            raise ValueError(f'mean/std are in [0, 1] units (e.g. {IMAGENET_MEAN}), got {mean!r}, '
                             f'{std!r}')
        return np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def _jitter_ops(self, rng: np.random.Generator) -> tuple[tuple[str, float], ...]:
        apply = rng.random() < self.color_jitter_probability
        order = rng.permutation(4)
        factors = []
        for strength, op in zip(self.color_jitter, _JITTER_OPS):
            hue = op == 'hue'
            low, high = (-strength, strength) if hue else (max(0.0, 1 - strength), 1 + strength)
            factors.append(float(rng.uniform(low, high)))
        if not apply:
            return ()
        return tuple((_JITTER_OPS[i], factors[i]) for i in order if self.color_jitter[i] > 0)

    def _sample_one(self, height: int, width: int, scale: tuple[float, float], blur_p: float,
                    solarize_p: float, rng: np.random.Generator) -> CropParams:
        box = sample_crop_box(height, width, scale, self.ratio, rng)
        flip = bool(rng.random() < self.flip_probability)
        jitter = self._jitter_ops(rng)
        gray = bool(rng.random() < self.grayscale_probability)
        blur = bool(rng.random() < blur_p)
        sigma = float(rng.uniform(*self.blur_sigma))
        solar = bool(rng.random() < solarize_p)
        return CropParams(box, flip, jitter, gray, sigma if blur else None, solar)

    def sample_params(self, height: int, width: int,
                      rng: np.random.Generator) -> tuple[list[CropParams], list[CropParams]]:
        """Sample the parameters of all crops of an (H, W) image: (2 global, ``n_local`` local)."""
        p1, p2, p_local = self.blur_probabilities
        global_params = [
            self._sample_one(height, width, self.global_scale, p1, 0.0, rng),
            self._sample_one(height, width, self.global_scale, p2, self.solarize_probability, rng),
        ]
        local_params = [self._sample_one(height, width, self.local_scale, p_local, 0.0, rng)
                        for _ in range(self.n_local)]
        return global_params, local_params

    def render(self, image: np.ndarray, params: CropParams, size: int,
               sigma_scale: float = 1.0) -> torch.Tensor:
        """Render one crop of a uint8 (H, W, 3) RGB image as normalised float32 (3, size, size)."""
        out = resized_crop(image, params.box, size)
        if params.flip:
            out = np.ascontiguousarray(out[:, ::-1])
        for op, factor in params.jitter:
            out = adjust_color(out, op, factor)
        if params.grayscale:
            out = np.repeat(grayscale(out), 3, axis=2)
        if params.blur_sigma is not None:
            out = gaussian_blur(out, params.blur_sigma * sigma_scale)
        if params.solarize:
            out = solarize(out, self.solarize_threshold)
        out = (out - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32))

    def __call__(self, image: np.ndarray,
                 rng: np.random.Generator | int | None = None) -> dict[str, list[torch.Tensor]]:
        """Make the crops of one image.

        Args:
            image: uint8 (H, W, 3) RGB image.
            rng: a generator, an integer seed, or ``None`` for fresh OS entropy (not reproducible).

        Returns:
            ``global_crops``: 2 tensors (3, G, G); ``local_crops``: ``n_local`` tensors (3, L, L);
            with ``gram_size``, ``gram_crops``: 2 tensors (3, gram_size, gram_size).
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3:
            got = (f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray)
                   else type(image).__name__)
            raise ValueError(f'MultiCropAugmentation needs a uint8 (H, W, 3) RGB image, got {got}')
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        global_params, local_params = self.sample_params(image.shape[0], image.shape[1], rng)
        out = {'global_crops': [self.render(image, p, self.global_size) for p in global_params],
               'local_crops': [self.render(image, p, self.local_size) for p in local_params]}
        if self.gram_size is not None:
            scale = self.gram_size / self.global_size
            out['gram_crops'] = [self.render(image, p, self.gram_size, scale)
                                 for p in global_params]
        return out
