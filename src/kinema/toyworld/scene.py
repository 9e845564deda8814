"""What a toy-world clip shows: the vocabulary, the ground truth of one scene, and how scenes are drawn.

A scene is one to `max_objects` flat-colored shapes in front of a textured background, seen by a camera
that moves in one of the renderable camera-motion classes. Everything the renderer draws is a pure
function of a `SceneTruth` (its `seed` fixes the texture and the handheld shake), so a manifest row's
ground truth is enough to render the clip again.

Conventions (image x points right, y points down):
- Objects live in **screen coordinates**: `ObjectTruth.start`/`end` are the centre's pixel position in
  the first and last frame, and "moves to the right" means the object moves right *in the frame*,
  whatever the camera does. The camera moves only the background. So object motion and camera motion
  are independent and can be judged separately.
- Camera names describe the camera, as in `kinema.data.camera`: "pan left" turns the camera left, so
  the background moves right in the frame; "tilt up" moves the background down; "zoom in" magnifies it;
  "tilt left" rolls the camera counter-clockwise, so the background turns clockwise. `view_path` gives
  a scene's camera in the one camera-path convention (`kinema.data.camera_path`) that the curation
  tests' synthetic clips use too.

Held-out combinations (`HELD_OUT`) are color x shape x motion triples that training renders never
contain; the "heldout" split renders only them, to measure generalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Literal

import numpy as np

from kinema.data.camera_path import CameraPath, camera_path
# name -> RGB. High saturation and value, hues at least 45 degrees apart, so a judge can segment them
# from the backgrounds, whose saturation stays below 0.2 and value below 0.7.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "yellow": (240, 215, 30),
    "green": (40, 190, 60),
    "blue": (40, 90, 235),
    "purple": (160, 55, 225),
    "white": (250, 250, 250),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
MOTIONS: tuple[str, ...] = ("right", "left", "up", "down", "still")
# Camera-motion classes a 2D render can show unambiguously. "pan up/down" needs parallax and "around
# left/right" an orbit around a subject in world space, which screen-space objects cannot show.
CAMERAS: tuple[str, ...] = (
    "static shot",
    "handheld shot",
    "pan left",
    "pan right",
    "tilt up",
    "tilt down",
    "zoom in",
    "zoom out",
    "tilt left",
    "tilt right",
)
SIZES: dict[str, float] = {"small": 0.11, "medium": 0.14, "large": 0.17}  # shape scale / shorter frame side
# Background patterns and tints (low saturation, mid value: never mistaken for an object color).
PATTERNS: tuple[str, ...] = ("cloudy texture", "checkered floor", "dotted wall", "brick wall")
TINTS: dict[str, tuple[int, int, int]] = {
    "gray": (120, 120, 120),
    "beige": (150, 135, 112),
    "slate": (100, 110, 125),
    "brown": (115, 95, 80),
    "olive": (112, 115, 92),
}

# Color x shape x motion triples that never appear in training renders (each color, shape and motion
# still appears in training with other partners).
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("red", "triangle", "up"),
        ("green", "circle", "left"),
        ("blue", "star", "right"),
        ("yellow", "square", "down"),
        ("purple", "circle", "right"),
        ("white", "triangle", "left"),
        ("red", "square", "still"),
        ("blue", "circle", "down"),
    }
)

# How far things move over a clip, as fractions of the frame (see the judge's thresholds).
OBJECT_TRAVEL = 0.4  # moving objects cross 40% of the frame width (left/right) or height (up/down)
# A lone object's path is centred on the frame up to this fraction of the shorter side: where it is in
# each frame then follows from its motion words, which a small DiT learns far sooner than when paths
# start anywhere (benchmarks/RESULTS.md, "What makes the motion words learnable"). Objects in multi-object
# scenes start anywhere their path fits.
LANE_JITTER = 0.05
PAN_TRAVEL = 0.3  # pans and tilts shift the background by 30% of the frame
ZOOM_RANGE = 0.65  # zoom in shrinks the view window from 1.0 to this fraction (x1.54 magnification)
ROLL_ANGLE = 20.0  # degrees the camera rolls over a clip for "tilt left/right"
SHAKE = 0.03  # handheld: per-frame random offset up to this fraction of the frame
CANVAS = 1.6  # background canvas size relative to the frame: room for pans, rolls and shake

Split = Literal["train", "heldout", "all"]


@dataclass(frozen=True)
class ObjectTruth:
    """One shape: its attributes and where its centre is in the first and last frame (pixels)."""

    color: str
    shape: str
    size: str
    motion: str
    start: tuple[float, float]  # (x, y) of the centre in frame 0
    end: tuple[float, float]  # (x, y) in frame T-1; positions in between are linear in time
    radius: float  # shape scale in pixels (a circle's radius; other shapes are scaled to look alike)

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.color, self.shape, self.motion)


@dataclass(frozen=True)
class SceneTruth:
    """The ground truth of one clip; `render(scene)` draws it deterministically."""

    objects: tuple[ObjectTruth, ...]
    camera: str
    pattern: str
    tint: str
    height: int
    width: int
    frames: int
    fps: float
    seed: int  # texture and handheld shake

    @property
    def background(self) -> str:
        article = "an" if self.tint[0] in "aeiou" else "a"
        return f"{article} {self.tint} {self.pattern}"

    @property
    def held_out(self) -> bool:
        return any(o.triple in HELD_OUT for o in self.objects)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists)."""
        d = {k: getattr(self, k) for k in ("camera", "pattern", "tint", "height", "width", "frames", "fps", "seed")}
        d["objects"] = [
            {
                **{k: getattr(o, k) for k in ("color", "shape", "size", "motion", "radius")},
                "start": list(o.start),
                "end": list(o.end),
            }
            for o in self.objects
        ]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SceneTruth:
        """Inverse of `to_dict`."""
        objects = tuple(
            ObjectTruth(
                o["color"], o["shape"], o["size"], o["motion"], tuple(o["start"]), tuple(o["end"]), float(o["radius"])
            )
            for o in d["objects"]
        )
        return cls(
            objects, d["camera"], d["pattern"], d["tint"],
            int(d["height"]), int(d["width"]), int(d["frames"]), float(d["fps"]), int(d["seed"]),
        )


@dataclass(frozen=True)
class WorldConfig:
    """What the toy world draws and how often.

    Attributes:
        height, width: frame size in pixels (at least 16 each).
        frames: frames per clip, 4k+1 for the causal VAE (1 renders still images: motions "still",
            camera "static shot").
        fps: frame rate written to the video files.
        multi_object_fraction: share of scenes with more than one object.
        max_objects: most objects in a multi-object scene (2 or 3).
        colors, shapes, motions, cameras, sizes: the vocabulary to draw from (subsets of the module's).
    """

    height: int = 64
    width: int = 64
    frames: int = 17
    fps: float = 8.0
    multi_object_fraction: float = 0.2
    max_objects: int = 2
    colors: tuple[str, ...] = tuple(COLORS)
    shapes: tuple[str, ...] = SHAPES
    motions: tuple[str, ...] = MOTIONS
    cameras: tuple[str, ...] = CAMERAS
    sizes: tuple[str, ...] = tuple(SIZES)
    patterns: tuple[str, ...] = PATTERNS

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"frames must be at least 16x16 pixels, got {self.height}x{self.width}")
        if self.frames < 1 or (self.frames - 1) % 4 != 0:
            raise ValueError(f"frames must be 4k+1 (1, 5, 9, 17, ...), got {self.frames}")
        if not 0.0 <= self.multi_object_fraction <= 1.0:
            raise ValueError(f"multi_object_fraction must be in [0, 1], got {self.multi_object_fraction}")
        if not 2 <= self.max_objects <= 3:
            raise ValueError(f"max_objects must be 2 or 3, got {self.max_objects}")
        vocabulary = {
            "colors": COLORS, "shapes": SHAPES, "motions": MOTIONS,
            "cameras": CAMERAS, "sizes": SIZES, "patterns": PATTERNS,
        }
        for name, allowed in vocabulary.items():
            chosen = getattr(self, name)
            unknown = [v for v in chosen if v not in allowed]
            if not chosen or unknown:
                raise ValueError(
                    f"WorldConfig.{name} must be a non-empty subset of {list(allowed)}, got {list(chosen)}"
                )
        if self.multi_object_fraction > 0 and len(self.colors) < 2:
            raise ValueError("multi-object scenes need at least two colors (objects in a scene differ in color)")

    @property
    def held_out(self) -> tuple[tuple[str, str, str], ...]:
        """The held-out triples this vocabulary can draw (sorted)."""
        drawable = (t for t in HELD_OUT if t[0] in self.colors and t[1] in self.shapes and t[2] in self.motions)
        return tuple(sorted(drawable))


def _place(
    rng: np.random.Generator, motion: str, bound: float, config: WorldConfig, lone: bool
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and end centre of an object of bounding radius `bound` that stays inside the frame.

    A lone object's path is centred on the frame (±LANE_JITTER); otherwise it starts anywhere it fits.
    """
    h, w = config.height, config.width
    dx = {"right": OBJECT_TRAVEL * w, "left": -OBJECT_TRAVEL * w}.get(motion, 0.0)
    dy = {"down": OBJECT_TRAVEL * h, "up": -OBJECT_TRAVEL * h}.get(motion, 0.0)
    margin = bound + 1.0
    x_range = (margin + max(0.0, -dx), w - margin - max(0.0, dx))  # where the start fits
    y_range = (margin + max(0.0, -dy), h - margin - max(0.0, dy))
    if lone:
        jitter = LANE_JITTER * min(h, w)
        x0 = np.clip((w - dx) / 2 + rng.uniform(-jitter, jitter), *x_range)
        y0 = np.clip((h - dy) / 2 + rng.uniform(-jitter, jitter), *y_range)
    else:
        x0, y0 = rng.uniform(*x_range), rng.uniform(*y_range)
    return (float(x0), float(y0)), (float(x0 + dx), float(y0 + dy))


def _apart(a: ObjectTruth, b: ObjectTruth, frames: int) -> bool:
    """True when two objects never touch over the clip (bounding circles with a 2 px gap)."""
    gap = bounding_radius(a) + bounding_radius(b) + 2.0
    for t in np.linspace(0.0, 1.0, max(frames, 2)):
        pa = np.add(a.start, t * np.subtract(a.end, a.start))
        pb = np.add(b.start, t * np.subtract(b.end, b.start))
        if np.hypot(*(pa - pb)) < gap:
            return False
    return True


# Shape scale -> bounding radius: how far the drawn shape reaches from its centre (see render.py).
SHAPE_REACH: dict[str, float] = {"circle": 1.0, "square": 1.15, "triangle": 1.3, "star": 1.35}


def bounding_radius(obj: ObjectTruth) -> float:
    """Radius in pixels of the circle around the object's centre that contains the drawn shape."""
    return obj.radius * SHAPE_REACH[obj.shape]


def _draw_triple(
    rng: np.random.Generator, config: WorldConfig, split: Split, used_colors: set[str]
) -> tuple[str, str, str]:
    """A color x shape x motion triple for the split, with a color not yet used in the scene."""
    motions = config.motions if config.frames > 1 else ("still",)
    if split == "heldout":
        pool = [t for t in config.held_out if t[0] not in used_colors and t[2] in motions]
        if not pool:
            raise ValueError("the configured vocabulary contains no held-out color x shape x motion triple")
        return pool[rng.integers(len(pool))]
    for _ in range(1000):
        colors = [c for c in config.colors if c not in used_colors]
        t = (
            colors[rng.integers(len(colors))],
            config.shapes[rng.integers(len(config.shapes))],
            motions[rng.integers(len(motions))],
        )
        if split == "all" or t not in HELD_OUT:
            return t
    raise ValueError("the configured vocabulary has only held-out combinations; nothing can be drawn for training")


def sample_scene(rng: np.random.Generator, config: WorldConfig, split: Split = "train") -> SceneTruth:
    """Draw one scene.

    Args:
        rng: the source of randomness (the scene is a function of its state).
        config: vocabulary, frame size and frequencies.
        split: "train" never draws a held-out triple; "heldout" draws single-object scenes whose triple
            is held out; "all" draws anything.
    """
    n_objects = 1
    if split != "heldout" and rng.random() < config.multi_object_fraction:
        n_objects = int(rng.integers(2, config.max_objects + 1))
    sizes = config.sizes if n_objects == 1 else tuple(s for s in config.sizes if s != "large") or config.sizes
    objects: list[ObjectTruth] = []
    for _ in range(200):  # rejection sampling for objects that never overlap
        if len(objects) == n_objects:
            break
        color, shape, motion = _draw_triple(rng, config, split, {o.color for o in objects})
        size = sizes[rng.integers(len(sizes))]
        radius = SIZES[size] * min(config.height, config.width)
        start, end = _place(rng, motion, radius * SHAPE_REACH[shape], config, n_objects == 1)
        obj = ObjectTruth(color, shape, size, motion, start, end, float(radius))
        if all(_apart(obj, other, config.frames) for other in objects):
            objects.append(obj)
    cameras = config.cameras if config.frames > 1 else ("static shot",)
    return _finish_scene(objects, cameras[rng.integers(len(cameras))], config, rng)


def scene_for(objects: Sequence[tuple[str, str, str]], camera: str, config: WorldConfig, seed: int) -> SceneTruth:
    """A scene showing exactly the given (color, shape, motion) objects and camera motion.

    Sizes, positions, background and shake are drawn from `seed` (used to render a prompt's content,
    e.g. as a ground-truth "generator"). Held-out triples are allowed.

    Raises:
        ValueError: for an unknown color, shape, motion or camera, or objects that cannot be placed
            without overlapping.
    """
    rng = np.random.default_rng([seed, 3])
    for color, shape, motion in objects:
        if color not in COLORS or shape not in SHAPES or motion not in MOTIONS:
            raise ValueError(
                f"unknown object ({color}, {shape}, {motion}); expected colors {list(COLORS)}, "
                f"shapes {list(SHAPES)}, motions {list(MOTIONS)}"
            )
    if camera not in CAMERAS:
        raise ValueError(f"the toy world cannot render the camera motion {camera!r}; it renders {list(CAMERAS)}")
    sizes = config.sizes if len(objects) == 1 else tuple(s for s in config.sizes if s != "large") or config.sizes
    placed: list[ObjectTruth] = []
    for color, shape, motion in objects:
        for _ in range(200):
            size = sizes[rng.integers(len(sizes))]
            radius = SIZES[size] * min(config.height, config.width)
            start, end = _place(rng, motion, radius * SHAPE_REACH[shape], config, len(objects) == 1)
            obj = ObjectTruth(color, shape, size, motion, start, end, float(radius))
            if all(_apart(obj, other, config.frames) for other in placed):
                placed.append(obj)
                break
        else:
            raise ValueError(
                f"cannot place {len(objects)} objects without overlap in a {config.height}x{config.width} frame"
            )
    return _finish_scene(placed, camera, config, rng)


def _finish_scene(
    objects: Sequence[ObjectTruth], camera: str, config: WorldConfig, rng: np.random.Generator
) -> SceneTruth:
    """The scene of placed objects: background pattern, tint and texture seed drawn from `rng`, in that order."""
    return SceneTruth(
        objects=tuple(objects),
        camera=camera,
        pattern=config.patterns[rng.integers(len(config.patterns))],
        tint=tuple(TINTS)[rng.integers(len(TINTS))],
        height=config.height,
        width=config.width,
        frames=config.frames,
        fps=config.fps,
        seed=int(rng.integers(2**31 - 1)),
    )


def sample_scenes(
    n: int, config: WorldConfig | None = None, seed: int = 0, split: Split = "train", start: int = 0
) -> list[SceneTruth]:
    """Draw scenes start .. start+n-1; scene i depends only on (seed, split, i, config), not on n."""
    config = config or WorldConfig()
    salt = {"train": 0, "heldout": 1, "all": 2}[split]
    return [sample_scene(np.random.default_rng([seed, salt, i]), config, split) for i in range(start, start + n)]


def object_centers(obj: ObjectTruth, frames: int) -> np.ndarray:
    """(T, 2) centre (x, y) per frame: linear from `start` to `end`."""
    t = np.linspace(0.0, 1.0, frames)[:, None] if frames > 1 else np.zeros((1, 1))
    return np.asarray(obj.start) + t * (np.asarray(obj.end) - np.asarray(obj.start))


def view_path(scene: SceneTruth) -> CameraPath:
    """The scene's camera, in the convention of `kinema.data.camera_path`, offsets in frame pixels.

    Pans and tilts travel `PAN_TRAVEL` of the frame, centred on the middle frame; rolls turn
    `ROLL_ANGLE` in all, centred likewise; zooms magnify by 1 / `ZOOM_RANGE` and keep the whole frame
    in view at their widest (zoom in starts there, zoom out ends there); a handheld camera shakes up
    to `SHAKE` of the frame around the centre.
    """
    T, h, w = scene.frames, scene.height, scene.width
    t = np.linspace(0.0, 1.0, T) if T > 1 else np.zeros(1)
    cam = scene.camera
    if cam == "handheld shot":
        shake = np.random.default_rng([scene.seed, 7]).uniform(-1.0, 1.0, (T, 2)) * SHAKE * np.array([w, h])
        return camera_path(cam, t, (w, h), shake=shake - shake.mean(0))
    progress = {"zoom in": t, "zoom out": t - 1.0}.get(cam, t - 0.5)
    return camera_path(cam, progress, (w, h), travel=PAN_TRAVEL, zoom=-np.log(ZOOM_RANGE),
                       roll=np.radians(ROLL_ANGLE))
