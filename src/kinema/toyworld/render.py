"""Render toy-world scenes to uint8 RGB video, deterministically and fast.

Pipeline per batch of scenes (all the same T, H, W):
1. background: a textured canvas `CANVAS` times the frame, one per scene, seen through the camera's
   view window (`scene.view_path`) with one affine warp per frame;
2. objects: anti-aliased coverage from signed distance functions, computed for all objects of one
   shape at once, in (N, T, P, P) patches around them;
3. composite: objects blended over the background in order, in the patches only (uint8 frames).

Shape legend: N scenes, T frames, H height, W width, P patch side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from kinema.caption.schema import Caption, caption_to_prompt
from kinema.toyworld.captions import scene_caption
from kinema.toyworld.scene import (
    CANVAS,
    COLORS,
    TINTS,
    ObjectTruth,
    SceneTruth,
    Split,
    WorldConfig,
    bounding_radius,
    object_centers,
    sample_scenes,
    view_path,
)

BACKGROUND_MIN, BACKGROUND_MAX = 30, 200  # background value range (the judge's white starts at 217)

# Regular polygons and stars as (points, outer reach, inner/outer radius ratio, tip angle in degrees).
# Reaches match `scene.SHAPE_REACH`, chosen so the four shapes look about equally big.
_POLYGONS: dict[str, tuple[int, float, float, float]] = {
    "square": (4, 1.15, math.cos(math.pi / 4), 45.0),  # axis-aligned edges: corners at 45 degrees
    "triangle": (3, 1.3, math.cos(math.pi / 3), -90.0),  # apex up (y points down)
    "star": (5, 1.35, 0.45, -90.0),  # five points, one up
}


@dataclass(frozen=True)
class ToySample:
    """One rendered clip with everything known about it."""

    video: np.ndarray  # (T, H, W, 3) uint8 RGB
    truth: SceneTruth
    caption: Caption
    prompt: str  # caption_to_prompt(caption), deterministic


# ---------------------------------------------------------------------------------------------- background


def background_canvas(scene: SceneTruth) -> np.ndarray:
    """The scene's textured canvas: (ceil(CANVAS*H), ceil(CANVAS*W), 3) uint8 RGB.

    Smooth noise at two scales everywhere (texture the camera classifier can track) plus the pattern.
    Values stay in [30, 200] and saturation low, so no background pixel looks like an object.
    """
    rng = np.random.default_rng([scene.seed, 1])
    ch, cw = math.ceil(CANVAS * scene.height), math.ceil(CANVAS * scene.width)
    side = min(scene.height, scene.width)

    def noise(cells: int) -> np.ndarray:
        grid = rng.standard_normal((max(2, ch * cells // side), max(2, cw * cells // side))).astype(np.float32)
        return cv2.resize(grid, (cw, ch), interpolation=cv2.INTER_CUBIC)

    value = 14.0 * noise(4) + 14.0 * noise(12)  # (ch, cw)
    ys, xs = np.mgrid[0:ch, 0:cw].astype(np.float32)
    cell = side / 6.0
    if scene.pattern == "checkered floor":
        value += 22.0 * np.where((np.floor(xs / cell) + np.floor(ys / cell)) % 2 == 0, 1.0, -1.0)
    elif scene.pattern == "dotted wall":
        d = np.hypot((xs % cell) - cell / 2, (ys % cell) - cell / 2)
        value += 40.0 * np.clip(cell * 0.22 - d + 0.5, 0.0, 1.0) - 8.0
    elif scene.pattern == "brick wall":
        row = np.floor(ys / (cell * 0.6))
        shifted = xs + (row % 2) * cell * 0.6
        mortar = (ys % (cell * 0.6) < 1.2) | (shifted % (cell * 1.2) < 1.2)
        value += np.where(mortar, 30.0, -5.0)
    tint = np.asarray(TINTS[scene.tint], np.float32)
    canvas = tint[None, None, :] + value[..., None] * (0.75 + 0.25 * tint / tint.mean())[None, None, :]
    # Clamped so no background pixel can pass for "white" (value >= 0.85) or for a vivid color.
    return np.clip(np.rint(canvas), BACKGROUND_MIN, BACKGROUND_MAX).astype(np.uint8)


def render_background(scene: SceneTruth) -> np.ndarray:
    """(T, H, W, 3) uint8 background as the camera sees it."""
    canvas = background_canvas(scene)
    path = view_path(scene)
    h, w = scene.height, scene.width
    # The view window over the canvas: centred on the canvas at the path's origin, exp(-log_zoom) times
    # the frame, turned by the roll.
    centers = np.array([CANVAS * w / 2, CANVAS * h / 2]) + path.offset  # (T, 2) canvas pixels
    scales, a = np.exp(-path.log_zoom), path.roll
    # Inverse maps frame -> canvas: rotate and scale about the frame centre, then move to the window centre.
    rot = np.stack([np.cos(a), -np.sin(a), np.sin(a), np.cos(a)], 1).reshape(-1, 2, 2)  # (T, 2, 2)
    rot = scales[:, None, None] * rot
    offset = centers - rot @ np.array([(w - 1) / 2, (h - 1) / 2])  # (T, 2)
    maps = np.concatenate([rot, offset[:, :, None]], 2)  # (T, 2, 3)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.stack([cv2.warpAffine(canvas, m, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT) for m in maps])


# ------------------------------------------------------------------------------------------------- objects


def polygon_sdf(u: np.ndarray, v: np.ndarray, points: int, reach: float, inner: float, tip_deg: float) -> np.ndarray:
    """Signed distance (negative inside) to a regular polygon or star centred at the origin.

    The shape alternates `points` tips at radius `reach` and inner vertices at `inner * reach`; a regular
    polygon is the case inner = cos(pi / points). The plane is folded into one wedge between a tip and
    the next inner vertex (the shape is symmetric under those rotations and mirrors), where the boundary
    is a single segment.

    Args:
        u, v: coordinates relative to the centre, in units of the shape scale (any equal shapes).
    """
    half = math.pi / points  # angle between a tip and the next inner vertex
    theta = np.mod(np.arctan2(v, u) - math.radians(tip_deg), 2 * half)
    theta = np.minimum(theta, 2 * half - theta)  # mirror into [0, half]
    rho = np.hypot(u, v)
    qx, qy = rho * np.cos(theta), rho * np.sin(theta)
    ax, ay = reach, 0.0  # the tip
    bx, by = inner * reach * math.cos(half), inner * reach * math.sin(half)  # the inner vertex
    ex, ey = bx - ax, by - ay
    h = np.clip(((qx - ax) * ex + (qy - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.hypot(qx - ax - h * ex, qy - ay - h * ey)
    # Inside when on the same side of the edge as the origin (cross product sign).
    side = ex * (qy - ay) - ey * (qx - ax)
    origin_side = ex * (0 - ay) - ey * (0 - ax)
    return np.where(side * origin_side > 0, -dist, dist)


def shape_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance in units of the shape scale (a circle has radius 1)."""
    if shape == "circle":
        return np.hypot(u, v) - 1.0
    return polygon_sdf(u, v, *_POLYGONS[shape])


def object_coverage(shape: str, centers: np.ndarray, radii: np.ndarray, origins: np.ndarray, patch: int) -> np.ndarray:
    """Anti-aliased coverage of same-shaped objects in square patches around them.

    Args:
        centers: (N, T, 2) centre (x, y) per object and frame, frame pixels.
        radii: (N,) shape scale in pixels.
        origins: (N, T, 2) top-left (x, y) of each patch in the frame, integers.
        patch: patch side P in pixels.

    Returns:
        (N, T, P, P) float32 in [0, 1].
    """
    grid = np.arange(patch, dtype=np.float32)
    rel = (origins - centers).astype(np.float32)  # (N, T, 2) patch origin relative to the centre
    r = radii.astype(np.float32)[:, None, None, None]
    u = (rel[..., 0, None, None] + grid[None, None, None, :]) / r  # (N, T, 1, P)
    v = (rel[..., 1, None, None] + grid[None, None, :, None]) / r  # (N, T, P, 1)
    u, v = np.broadcast_arrays(u, v)  # (N, T, P, P)
    sdf = shape_sdf(shape, u, v) * r  # pixels
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _paint(video: np.ndarray, idx: Sequence[int], objects: Sequence[ObjectTruth]) -> None:
    """Paint same-shaped objects, one into each clip `video[idx[k]]` of (N, T, H, W, 3) uint8, in place.

    Coverage is computed only in a patch around each object (objects stay inside the frame, so a patch
    of side 2 * reach + 3 around the rounded centre, shifted to lie inside the frame, holds all of it).
    """
    _, T, H, W, _ = video.shape
    patch = min(H, W, math.ceil(2 * max(bounding_radius(o) for o in objects)) + 3)
    centers = np.stack([object_centers(o, T) for o in objects])  # (n, T, 2)
    origins = np.rint(centers).astype(np.int64) - patch // 2
    origins[..., 0] = np.clip(origins[..., 0], 0, W - patch)
    origins[..., 1] = np.clip(origins[..., 1], 0, H - patch)
    alpha = object_coverage(objects[0].shape, centers, np.array([o.radius for o in objects]), origins, patch)[..., None]
    for k, (i, obj) in enumerate(zip(idx, objects)):
        color = np.asarray(COLORS[obj.color], np.float32)
        for t in range(T):
            x0, y0 = origins[k, t]
            view = video[i, t, y0 : y0 + patch, x0 : x0 + patch]  # (P, P, 3)
            a = alpha[k, t]  # (P, P, 1)
            view[:] = np.rint(view * (1.0 - a) + color * a).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- rendering


def render_batch(scenes: Sequence[SceneTruth], chunk: int = 64) -> np.ndarray:
    """Render scenes that share a frame count and size.

    Args:
        scenes: N scenes with equal (frames, height, width).
        chunk: scenes whose objects' coverage is computed in one vectorised block (bounds memory).

    Returns:
        (N, T, H, W, 3) uint8 RGB.

    Raises:
        ValueError: if the scenes differ in frame count or size.
    """
    if not scenes:
        raise ValueError("render_batch needs at least one scene")
    dims = {(s.frames, s.height, s.width) for s in scenes}
    if len(dims) > 1:
        raise ValueError(f"scenes in one batch must share (frames, height, width); got {sorted(dims)}")
    T, H, W = dims.pop()
    out = np.empty((len(scenes), T, H, W, 3), np.uint8)
    for k, scene in enumerate(scenes):
        out[k] = render_background(scene)
    for lo in range(0, len(scenes), chunk):
        block = range(lo, min(lo + chunk, len(scenes)))
        depth = max(len(scenes[k].objects) for k in block)
        for layer in range(depth):  # paint object 0 first, so later objects lie on top
            members = [(k, scenes[k].objects[layer]) for k in block if len(scenes[k].objects) > layer]
            for shape in sorted({o.shape for _, o in members}):
                group = [(k, o) for k, o in members if o.shape == shape]
                _paint(out, [k for k, _ in group], [o for _, o in group])
    return out


def render(scene: SceneTruth) -> np.ndarray:
    """Render one scene. Returns (T, H, W, 3) uint8 RGB."""
    return render_batch([scene])[0]


def render_samples(
    n: int, config: WorldConfig | None = None, seed: int = 0, split: Split = "train", start: int = 0
) -> list[ToySample]:
    """Draw and render scenes start .. start+n-1 with their captions and prompts (see `sample_scenes`)."""
    scenes = sample_scenes(n, config, seed, split, start)
    videos = render_batch(scenes) if scenes else []
    samples = []
    for scene, video in zip(scenes, videos):
        caption = scene_caption(scene)
        samples.append(ToySample(video, scene, caption, caption_to_prompt(caption)))
    return samples
