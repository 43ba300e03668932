"""Settings and outputs of the procedural scene generator (:mod:`densedino.datasets.synthetic`).

Holds the class names and palette, :class:`SceneConfig` (the generator's knobs) and the records a
rendered scene is returned as (:class:`SceneSample`, :class:`SceneObject`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SYNTHETIC_CLASSES: tuple[str, ...] = (
    'background', 'sphere', 'box', 'cone', 'torus', 'cylinder', 'star', 'cross', 'pyramid')
"""Class names; index 0 is the floor and wall, 1.. are object classes."""

SYNTHETIC_PALETTE: list[list[int]] = [
    [120, 120, 120], [230, 25, 75], [0, 130, 200], [255, 225, 25], [60, 180, 75],
    [70, 240, 240], [145, 30, 180], [240, 50, 230], [245, 130, 48]]
"""RGB colour per class, for visualisation."""

NYU_FOCAL_RATIO = 518.8579 / 640  # NYU's focal over its image width
KITTI_FOCAL_RATIO = 721.5377 / 1242  # KITTI's (2011_09_26) focal over its image width

# ----------------------------------------------------------------------------- configuration

def _check_pair(name: str, value: tuple, low: float, *, integer: bool = False,
                high: float = math.inf) -> None:
    """Raise ``ValueError`` unless ``value`` is an ordered pair inside ``[low, high]``."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if ok and integer:
        ok = all(float(v).is_integer() for v in value)
    if not ok or not low <= value[0] <= value[1] <= high:
        kind = 'integers' if integer else 'numbers'
        raise ValueError(f'{name} must be two {kind} lo <= hi in [{low}, {high}], got {value!r}')


@dataclass
class SceneConfig:
    """Knobs of the scene generator (defaults: an NYU-like indoor scene at 240x320).

    Attributes:
        image_size: ``(H, W)`` in pixels.
        num_objects: inclusive range of the number of objects per scene.
        depth_range: ``(min, max)`` metres; every depth value is clipped into it.
        object_depth: range of object (front) depths in metres; objects also stay in front of the wall.
        object_size: range of object sizes in metres, as the diameter of a disc of the same area
            (so that all classes cover similar areas).
        focal: focal length in pixels; ``None`` uses NYU's focal/width ratio (0.81 W).
        camera_height: range of camera heights above the floor, metres.
        horizon: range of the horizon row (the principal point row) as a fraction of H.
        wall_depth: range of the back wall depth at the image centre, as a fraction of max depth.
        wall_yaw: largest wall yaw in radians (the wall is turned by a uniform angle in +-wall_yaw).
        textures: draw class textures and floor/wall textures (off: flat colours, shading only).
        lighting: Lambertian shading, depth attenuation and contact shadows (off: flat brightness).
        hero_object: make the first object near, large and central, so the image label is clear.
        float_prob: probability that an object floats above the floor instead of standing on it.
        hue_jitter: half-width in degrees of the uniform hue jitter around each class hue (classes are
            45 degrees apart, so jitter above 22.5 makes neighbouring classes overlap in hue).
        noise_std: standard deviation of the additive Gaussian pixel noise, in 0-255 units.
        blur_sigma: Gaussian blur sigma in pixels applied before the noise (0 disables it).
    """

    image_size: tuple[int, int] = (240, 320)
    num_objects: tuple[int, int] = (3, 7)
    depth_range: tuple[float, float] = (0.5, 10.0)
    object_depth: tuple[float, float] = (1.5, 8.0)
    object_size: tuple[float, float] = (0.4, 1.1)
    focal: float | None = None
    camera_height: tuple[float, float] = (1.0, 1.6)
    horizon: tuple[float, float] = (0.2, 0.45)
    wall_depth: tuple[float, float] = (0.55, 1.0)
    wall_yaw: float = 0.35
    textures: bool = True
    lighting: bool = True
    hero_object: bool = True
    float_prob: float = 0.2
    hue_jitter: float = 25.0
    noise_std: float = 3.0
    blur_sigma: float = 0.6

    def __post_init__(self) -> None:
        size = self.image_size
        if not (isinstance(size, (tuple, list)) and len(size) == 2
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 16 <= v <= 8192
                        for v in size)):
            raise ValueError(f'image_size must be two integers (H, W) in [16, 8192], got {size!r}')
        _check_pair('num_objects', self.num_objects, 1, integer=True, high=64)
        _check_pair('depth_range', self.depth_range, 1e-3)
        if self.depth_range[0] >= self.depth_range[1]:
            raise ValueError(f'depth_range must have min < max, got {self.depth_range!r}')
        _check_pair('object_depth', self.object_depth, self.depth_range[0], high=self.depth_range[1])
        _check_pair('object_size', self.object_size, 1e-3)
        _check_pair('camera_height', self.camera_height, 1e-3)
        _check_pair('horizon', self.horizon, 0.0, high=0.95)
        _check_pair('wall_depth', self.wall_depth, 0.05, high=1.0)
        self._check_scalars()

    def _check_scalars(self) -> None:
        if self.focal is not None and not (isinstance(self.focal, (int, float)) and self.focal > 0):
            raise ValueError(f'focal must be a positive number of pixels or None, got {self.focal!r}')
        checks = {'wall_yaw': (self.wall_yaw, 0.0, 0.6), 'float_prob': (self.float_prob, 0.0, 1.0),
                  'hue_jitter': (self.hue_jitter, 0.0, 180.0), 'noise_std': (self.noise_std, 0.0, 64.0),
                  'blur_sigma': (self.blur_sigma, 0.0, 8.0)}
        for name, (value, low, high) in checks.items():
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f'{name} must be a number in [{low}, {high}], got {value!r}')

    @property
    def focal_px(self) -> float:
        """The focal length in pixels (``focal``, or 0.81 W when it is ``None``)."""
        return float(self.focal) if self.focal is not None else NYU_FOCAL_RATIO * self.image_size[1]

    @classmethod
    def outdoor(cls, image_size: tuple[int, int] = (176, 608), **overrides) -> SceneConfig:
        """A KITTI-like outdoor preset: wide images, 1-80 m, bigger objects, a level camera.

        Args:
            image_size: ``(H, W)``; the default is half of KITTI's 352x1216 KB crop.
            **overrides: any other ``SceneConfig`` field.
        """
        values = dict(image_size=image_size, depth_range=(1.0, 80.0), object_depth=(6.0, 50.0),
                      object_size=(1.2, 4.5), focal=KITTI_FOCAL_RATIO * image_size[1],
                      camera_height=(1.5, 1.8), horizon=(0.38, 0.5), wall_depth=(0.7, 1.0),
                      wall_yaw=0.25)
        values.update(overrides)
        return cls(**values)


# ----------------------------------------------------------------------------- outputs

@dataclass(frozen=True)
class SceneObject:
    """One object of a scene, in drawing order (far to near).

    Attributes:
        class_id: index into ``SYNTHETIC_CLASSES`` (>= 1).
        depth: depth of the object's nearest point, metres.
        center: ``(u, v)`` centre of its bounding box in pixels.
        half_size: ``(half width, half height)`` of its bounding box in pixels.
        area: pixels its silhouette covers inside the image.
        visible: pixels of it still visible after nearer objects were drawn (``visible < area``
            means it is occluded).
    """

    class_id: int
    depth: float
    center: tuple[float, float]
    half_size: tuple[float, float]
    area: int
    visible: int


@dataclass
class SceneSample:
    """One rendered scene.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        seg: ``(H, W)`` uint8 class ids in ``[0, len(SYNTHETIC_CLASSES))``; 0 = background.
        depth: ``(H, W)`` float32 z-depth in metres, dense and inside ``config.depth_range``
            everywhere (no invalid pixels).
        image_label: the object class with the most visible pixels (ties: the lower id); 0 only
            if no object is visible.
        focal: focal length in pixels.
        principal: ``(cx, cy)`` principal point in pixels; ``cy`` is the horizon row.
        instances: ``(H, W)`` uint8, 0 = background, ``i + 1`` = ``objects[i]``.
        objects: the objects in drawing order (far to near).
    """

    image: np.ndarray
    seg: np.ndarray
    depth: np.ndarray
    image_label: int
    focal: float
    principal: tuple[float, float]
    instances: np.ndarray
    objects: tuple[SceneObject, ...]


__all__ = ['SYNTHETIC_CLASSES', 'SYNTHETIC_PALETTE', 'NYU_FOCAL_RATIO', 'KITTI_FOCAL_RATIO', 'SceneConfig',
           'SceneObject', 'SceneSample']
