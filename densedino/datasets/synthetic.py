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

import colorsys
import logging
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple

import cv2
import numpy as np

logger = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- class styles

@dataclass(frozen=True)
class _Style:
    hue: float  # centre hue, degrees
    texture: str  # texture family
    angle: float  # texture orientation, degrees
    cycles: tuple[float, float]  # texture repeats across the object
    aspect: tuple[float, float]  # bounding-box height / width
    fill: float  # silhouette area / bounding-box area (about), to give all classes similar areas


_STYLES: dict[int, _Style] = {
    1: _Style(0.0, 'dots', 0.0, (2.5, 4.0), (1.0, 1.0), 0.79),  # sphere
    2: _Style(225.0, 'checker', 0.0, (2.0, 3.5), (0.8, 1.2), 0.9),  # box
    3: _Style(45.0, 'stripes', 90.0, (3.0, 5.0), (1.4, 2.0), 0.55),  # cone: horizontal bands
    4: _Style(135.0, 'smooth', 0.0, (1.0, 1.0), (0.55, 1.0), 0.63),  # torus (seen at an angle)
    5: _Style(180.0, 'stripes', 0.0, (3.0, 5.0), (1.3, 2.2), 0.95),  # cylinder: vertical bands
    6: _Style(270.0, 'noise', 0.0, (3.0, 6.0), (1.0, 1.0), 0.42),  # star
    7: _Style(315.0, 'stripes', 45.0, (3.0, 5.0), (1.0, 1.0), 0.5),  # cross: diagonal bands
    8: _Style(90.0, 'chevron', 0.0, (2.5, 4.0), (0.65, 0.9), 0.5),  # pyramid
}


def _hsv(hue_deg: float, sat: float, val: float) -> np.ndarray:
    """HSV (hue in degrees) to an RGB float32 vector in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb((hue_deg / 360.0) % 1.0, sat, val), dtype=np.float32)


# ----------------------------------------------------------------------------- shapes
# Each shape maps local coordinates (x, y in [-1, 1] across the bounding box, y down) to a
# silhouette mask, a relative depth ``rel`` (>= 0, in units of the half width, added behind the
# object's front depth) and texture coordinates (s, t).

class _Shape(NamedTuple):
    mask: np.ndarray
    rel: np.ndarray
    s: np.ndarray
    t: np.ndarray


def _bulge(x: np.ndarray) -> np.ndarray:
    """Depth of a unit circle's front arc behind its nearest point."""
    return 1.0 - np.sqrt(np.clip(1.0 - x * x, 0.0, 1.0))


def _sphere(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    r2 = x * x + y * y
    return _Shape(r2 <= 1.0, 1.0 - np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)), x, y)


def _torus(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    inner = rng.uniform(0.3, 0.6)
    tube, centre = (1.0 - inner) / 2, (1.0 + inner) / 2
    rho = np.sqrt(x * x + y * y)
    q = (rho - centre) / tube
    return _Shape(np.abs(q) <= 1.0, tube * _bulge(np.clip(q, -1, 1)), x, y)


def _cylinder(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    e = rng.uniform(0.1, 0.22)  # cap ellipse half-height, in half-heights
    top, bottom = -1.0 + e, 1.0 - e
    arc = e * np.sqrt(np.clip(1.0 - x * x, 0.0, 1.0))
    cap = x * x + ((y - top) / e) ** 2 <= 1.0
    side = (np.abs(x) <= 1.0) & (y > top + arc) & (y <= bottom + arc)
    rel = np.where(cap, 1.0 - (y - top) / e, _bulge(x))  # the cap rises away from the camera
    s = np.arcsin(np.clip(x, -1, 1)) * (2 / np.pi)
    return _Shape(cap | side, rel, s, np.where(cap, (y - top) / e, y))


def _cone(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    e = rng.uniform(0.08, 0.16)
    base = 1.0 - e
    half = np.clip((y + 1.0) / (2.0 - e), 1e-3, 1.0)
    side = (np.abs(x) <= half) & (y <= base)
    foot = (y > base) & (x * x + ((y - base) / e) ** 2 <= 1.0)
    u = np.clip(x / half, -1, 1)
    return _Shape(side | foot, half * _bulge(u), u, y)


def _pyramid(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    apex, foot = rng.uniform(-0.3, 0.3), rng.uniform(-0.4, 0.4)
    a = (y + 1.0) / 2  # 0 at the apex row, 1 at the base row
    left, right, ridge = apex + (-1 - apex) * a, apex + (1 - apex) * a, apex + (foot - apex) * a
    mask = (x >= left) & (x <= right) & (y <= 1.0)
    slope_l, slope_r = rng.uniform(0.3, 1.2, size=2)
    rel = np.where(x < ridge, (ridge - x) * slope_l, (x - ridge) * slope_r)
    return _Shape(mask, rel, x - ridge, y)


def _box(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    if rng.random() < 0.5:  # side face on the left: mirror
        x = -x
    dx, dy = rng.uniform(0.15, 0.35), rng.uniform(0.12, 0.3)
    depth_ratio = rng.uniform(0.6, 1.4)
    xf, yf = 1.0 - 2 * dx, -1.0 + 2 * dy  # front face: x in [-1, xf], y in [yf, 1]
    shear_x = 2 * dx * (yf - y) / (2 * dy)
    shear_y = 2 * dy * (x - xf) / (2 * dx)
    front = (x >= -1) & (x <= xf) & (y >= yf) & (y <= 1)
    top = (y >= -1) & (y < yf) & (x >= -1 + shear_x) & (x <= xf + shear_x)
    side = (x > xf) & (x <= 1) & (y >= yf - shear_y) & (y <= 1 - shear_y) & ~top
    rel = np.where(top, depth_ratio * (yf - y) / (2 * dy), 0.0)
    rel = np.where(side, depth_ratio * (x - xf) / (2 * dx), rel)
    s = np.where(top, x - shear_x, np.where(side, (x - xf) / dx - 1, x))
    t = np.where(top, (y - yf) / dy, np.where(side, y + shear_y, y))
    return _Shape(front | top | side, rel, s, t)


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return c * x + s * y, -s * x + c * y


def _tilt(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Depth of a tilted plane, >= 0 over the bounding box."""
    tx, ty = rng.uniform(-0.6, 0.6, size=2)
    return tx * x + ty * y + abs(tx) + abs(ty)


def _star(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    points, inner = int(rng.integers(5, 7)), rng.uniform(0.38, 0.55)
    xr, yr = _rotate(x, y, rng.uniform(0, 2 * np.pi))
    sector = 2 * np.pi / points
    phi = np.mod(np.arctan2(yr, xr), sector)
    phi = np.minimum(phi, sector - phi)  # fold onto the half-sector next to an outer vertex
    rho = np.sqrt(x * x + y * y)
    px, py = rho * np.cos(phi), rho * np.sin(phi)
    bx, by = inner * math.cos(sector / 2), inner * math.sin(sector / 2)  # inner vertex; outer is (1, 0)
    inside = (bx - 1.0) * py - by * (px - 1.0) >= 0.0  # same side of the edge as the origin
    return _Shape(inside & (rho <= 1.0), _tilt(x, y, rng), xr, yr)


def _cross(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Shape:
    arm = rng.uniform(0.22, 0.38)
    xr, yr = _rotate(x, y, rng.uniform(-0.45, 0.45))
    ax, ay = np.abs(xr), np.abs(yr)
    mask = ((ax <= arm) & (ay <= 1.0)) | ((ay <= arm) & (ax <= 1.0))
    return _Shape(mask, _tilt(x, y, rng), xr, yr)


_SHAPES: dict[int, Callable[[np.ndarray, np.ndarray, np.random.Generator], _Shape]] = {
    1: _sphere, 2: _box, 3: _cone, 4: _torus, 5: _cylinder, 6: _star, 7: _cross, 8: _pyramid}


# ----------------------------------------------------------------------------- textures

def _square_wave(phase: np.ndarray, sharpness: float = 2.5) -> np.ndarray:
    """A soft square wave in [0, 1] of a phase in cycles."""
    return 0.5 + 0.5 * np.clip(sharpness * np.sin(2 * np.pi * phase), -1.0, 1.0)


def _value_noise(shape: tuple[int, int], cells: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random values in [0, 1]: a coarse random grid upsampled bicubically."""
    h, w = shape
    gh, gw = max(2, int(round(cells * h / max(h, w))) + 1), max(2, int(round(cells * w / max(h, w))) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def _texture(style: _Style, s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Texture values in [0, 1] of a class texture family at texture coordinates (s, t)."""
    cycles = rng.uniform(*style.cycles) / 2  # (s, t) span two units across the object
    angle = math.radians(style.angle + rng.uniform(-12, 12))
    offset = rng.uniform(0, 1, size=2)
    if style.texture == 'stripes':
        return _square_wave((s * math.cos(angle) + t * math.sin(angle)) * cycles + offset[0])
    if style.texture == 'chevron':
        return _square_wave((np.abs(s) * 1.2 + t) * cycles + offset[0])
    if style.texture == 'checker':
        return (np.floor(s * cycles + offset[0]) + np.floor(t * cycles + offset[1])) % 2
    if style.texture == 'dots':
        fs, ft = (s * cycles + offset[0]) % 1 - 0.5, (t * cycles + offset[1]) % 1 - 0.5
        return (fs * fs + ft * ft <= rng.uniform(0.2, 0.32) ** 2).astype(np.float32)
    if style.texture == 'noise':
        return _value_noise(s.shape, cycles * 2, rng)
    return np.clip(0.5 + 0.35 * (s * math.cos(angle) + t * math.sin(angle)), 0, 1)  # smooth


# ----------------------------------------------------------------------------- camera and lighting

@dataclass(frozen=True)
class _Camera:
    focal: float
    cx: float
    cy: float  # horizon row
    height: float
    light: np.ndarray  # unit vector towards the light, camera frame (x right, y down, z forward)
    ambient: float
    tint: np.ndarray  # RGB gain of the light


def _sample_camera(cfg: SceneConfig, rng: np.random.Generator) -> _Camera:
    height_px, width_px = cfg.image_size
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.2, -0.2), -1.0], dtype=np.float32)
    tint = 1.0 + rng.uniform(-0.06, 0.06, size=3).astype(np.float32)
    # python floats, not numpy scalars: they keep float32 arrays float32 (NEP 50)
    return _Camera(focal=cfg.focal_px, cx=width_px / 2, cy=float(rng.uniform(*cfg.horizon)) * height_px,
                   height=float(rng.uniform(*cfg.camera_height)), light=light / np.linalg.norm(light),
                   ambient=float(rng.uniform(0.35, 0.55)), tint=tint)


def _lambert(cam: _Camera, normal_dot_light: np.ndarray | float, cfg: SceneConfig) -> np.ndarray:
    if not cfg.lighting:
        return np.ones_like(np.asarray(normal_dot_light, dtype=np.float32))
    return cam.ambient + (1 - cam.ambient) * np.clip(normal_dot_light, 0.0, 1.0)


def _attenuation(depth: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    """Brightness falling off with distance (a mild, physically flavoured depth cue)."""
    if not cfg.lighting:
        return np.ones_like(depth)
    return 0.6 + 0.4 * np.exp(-depth / (0.5 * cfg.depth_range[1]))


# ----------------------------------------------------------------------------- background

class _Background(NamedTuple):
    rgb: np.ndarray  # (3, H, W) float32 in [0, 1], channel-first: numpy is slow on a last axis of 3
    depth: np.ndarray  # (H, W) float32 metres
    floor: np.ndarray  # (H, W) bool
    wall_min: float  # nearest wall depth over the image


def _wall_plane(cfg: SceneConfig, cam: _Camera, rng: np.random.Generator,
                u: np.ndarray) -> tuple[np.ndarray, float]:
    """Depth of a yawed wall per column, and the yaw."""
    yaw = rng.uniform(-cfg.wall_yaw, cfg.wall_yaw)
    centre = rng.uniform(*cfg.wall_depth) * cfg.depth_range[1]
    depth = centre * math.cos(yaw) / (math.cos(yaw) + math.sin(yaw) * (u - cam.cx) / cam.focal)
    return depth, yaw


def _surface_colours(rng: np.random.Generator, sat_max: float,
                     val: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    hue, sat, value = rng.uniform(0, 360), rng.uniform(0, sat_max), rng.uniform(*val)
    return _hsv(hue, sat, value), _hsv(hue + rng.uniform(-20, 20), sat, value * rng.uniform(0.55, 0.85))


def _floor_pattern(x: np.ndarray, z: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Floor texture in world coordinates (x across, z forward); returns values and the feature size."""
    kind = rng.integers(3)
    if kind == 0:  # tiles
        size = rng.uniform(0.3, 1.0)
        return (np.floor(x / size) + np.floor(z / size)) % 2, size
    if kind == 1:  # planks with their own shades
        width = rng.uniform(0.12, 0.3)
        shades = rng.random(256).astype(np.float32)
        return shades[np.floor(x / width).astype(np.int64) % 256], width
    size = rng.uniform(0.08, 0.2)  # carpet-like noise
    return _value_noise(x.shape, x.shape[1] / 6, rng), size


def _wall_pattern(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Wall texture in wall coordinates (metres); returns values and the feature size."""
    kind = rng.integers(3)
    if kind == 0:  # bricks with mortar
        bw, bh = rng.uniform(0.2, 0.4), rng.uniform(0.08, 0.15)
        row = np.floor(y / bh)
        col = x / bw + 0.5 * (row % 2)
        shades = rng.random(512).astype(np.float32) * 0.6
        tex = shades[(row.astype(np.int64) * 31 + np.floor(col).astype(np.int64)) % 512]
        mortar = (np.mod(y / bh, 1) < 0.12) | (np.mod(col, 1) < 0.06)
        return np.where(mortar, 1.0, tex), bh
    if kind == 1:  # wallpaper stripes
        period = rng.uniform(0.1, 0.4)
        return _square_wave(x / period, sharpness=1.5), period
    return _value_noise(x.shape, rng.uniform(3, 8), rng), 0.5  # plain, slightly blotchy


def _fade(feature_m: float, depth: np.ndarray, focal: float,
          foreshortening: np.ndarray | float = 1.0) -> np.ndarray:
    """Texture contrast fading where a feature gets below ~4 pixels (cheap anti-aliasing)."""
    return np.clip(focal * feature_m * foreshortening / depth / 4.0, 0.0, 1.0) ** 2


def _background(cfg: SceneConfig, cam: _Camera, rng: np.random.Generator) -> _Background:
    h, w = cfg.image_size
    u = np.arange(w, dtype=np.float32) + 0.5
    v = np.arange(h, dtype=np.float32)[:, None] + 0.5
    wall_col, yaw = _wall_plane(cfg, cam, rng, u)
    below = v - cam.cy
    floor_d = np.where(below > 0, cam.focal * cam.height / np.maximum(below, 1e-6), np.inf)
    floor = floor_d < wall_col[None, :]
    depth = np.where(floor, floor_d, wall_col[None, :]).astype(np.float32)
    x_world = (u[None, :] - cam.cx) * depth / cam.focal
    y_world = below * depth / cam.focal
    floor_tex, floor_size = _floor_pattern(x_world, depth, rng)
    wall_tex, wall_size = _wall_pattern(x_world, y_world, rng)
    floor_tex = floor_tex * _fade(floor_size, depth, cam.focal, np.minimum(1.0, cam.height / depth))
    wall_tex = wall_tex * _fade(wall_size, depth, cam.focal)
    tex = np.where(floor, floor_tex, wall_tex) if cfg.textures else np.zeros_like(depth)
    fa, fb = _surface_colours(rng, 0.45, (0.35, 0.85))
    wa, wb = _surface_colours(rng, 0.35, (0.5, 0.95))
    on_floor = floor.astype(np.float32)[None]  # arithmetic blends: much faster than 3-D np.where
    wa, wb, fa, fb = (c[:, None, None] for c in (wa, wb, fa, fb))
    rgb = wa + on_floor * (fa - wa) + tex[None] * ((wb - wa) + on_floor * ((fb - fa) - (wb - wa)))
    wall_normal = np.array([math.sin(yaw), 0.0, -math.cos(yaw)], dtype=np.float32)
    shade = np.where(floor, _lambert(cam, -cam.light[1], cfg), _lambert(cam, wall_normal @ cam.light, cfg))
    rgb *= (shade * _attenuation(depth, cfg))[None]
    depth = np.clip(depth, *cfg.depth_range).astype(np.float32)
    return _Background(rgb.astype(np.float32), depth, floor, float(wall_col.min()))


# ----------------------------------------------------------------------------- objects

@dataclass(frozen=True)
class _Spec:
    class_id: int
    depth: float  # front depth, metres
    half_w_m: float
    u: float
    v: float
    half_w: float  # pixels
    half_h: float  # pixels
    grounded: bool


def _sample_spec(cfg: SceneConfig, cam: _Camera, rng: np.random.Generator,
                 wall_min: float, hero: bool) -> _Spec:
    h, w = cfg.image_size
    class_id = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
    style = _STYLES[class_id]
    size_lo, size_hi = cfg.object_size
    size = rng.uniform(size_lo + 0.6 * (size_hi - size_lo) if hero else size_lo, size_hi)
    aspect = rng.uniform(*style.aspect)
    half_w_m = size / 2 * math.sqrt(math.pi / (4 * style.fill * aspect))  # silhouette area = disc of `size`
    z_lo = cfg.object_depth[0]
    z_hi = max(z_lo * 1.01, min(cfg.object_depth[1], 0.9 * wall_min - size))
    frac = rng.uniform(0.0, 0.3) if hero else rng.uniform(0, 1)
    depth = z_lo * (z_hi / z_lo) ** frac  # log-uniform
    depth = float(np.clip(depth, cam.focal * half_w_m / (0.9 * max(h, w)), cam.focal * half_w_m / 3))
    half_w = cam.focal * half_w_m / depth
    half_h = half_w * aspect
    u = rng.uniform(0.3, 0.7) * w if hero else rng.uniform(0, w)
    grounded = hero or rng.random() >= cfg.float_prob
    lift = 0.0 if grounded else rng.uniform(0.2, 0.8) * cam.height
    base = cam.cy + cam.focal * (cam.height - lift) / (depth + 0.5 * half_w_m)
    return _Spec(class_id, depth, half_w_m, u, base - half_h, half_w, half_h, grounded)


def _shading(rel: np.ndarray, spec: _Spec, cam: _Camera, cfg: SceneConfig) -> np.ndarray:
    """Lambertian shading from the normals of the depth profile ``rel``."""
    if not cfg.lighting or min(rel.shape) < 2:
        return np.full(rel.shape, 1.0 if not cfg.lighting else cam.ambient + 0.5 * (1 - cam.ambient),
                       dtype=np.float32)
    aspect = spec.half_h / spec.half_w
    gy, gx = np.gradient(rel, 1.0 / spec.half_h, 1.0 / spec.half_w)
    gy = gy / aspect  # both slopes in metres per metre
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    return _lambert(cam, (gx * cam.light[0] + gy * cam.light[1] - cam.light[2]) / norm, cfg)


def _object_colours(style: _Style, cfg: SceneConfig,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    hue = style.hue + rng.uniform(-cfg.hue_jitter, cfg.hue_jitter)
    sat, val = rng.uniform(0.4, 1.0), rng.uniform(0.55, 1.0)
    second = _hsv(hue + rng.uniform(-15, 15), sat * rng.uniform(0.5, 1.0), val * rng.uniform(0.3, 0.6))
    return _hsv(hue, sat, val), second, rng.uniform(0.6, 1.0)


class _Patch(NamedTuple):
    rows: slice
    cols: slice
    mask: np.ndarray
    depth: np.ndarray
    rgb: np.ndarray


def _render_object(spec: _Spec, cfg: SceneConfig, cam: _Camera, rng: np.random.Generator) -> _Patch | None:
    h, w = cfg.image_size
    x0, x1 = max(int(spec.u - spec.half_w), 0), min(int(math.ceil(spec.u + spec.half_w)) + 1, w)
    y0, y1 = max(int(spec.v - spec.half_h), 0), min(int(math.ceil(spec.v + spec.half_h)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - spec.u) / spec.half_w
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - spec.v) / spec.half_h
    x, y = np.meshgrid(xs, ys)
    style = _STYLES[spec.class_id]
    shape = _SHAPES[spec.class_id](x, y, rng)
    colour_a, colour_b, contrast = _object_colours(style, cfg, rng)
    tex = _texture(style, shape.s, shape.t, rng) * contrast if cfg.textures else np.zeros_like(x)
    depth = (spec.depth + shape.rel * spec.half_w_m).astype(np.float32)
    light = _shading(shape.rel.astype(np.float32), spec, cam, cfg) * _attenuation(depth, cfg)
    rgb = (colour_a[:, None, None] + (colour_b - colour_a)[:, None, None] * tex[None]) * light[None]
    return _Patch(slice(y0, y1), slice(x0, x1), shape.mask, depth, rgb.astype(np.float32))


def _contact_shadow(rgb: np.ndarray, floor: np.ndarray, spec: _Spec, cam: _Camera) -> None:
    """Darken the floor under a grounded object, in place (a soft elliptical shadow)."""
    h, w = floor.shape
    base = spec.v + spec.half_h
    su, sv = spec.u - cam.light[0] * spec.half_w * 0.5, base
    rx, ry = 1.3 * spec.half_w, 0.25 * spec.half_w + 1.0
    x0, x1 = max(int(su - 2 * rx), 0), min(int(su + 2 * rx) + 1, w)
    y0, y1 = max(int(sv - 2 * ry), 0), min(int(sv + 2 * ry) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - su) / rx
    dy = (np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - sv) / ry
    dark = 1.0 - 0.45 * np.exp(-2.0 * (dx * dx + dy * dy)) * floor[y0:y1, x0:x1]
    rgb[:, y0:y1, x0:x1] *= dark[None]


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


_TRIANGULAR_STD = 256 / math.sqrt(6)  # std of the sum of two independent uniform bytes, minus 255


def _finish(rgb: np.ndarray, cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur, add noise and quantise a ``(3, H, W)`` float picture in [0, 1] to ``(H, W, 3)`` uint8."""
    img = rgb * 255.0
    if cfg.blur_sigma > 0:
        for plane in img:
            cv2.GaussianBlur(plane, (0, 0), cfg.blur_sigma, dst=plane)
    if cfg.noise_std > 0:  # triangular noise (sum of two uniform bytes): Gaussian-like and 4x faster
        pairs = np.frombuffer(rng.bytes(2 * img.size), np.uint8).reshape(2, *img.shape)
        img += (pairs[0].astype(np.float32) + pairs[1] - 255.0) * (cfg.noise_std / _TRIANGULAR_STD)
    np.clip(img + 0.5, 0, 255, out=img)
    return cv2.merge(list(img.astype(np.uint8)))


def _dominant_class(seg: np.ndarray) -> int:
    counts = np.bincount(seg.ravel(), minlength=len(SYNTHETIC_CLASSES))
    counts[0] = 0
    return int(counts.argmax()) if counts.any() else 0


# ----------------------------------------------------------------------------- writers

def progress_iter(items: Iterable, total: int, enabled: bool, desc: str) -> Iterator:
    """Iterate with a tqdm bar if asked and available, else with a log line every 10%."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        step = max(1, total // 10)
        for i, item in enumerate(items):
            if i % step == 0:
                logger.info('%s: %d/%d', desc, i, total)
            yield item
        logger.info('%s: %d/%d', desc, total, total)
        return
    yield from tqdm(items, total=total, desc=desc)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f'{name} must be a non-negative integer, got {value!r}')


def _write_rgb(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith('.jpg') else []
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
        raise OSError(f'could not write {path}')


def _write_png(path: str, array: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')


def _write_lines(path: str, lines: list[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.writelines(lines)


def _samples(gen: SceneGenerator, start: int, count: int, progress: bool,
             desc: str) -> Iterator[tuple[int, SceneSample]]:
    indices = range(start, start + count)
    return progress_iter(((i - start, gen.sample(i)) for i in indices), count, progress, desc)


def write_ade20k(root: str | os.PathLike, *, num_train: int, num_val: int,
                 config: SceneConfig | None = None, seed: int = 0, progress: bool = False) -> str:
    """Write scenes in the ADE20K (ADEChallengeData2016) folder layout and label convention.

    Layout under ``root/ADEChallengeData2016``::

        images/training/ADE_train_00000001.jpg ...       annotations/training/ADE_train_00000001.png ...
        images/validation/ADE_val_00000001.jpg ...       annotations/validation/ADE_val_00000001.png ...
        image_labels_training.txt, image_labels_validation.txt   ("<stem> <image_label>" per line)

    Label encoding: annotation value = class id + 1, so 1 = 'background', ..., 9 = 'pyramid', and 0
    (ADE's 'other', ignored) never occurs. With ``reduce_zero_label=True`` (ADE's setting) the
    labels become 0..8 = ``SYNTHETIC_CLASSES``. Load with mmseg's ``BaseSegDataset`` (img_suffix
    '.jpg', seg_map_suffix '.png', ``reduce_zero_label=True``, ``metainfo=dict(classes=SYNTHETIC_CLASSES,
    palette=SYNTHETIC_PALETTE)``), not ``ADE20KDataset``: it rejects classes outside ADE's 150.
    Training scenes are indices ``0..num_train-1`` of the generator, validation scenes the next
    ``num_val`` indices, so the splits never share a scene.

    Args:
        root: output folder (created if needed).
        num_train: number of training images.
        num_val: number of validation images.
        config: scene knobs; ``None`` uses ``SceneConfig()``.
        seed: generator seed.
        progress: show a progress bar (tqdm if installed, else log lines).

    Returns:
        The dataset root ``root/ADEChallengeData2016``.
    """
    _check_count('num_train', num_train)
    _check_count('num_val', num_val)
    gen = SceneGenerator(config, seed=seed)
    data_root = os.path.join(os.fspath(root), 'ADEChallengeData2016')
    splits = (('training', 'train', 0, num_train), ('validation', 'val', num_train, num_val))
    for folder, prefix, start, count in splits:
        lines = []
        for i, sample in _samples(gen, start, count, progress, f'ADE20K {folder}'):
            stem = f'ADE_{prefix}_{i + 1:08d}'
            _write_rgb(os.path.join(data_root, 'images', folder, stem + '.jpg'), sample.image)
            _write_png(os.path.join(data_root, 'annotations', folder, stem + '.png'), sample.seg + 1)
            lines.append(f'{stem} {sample.image_label}\n')
        _write_lines(os.path.join(data_root, f'image_labels_{folder}.txt'), lines)
    return data_root


def write_nyu(root: str | os.PathLike, *, num_train: int, num_test: int, config: SceneConfig | None = None,
              seed: int = 0, progress: bool = False, frames_per_scene: int = 50) -> str:
    """Write scenes in the NYU-Depth-v2 split-file layout (BTS / Monocular-Depth-Estimation-Toolbox).

    Layout under ``root``::

        train_0000/rgb_00000.jpg, train_0000/sync_depth_00000.png, ... (``frames_per_scene`` per folder)
        test_0000/rgb_00000.jpg, test_0000/sync_depth_00000.png, ...
        nyu_train.txt, nyu_test.txt
            lines "train_0000/rgb_00000.jpg train_0000/sync_depth_00000.png 259.4290"

    Depth PNGs are uint16 millimetres (depth = value / 1000, every pixel valid). Paths in the split
    files are relative to ``root`` without a leading slash; the focal is in pixels with 4 decimals.
    The images are ``config.image_size`` (not 480x640): switch the fixed Eigen crop off. Train
    scenes are generator indices ``0..num_train-1``, test scenes the next ``num_test``.

    Args:
        root: output folder (created if needed).
        num_train: number of training frames.
        num_test: number of test frames.
        config: scene knobs; ``None`` uses ``SceneConfig()``.
        seed: generator seed.
        progress: show a progress bar.
        frames_per_scene: frames per scene folder.

    Returns:
        ``root`` as a string (the ``data_root``).
    """
    _check_count('num_train', num_train)
    _check_count('num_test', num_test)
    if isinstance(frames_per_scene, bool) or not isinstance(frames_per_scene, int) or frames_per_scene < 1:
        raise ValueError(f'frames_per_scene must be a positive integer, got {frames_per_scene!r}')
    gen = SceneGenerator(config, seed=seed)
    root = os.fspath(root)
    for split, start, count in (('train', 0, num_train), ('test', num_train, num_test)):
        lines = []
        for i, sample in _samples(gen, start, count, progress, f'NYU {split}'):
            scene = f'{split}_{i // frames_per_scene:04d}'
            rgb, depth = f'{scene}/rgb_{i:05d}.jpg', f'{scene}/sync_depth_{i:05d}.png'
            _write_rgb(os.path.join(root, rgb), sample.image)
            _write_png(os.path.join(root, depth), _encode_depth(sample.depth, 1000.0))
            lines.append(f'{rgb} {depth} {sample.focal:.4f}\n')
        _write_lines(os.path.join(root, f'nyu_{split}.txt'), lines)
    return root


def _encode_depth(depth: np.ndarray, scale: float) -> np.ndarray:
    """Metres to uint16 ``round(depth * scale)`` (0 stays 0 = invalid)."""
    return np.clip(np.round(depth * scale), 0, 65535).astype(np.uint16)


def _lidar_mask(sample: SceneSample, max_range: float, rng: np.random.Generator) -> np.ndarray:
    """Pixels hit by a simulated 64-beam LiDAR (HDL-64E-like: +2 to -24.8 degrees elevation).

    Beams are rows at ``cy - f tan(elevation)`` with a 1-pixel wobble. At low resolution, beams
    closer than 3 pixels are thinned out and each beam keeps 60% of the columns, so that GT stays
    sparse at any image size: about 6-12% of the pixels, all below a line just above the horizon.
    Returns at or beyond ``max_range`` (the sky / far wall) are dropped.
    """
    h, w = sample.depth.shape
    cy, f = sample.principal[1], sample.focal
    elevation = np.linspace(2.0, -24.8, 64)
    stride = max(1, math.ceil(3.0 / (f * math.tan(math.radians(elevation[0] - elevation[1])))))
    elevation = np.radians(elevation[::stride] + rng.uniform(-0.05, 0.05, len(elevation[::stride])))
    beams = len(elevation)
    wobble = rng.integers(-1, 2, size=(beams, w)) * (rng.random((beams, w)) < 0.3)
    rows = np.round(cy - f * np.tan(elevation)[:, None] + wobble).astype(np.int64)
    keep = (rng.random((beams, w)) < 0.6) & (rows >= 0) & (rows < h)
    mask = np.zeros((h, w), bool)
    mask[rows[keep], np.broadcast_to(np.arange(w), (beams, w))[keep]] = True
    return mask & (sample.depth < max_range)


def write_kitti(root: str | os.PathLike, *, num_train: int, num_test: int, config: SceneConfig | None = None,
                seed: int = 0, progress: bool = False, frames_per_drive: int = 100) -> str:
    """Write scenes in the KITTI Eigen-split layout (BTS / Monocular-Depth-Estimation-Toolbox).

    Layout under ``root``::

        input/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png
        gt_depth/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000000.png
        kitti_eigen_train.txt, kitti_eigen_test.txt   lines "<rgb under input/> <gt under gt_depth/> <focal>"

    Ground truth is uint16 ``round(metres * 256)`` with 0 = no measurement, and sparse like projected
    LiDAR (up to 64 beam rows from just above the horizon down, about 6-12% of the pixels). Drives hold
    ``frames_per_drive`` frames; test drives are numbered after the train drives. The default
    config is ``SceneConfig.outdoor()`` (176x608, 1-80 m), smaller than KITTI's 352x1216 KB crop:
    switch the KB crop off. Train frames are generator indices ``0..num_train-1``, test the next
    ``num_test``.

    Args:
        root: output folder (created if needed).
        num_train: number of training frames.
        num_test: number of test frames.
        config: scene knobs; ``None`` uses ``SceneConfig.outdoor()``.
        seed: generator seed (the LiDAR pattern is seeded from it too).
        progress: show a progress bar.
        frames_per_drive: frames per drive folder.

    Returns:
        ``root`` as a string (the ``data_root``; ``img_dir='input'``, ``ann_dir='gt_depth'``).
    """
    _check_count('num_train', num_train)
    _check_count('num_test', num_test)
    if isinstance(frames_per_drive, bool) or not isinstance(frames_per_drive, int) or frames_per_drive < 1:
        raise ValueError(f'frames_per_drive must be a positive integer, got {frames_per_drive!r}')
    config = config if config is not None else SceneConfig.outdoor()
    gen = SceneGenerator(config, seed=seed)
    root = os.fspath(root)
    first_test_drive = 1 + -(-num_train // frames_per_drive)
    splits = (('train', 0, num_train, 1), ('test', num_train, num_test, first_test_drive))
    for split, start, count, drive0 in splits:
        lines = []
        for i, sample in _samples(gen, start, count, progress, f'KITTI {split}'):
            drive = f'2011_09_26_drive_{drive0 + i // frames_per_drive:04d}_sync'
            rgb = f'2011_09_26/{drive}/image_02/data/{i:010d}.png'
            gt = f'{drive}/proj_depth/groundtruth/image_02/{i:010d}.png'
            lidar = _lidar_mask(sample, config.depth_range[1], np.random.default_rng([seed, start + i, 1]))
            _write_rgb(os.path.join(root, 'input', rgb), sample.image)
            sparse = _encode_depth(np.where(lidar, sample.depth, 0), 256.0)
            _write_png(os.path.join(root, 'gt_depth', gt), sparse)
            lines.append(f'{rgb} {gt} {sample.focal:.4f}\n')
        _write_lines(os.path.join(root, f'kitti_eigen_{split}.txt'), lines)
    return root


__all__ = ['SYNTHETIC_CLASSES', 'SYNTHETIC_PALETTE', 'SceneConfig', 'SceneGenerator', 'SceneObject',
           'SceneSample', 'write_ade20k', 'write_nyu', 'write_kitti']
