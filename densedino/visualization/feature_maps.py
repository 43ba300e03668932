"""Seeing what a backbone computes: PCA colours, foreground masks, similarity and attention maps.

Recipes (docs/protocols.md section 7):

- **PCA** (DINOv2 / DINOv3 practice): patch features of one layer (after the final norm) of one
  or several images, stacked and analysed *jointly*, so that a colour means the same thing in
  every image. Optionally the first component separates foreground from background
  (:func:`foreground_mask`); a 3-component PCA fitted on the foreground patches is then mapped to
  RGB (:func:`pca_rgb`): ``sigmoid(2 * whitened projection)`` (DINOv3) or per-channel min-max,
  background black.
- **Similarity**: cosine similarity of one query patch with every patch (:func:`similarity_map`).
- **CLS attention** (DINOv1): the last block's attention from the class token to the patches, one
  map per head; optionally the smallest set of patches holding a fraction ``t`` of each head's
  attention mass (:func:`top_mass_mask`).

Images are resized (short side to ``size``, aspect kept), normalised and zero-padded to the
patch multiple with the same centre padding the dense heads see (``center_pad``), never squashed.
Every result keeps the padding ``box``; :func:`to_image_grid` upsamples a patch map to pixels and
crops it back to the image. ``valid`` marks the patches whose centre lies on the image; only
those enter the PCA fits and the attention masks.

The functions that run a model take the backbone as an argument (a ``DinoVisionTransformer`` or
``ConvNeXt`` from ``densedino.create_backbone``); the rest is torch on any device, no matplotlib.
Images are read and prepared (resized, normalised, padded as the dense models pad) by
:mod:`densedino.images`.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..images import Box, input_normalisation, prepare_image

SIGN_RULES = ('border', 'majority')
COLOUR_MODES = ('sigmoid', 'minmax')


class PatchFeatures(NamedTuple):
    """Dense features of one image.

    Attributes:
        features: (h, w, C) patch features.
        valid: (h, w) bool, True where the patch centre lies on the image (not on padding).
        box: (top, left, H, W) of the image in the padded input, in pixels.
        stride: Pixels per patch (ViT: the patch size; ConvNeXt: 4 * 2**stage).
        image: (H, W, 3) uint8 RGB, the image as the model saw it (resized, unpadded).
    """
    features: Tensor
    valid: Tensor
    box: Box
    stride: int
    image: np.ndarray


class AttentionMaps(NamedTuple):
    """CLS attention of one image: ``maps`` (heads, h, w) raw attention weights from the class
    token, ``masks`` (heads, h, w) bool top-mass masks or None, and ``valid``, ``box``,
    ``stride``, ``image`` as in :class:`PatchFeatures`."""
    maps: Tensor
    masks: Optional[Tensor]
    valid: Tensor
    box: Box
    stride: int
    image: np.ndarray


class PCA(NamedTuple):
    """A fitted PCA: ``mean`` (C,), ``components`` (k, C) orthonormal rows (each signed so its
    largest-magnitude loading is positive) and ``explained_variance`` (k,)."""
    mean: Tensor
    components: Tensor
    explained_variance: Tensor

    def transform(self, x: Tensor, whiten: bool = False) -> Tensor:
        """Project (..., C) features to (..., k); ``whiten`` divides by each component's std."""
        out = (x.float() - self.mean) @ self.components.T
        return out / self.explained_variance.clamp_min(1e-12).sqrt() if whiten else out


# ------------------------------------------------------------------------------ images

def _valid_patches(box: Box, grid: Tuple[int, int], stride: int, device) -> Tensor:
    """(h, w) bool: patch centres that fall inside ``box``."""
    top, left, H, W = box
    rows = (torch.arange(grid[0], device=device) + 0.5) * stride - top
    cols = (torch.arange(grid[1], device=device) + 0.5) * stride - left
    return ((rows >= 0) & (rows < H))[:, None] & ((cols >= 0) & (cols < W))[None, :]


def to_image_grid(patch_map: Union[Tensor, np.ndarray], box: Box, stride: int) -> np.ndarray:
    """Upsample an (h, w[, c]) patch map by ``stride`` (nearest) and crop it to the image.

    Returns:
        (H, W[, c]) numpy array, the image's size as given by ``box``.
    """
    if isinstance(patch_map, Tensor):
        patch_map = patch_map.detach().float().cpu().numpy()
    top, left, H, W = box
    up = np.repeat(np.repeat(patch_map, stride, axis=0), stride, axis=1)
    return up[top:top + H, left:left + W]


# ----------------------------------------------------------------------------- features

@torch.no_grad()
def extract_patch_features(backbone, images: Sequence[np.ndarray], *, layer: Optional[int] = None,
                           size: Optional[int] = None, mean: Optional[Sequence[float]] = None,
                           std: Optional[Sequence[float]] = None) -> List[PatchFeatures]:
    """Dense features of each image, one forward pass per image (sizes may differ).

    Args:
        backbone: ViT (class and register tokens dropped; ``layer`` is a block index, output after
            the final norm) or ConvNeXt (``layer`` is a stage 0-3, with the official stage norms).
        images: (H, W, 3) uint8 RGB arrays; any iterable (e.g. wrapped in a progress bar).
        layer: Block / stage index, negatives count from the end; None = the last.
        size: Short side to resize to (None keeps each image's size).
        mean: Normalisation mean; default the backbone preset's.
        std: Normalisation std; default the backbone preset's.

    Returns:
        One :class:`PatchFeatures` per image, on the backbone's device.
    """
    mean, std = input_normalisation(backbone, mean, std)
    param = next(backbone.parameters())
    is_vit = hasattr(backbone, 'get_last_selfattention')
    depth = backbone.n_blocks
    index = depth - 1 if layer is None else layer
    if not -depth <= index < depth:
        raise ValueError(f'layer {layer} out of range for a model with {depth} '
                         f'{"blocks" if is_vit else "stages"}')
    index %= depth
    out = []
    for image in images:
        prep = prepare_image(image, multiple=backbone.patch_size, size=size, mean=mean, std=std)
        x = prep.tensor.to(param.device, param.dtype)
        # ViT: block ``index`` after the final norm; ConvNeXt: stage ``index`` with its norm
        fmap = backbone.get_intermediate_layers(x, n=[index], reshape=True, norm=True)[0][0]
        fmap = fmap.permute(1, 2, 0).float()
        stride = x.shape[-2] // fmap.shape[0]
        valid = _valid_patches(prep.box, fmap.shape[:2], stride, fmap.device)
        out.append(PatchFeatures(fmap, valid, prep.box, stride, prep.image))
    return out


# ------------------------------------------------------------------------------- PCA

def pca_fit(features: Union[Tensor, Sequence[Tensor]], n_components: int = 3,
            mask: Union[None, Tensor, Sequence[Tensor]] = None) -> PCA:
    """PCA of stacked patch features (SVD of the centred data, float32).

    Args:
        features: (..., C) tensor or a list of them (e.g. several images' (h, w, C) maps),
            analysed jointly.
        n_components: Number of components k.
        mask: Optional bool tensor(s) of the features' leading shape(s): patches to fit on.
    """
    x = _stack(features, mask)
    n, c = x.shape
    if not 1 <= n_components <= min(n, c):
        raise ValueError(f'n_components must be in [1, min(patches, channels)] = '
                         f'[1, {min(n, c)}], got {n_components}')
    if n < 2:
        raise ValueError(f'PCA needs at least 2 patches, got {n}')
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    comps = vh[:n_components]
    # SVD signs are arbitrary: make each component's largest-magnitude loading positive.
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    return PCA(mean, comps, s[:n_components] ** 2 / (n - 1))


def _stack(features, mask) -> Tensor:
    """(N, C) float32 rows of ``features`` selected by ``mask``."""
    if isinstance(features, Tensor):
        features, mask = [features], None if mask is None else [mask]
    rows = []
    for i, f in enumerate(features):
        f = f.reshape(-1, f.shape[-1]).float()
        rows.append(f if mask is None else f[mask[i].reshape(-1).to(f.device)])
    return torch.cat(rows)


def foreground_mask(features: Sequence[Tensor], *, threshold: float = 0.0,
                    sign: Union[str, int] = 'border',
                    valid: Optional[Sequence[Tensor]] = None) -> List[Tensor]:
    """Foreground patches from the first principal component, fitted jointly on all images.

    The projection is standardised (zero mean, unit variance over the fitted patches) and its
    sign, arbitrary in a PCA, is chosen by a rule; then foreground = ``score > threshold``.

    Sign rules:
        'border' (default): the border patches of each image are taken to be background, so the
        sign makes their mean score negative. Holds for object-centric photographs (the setting
        of the DINOv2/v3 figures) whatever the object's size; fails when the object fills the
        frame. 'majority': the foreground is the minority, so the sign giving fewer foreground
        patches wins; holds for small objects whatever their position. +1 / -1: fixed.

    Args:
        features: (h, w, C) maps.
        threshold: Cut on the standardised first-component score (in standard deviations).
        sign: 'border', 'majority', 1 or -1.
        valid: Optional (h, w) bool maps of the patches on the image; only they are fitted,
            judged and can be foreground.

    Returns:
        (h, w) bool masks, one per image.
    """
    if sign not in SIGN_RULES and sign not in (1, -1):
        raise ValueError(f'sign must be one of {SIGN_RULES}, 1 or -1, got {sign!r}')
    valid = valid or [torch.ones(f.shape[:2], dtype=torch.bool, device=f.device)
                      for f in features]
    pca = pca_fit(features, 1, valid)
    scores = [pca.transform(f, whiten=True)[..., 0] for f in features]
    if sign == 'border':
        border = torch.cat([s[_border(v)] for s, v in zip(scores, valid)])
        sign = -1 if border.mean() > 0 else 1
    elif sign == 'majority':
        inside = torch.cat([s[v] for s, v in zip(scores, valid)])
        sign = 1 if (inside > threshold).sum() <= (-inside > threshold).sum() else -1
    return [(sign * s > threshold) & v for s, v in zip(scores, valid)]


def _border(valid: Tensor) -> Tensor:
    """Patches of ``valid`` with a 4-neighbour outside it (the image's outermost patches)."""
    inner = F.pad(valid.float()[None, None], (1, 1, 1, 1))
    kernel = torch.tensor([[0., 1, 0], [1, 1, 1], [0, 1, 0]], device=valid.device)[None, None]
    return valid & (F.conv2d(inner, kernel)[0, 0] < 5)


def pca_rgb(features: Sequence[Tensor], foreground: Optional[Sequence[Tensor]] = None, *,
            valid: Optional[Sequence[Tensor]] = None, mode: str = 'sigmoid',
            scale: float = 2.0) -> List[Tensor]:
    """Colour patches by a 3-component PCA fitted jointly on all images' (foreground) patches.

    Args:
        features: (h, w, C) maps.
        foreground: Optional (h, w) bool masks: only these patches are fitted and coloured; the
            rest is black.
        valid: Optional (h, w) bool masks of patches on the image (fitted only if True).
        mode: 'sigmoid': ``sigmoid(scale * whitened projection)`` (DINOv3); 'minmax': each
            component scaled to [0, 1] by its min and max over the fitted patches.
        scale: Slope of the sigmoid mode.

    Returns:
        (h, w, 3) float maps in [0, 1].
    """
    if mode not in COLOUR_MODES:
        raise ValueError(f'mode must be one of {COLOUR_MODES}, got {mode!r}')
    fit = _combine(foreground, valid)
    pca = pca_fit(features, 3, fit)
    proj = [pca.transform(f, whiten=mode == 'sigmoid') for f in features]
    if mode == 'sigmoid':
        colours = [torch.sigmoid(scale * p) for p in proj]
    else:
        fitted = _stack(proj, fit)
        lo, hi = fitted.min(0).values, fitted.max(0).values
        colours = [((p - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1) for p in proj]
    if foreground is not None:
        colours = [c * m[..., None].to(c) for c, m in zip(colours, foreground)]
    return colours


def _combine(a: Optional[Sequence[Tensor]], b: Optional[Sequence[Tensor]]
             ) -> Optional[List[Tensor]]:
    """Element-wise AND of two optional lists of masks (None when both are None)."""
    if a is None or b is None:
        return None if a is None and b is None else list(a if b is None else b)
    return [x & y for x, y in zip(a, b)]


def similarity_map(features: Tensor, query: Tuple[int, int],
                   target: Optional[Tensor] = None) -> Tensor:
    """Cosine similarity of the query patch with every patch.

    Args:
        features: (h, w, C) map holding the query.
        query: (row, col) patch index in ``features``.
        target: (h', w', C) map to compare with (default: ``features`` itself).

    Returns:
        (h', w') map in [-1, 1]; 1 at the query when ``target`` is None.
    """
    r, c = query
    if not (0 <= r < features.shape[0] and 0 <= c < features.shape[1]):
        raise ValueError(f'query patch {query} outside the {tuple(features.shape[:2])} grid')
    target = features if target is None else target
    q = F.normalize(features[r, c].float(), dim=0)
    return F.normalize(target.float(), dim=-1) @ q


def query_patch(xy: Tuple[float, float], original_hw: Tuple[int, int], box: Box,
                stride: int) -> Tuple[int, int]:
    """(row, col) of the patch under pixel ``xy`` = (x, y) of the original (H0, W0) image.

    Args:
        xy: Pixel in the original image, before resizing.
        original_hw: (H0, W0) of the original image.
        box: (top, left, H, W) of the resized image in the padded input.
        stride: Pixels per patch.
    """
    top, left, H, W = box
    if not (0 <= xy[0] < original_hw[1] and 0 <= xy[1] < original_hw[0]):
        raise ValueError(f'query pixel (x, y) = {tuple(xy)} is outside the '
                         f'{original_hw[1]}x{original_hw[0]} image')
    x, y = xy[0] * W / original_hw[1], xy[1] * H / original_hw[0]
    return int((y + top) // stride), int((x + left) // stride)


# ---------------------------------------------------------------------------- attention

def top_mass_mask(attention: Tensor, mass: float) -> Tensor:
    """DINOv1's threshold: the smallest set of largest entries holding ``mass`` of the total.

    Along the last dimension, entries are sorted in decreasing order and kept while the mass
    before them is below ``mass`` (so the kept set reaches ``mass`` and drops no entry it needs).

    Args:
        attention: (..., n) non-negative weights.
        mass: Fraction in (0, 1].

    Returns:
        (..., n) bool mask.
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f'mass must be in (0, 1], got {mass}')
    a = attention.float()
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    values, order = a.sort(-1, descending=True)
    keep = (values.cumsum(-1) - values) < mass
    return torch.zeros_like(keep).scatter(-1, order, keep)


@torch.no_grad()
def cls_attention_maps(backbone, image: np.ndarray, *, threshold: Optional[float] = None,
                       size: Optional[int] = None, mean: Optional[Sequence[float]] = None,
                       std: Optional[Sequence[float]] = None) -> AttentionMaps:
    """DINOv1's attention maps: last block, class token -> patch tokens, per head.

    Register / storage tokens are skipped (their columns dropped, so a head's map sums to one
    minus what the class token gives to the class and register tokens). Works with absolute
    positions and RoPE alike.

    Args:
        backbone: A ViT with ``get_last_selfattention``.
        image: (H, W, 3) uint8 RGB.
        threshold: With a value t, also return each head's top-mass mask (:func:`top_mass_mask`
            over the patches on the image).
        size, mean, std: As in :func:`extract_patch_features`.

    Raises:
        TypeError: the backbone has no attention (ConvNeXt).
    """
    if not hasattr(backbone, 'get_last_selfattention'):
        raise TypeError(f'{type(backbone).__name__} has no self-attention and no class token, so '
                        'it has no attention maps; use the PCA or similarity maps instead')
    mean, std = input_normalisation(backbone, mean, std)
    p = backbone.patch_size
    prep = prepare_image(image, multiple=p, size=size, mean=mean, std=std)
    param = next(backbone.parameters())
    x = prep.tensor.to(param.device, param.dtype)
    h, w = x.shape[-2] // p, x.shape[-1] // p
    attn = backbone.get_last_selfattention(x, n_queries=1)[0]  # (heads, 1, N): the CLS row
    maps = attn[:, 0, backbone.num_prefix_tokens:].reshape(-1, h, w).float()
    valid = _valid_patches(prep.box, (h, w), p, maps.device)
    masks = None
    if threshold is not None:
        on_image = (maps * valid).flatten(1)
        masks = top_mass_mask(on_image, threshold).reshape(maps.shape) & valid
    return AttentionMaps(maps, masks, valid, prep.box, p, prep.image)

