"""Rendering steps of the procedural scenes: class styles, shapes, textures, camera, lighting,
background, objects and the final blur, noise and quantisation.

:class:`densedino.datasets.synthetic.SceneGenerator` chains these steps; every function takes its
``numpy.random.Generator`` explicitly and never touches a global random state.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import cv2
import numpy as np

from .synthetic_config import SYNTHETIC_CLASSES, SceneConfig


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


# ----------------------------------------------------------------------------- finishing

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
