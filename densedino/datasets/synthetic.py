"""Procedural scenes with segmentation, depth and image labels, written in ADE20K / NYU / KITTI layouts.

A scene is a room corner seen by a level pinhole camera: a textured floor plane whose depth follows
the perspective ``Z = f * camera_height / (v - horizon)``, a textured back wall (slightly yawed), and
2-6 objects standing on the floor or floating above it. Each object class has its own shape family
(with a depth profile: spheres bulge, box faces and pyramid faces slope, flat shapes tilt), its own
texture family and a hue around which colours are jittered, so colour alone is informative but not
perfect. Objects are drawn far to near (painter's algorithm), which gives real occlusion. Shading
is Lambertian from depth-derived normals, with depth attenuation, contact shadows, a slight blur and
Gaussian noise.

Everything is a pure function of ``(seed, index)``: ``SceneGenerator(seed=s).sample(i)`` seeds its
own ``numpy.random.Generator`` from ``[s, i]`` and never touches a global random state.

Example::

    >>> gen = SceneGenerator(seed=0)
    >>> s = gen.sample(3)
    >>> s.image.shape, s.seg.dtype, s.depth.dtype
    ((240, 320, 3), dtype('uint8'), dtype('float32'))
"""
from __future__ import annotations

import numpy as np

from .synthetic_config import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, SceneConfig, SceneObject, SceneSample
from .synthetic_render import (_background, _Camera, _contact_shadow, _dominant_class, _finish,
                               _render_object, _sample_camera, _sample_spec, _Spec)


# ----------------------------------------------------------------------------- generator

class SceneGenerator:
    """An infinite, index-addressable stream of procedural scenes.

    Args:
        config: the scene knobs; ``None`` uses ``SceneConfig()`` (indoor, 240x320).
        seed: non-negative integer; ``sample(i)`` depends only on ``(seed, i)`` and the config.
    """

    def __init__(self, config: SceneConfig | None = None, *, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
        if config is not None and not isinstance(config, SceneConfig):
            raise ValueError(f'config must be a SceneConfig or None, got {type(config).__name__}')
        self.config = config if config is not None else SceneConfig()
        self.seed = int(seed)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, index 0 = background."""
        return SYNTHETIC_CLASSES

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(SYNTHETIC_CLASSES)

    def __getitem__(self, index: int) -> SceneSample:
        return self.sample(index)

    def sample(self, index: int) -> SceneSample:
        """Render scene ``index``; deterministic in ``(seed, index)``, independent of call order.

        Args:
            index: non-negative integer.

        Returns:
            The rendered scene.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f'index must be a non-negative integer, got {index!r}')
        cfg = self.config
        rng = np.random.default_rng([self.seed, int(index)])
        cam = _sample_camera(cfg, rng)
        bg = _background(cfg, cam, rng)
        count = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
        specs = [_sample_spec(cfg, cam, rng, bg.wall_min, hero=cfg.hero_object and i == 0)
                 for i in range(count)]
        specs.sort(key=lambda spec: -spec.depth)  # painter's algorithm: far to near
        rgb, depth = bg.rgb, bg.depth.copy()
        if cfg.lighting:
            for spec in specs:
                if spec.grounded:
                    _contact_shadow(rgb, bg.floor, spec, cam)
        seg, instances, objects = self._draw(specs, cam, rng, rgb, depth)
        image = _finish(rgb * cam.tint[:, None, None], cfg, rng)
        return SceneSample(image=image, seg=seg, depth=np.clip(depth, *cfg.depth_range),
                           image_label=_dominant_class(seg), focal=cam.focal,
                           principal=(cam.cx, cam.cy), instances=instances, objects=objects)

    def _draw(self, specs: list[_Spec], cam: _Camera, rng: np.random.Generator, rgb: np.ndarray,
              depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[SceneObject, ...]]:
        """Draw objects far to near into ``rgb`` and ``depth`` in place; returns seg, instances, objects."""
        seg = np.zeros(depth.shape, np.uint8)
        instances = np.zeros(depth.shape, np.uint8)
        drawn: list[tuple[_Spec, int]] = []
        for spec in specs:
            patch = _render_object(spec, self.config, cam, rng)
            if patch is None or not patch.mask.any():
                continue
            drawn.append((spec, int(patch.mask.sum())))
            region = (patch.rows, patch.cols)
            np.copyto(rgb[:, patch.rows, patch.cols], patch.rgb, where=patch.mask[None])
            np.copyto(depth[region], patch.depth, where=patch.mask)
            np.copyto(seg[region], spec.class_id, where=patch.mask)
            np.copyto(instances[region], len(drawn), where=patch.mask)
        visible = np.bincount(instances.ravel(), minlength=len(drawn) + 1)
        objects = tuple(SceneObject(spec.class_id, float(spec.depth), (float(spec.u), float(spec.v)),
                                    (float(spec.half_w), float(spec.half_h)), area, int(visible[i + 1]))
                        for i, (spec, area) in enumerate(drawn))
        return seg, instances, objects


__all__ = ['SYNTHETIC_CLASSES', 'SYNTHETIC_PALETTE', 'SceneConfig', 'SceneGenerator', 'SceneObject',
           'SceneSample']
