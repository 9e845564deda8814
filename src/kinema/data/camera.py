"""Camera-motion classification into the 14 classes of HunyuanVideo (arXiv:2412.03603, "Data Annotation").

Method: track sparse corners between consecutive frames (Shi-Tomasi + pyramidal Lucas-Kanade with a
forward-backward check), fit a similarity transform per frame pair with RANSAC (translation, scale,
in-plane rotation), measure the parallax left after the fit and how the centre of the frame moves
against its surround, and turn the clip's averages into one score per class.

Conventions (image x points right, y points down; the names describe the *camera*, the frame shows the
opposite motion of the content):

    static shot    global motion below every threshold
    handheld shot  jittery translation whose frame-to-frame spread exceeds its mean drift
    pan left       camera turns left: content moves RIGHT in the frame      (horizontal translation)
    pan right      camera turns right: content moves LEFT
    tilt up        camera turns up: content moves DOWN                      (vertical translation)
    tilt down      camera turns down: content moves UP
    pan up         camera rises (pedestal): content moves DOWN *with parallax* (near layers faster)
    pan down       camera lowers: content moves UP with parallax
    zoom in        content grows                                            (scale > 1)
    zoom out       content shrinks
    tilt left      camera rolls counter-clockwise (its top leans left): content turns CLOCKWISE
    tilt right     camera rolls clockwise: content turns counter-clockwise
    around left    camera orbits to its left around a central subject: the background moves LEFT
                   while the centre of the frame moves right (or stays)
    around right   orbit to the right: background moves RIGHT, centre moves left

A pure image translation cannot tell a camera that turns from one that travels (no depth cue), so
vertical translation without parallax is named "tilt up/down" and horizontal "pan left/right", the
cinematographer's terms; "pan up/down" needs parallax evidence. `IMAGE_EQUIVALENT` lists the
classes that look the same without depth, for judges comparing against renders that have none.

Thresholds are per frame pair and assume frames sampled at about 8 fps (the toy world's rate; the
curation pipeline samples clips at that rate), sizes are fractions of the frame so any resolution
works, from 64x64 toy clips to 4K (frames are downscaled to `max_side` first).

Shape legend: T frames, H height, W width, N tracks, P frame pairs measured (T - 1 unless chosen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kinema.caption.schema import CAMERA_MOTIONS, CameraMotion

# Classes that are indistinguishable from image motion alone (no parallax in the scene).
IMAGE_EQUIVALENT: dict[str, str] = {"pan up": "tilt up", "pan down": "tilt down"}


@dataclass(frozen=True)
class CameraConfig:
    """Thresholds of the camera-motion classifier.

    Attributes:
        max_side: frames are downscaled so their longer side is at most this (pixels).
        min_side: frames smaller than this are upscaled first, so tracking windows fit.
        translation: mean content shift per frame pair, as a fraction of the frame, that counts as
            motion (0.003 = 0.2 px per frame at 64 px, 0.8 px at 256 px).
        zoom: mean |log scale| per frame pair that counts as a zoom (0.006 moves the frame edge by
            0.3% of the frame, matching `translation`).
        roll: mean rotation per frame pair in radians that counts as a roll.
        jitter: standard deviation of the per-pair shift (fraction of the frame) that counts as
            handheld shake.
        parallax: relative spread of track motion along the pan direction at which a translation is
            called a camera move with parallax ("pan up/down") rather than a turn.
        sharpness: exponent turning strengths into probabilities (p ~ strength**sharpness).
        max_corners: corners tracked per frame pair.
    """

    max_side: int = 256
    min_side: int = 128
    translation: float = 0.003
    zoom: float = 0.006
    roll: float = 0.006
    jitter: float = 0.006
    parallax: float = 0.35
    sharpness: float = 4.0
    max_corners: int = 300

    def __post_init__(self) -> None:
        for name in ("translation", "zoom", "roll", "jitter", "parallax", "sharpness"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CameraConfig.{name} must be positive, got {getattr(self, name)}")
        if self.min_side > self.max_side:
            raise ValueError(f"CameraConfig.min_side ({self.min_side}) must not exceed max_side ({self.max_side})")


@dataclass(frozen=True)
class GlobalMotion:
    """Global motion of a clip, one entry per measured pair of consecutive frames.

    Attributes:
        shift: (P, 2) content displacement (x, y) as fractions of the frame width and height.
        log_scale: (P,) log of the content magnification (> 0: zooming in).
        angle: (P,) content rotation in radians, positive = clockwise on screen.
        parallax: (P,) spread of track motion along the shift direction relative to the shift
            (0 for a rigid shift; NaN where the shift is too small to tell).
        center_ratio: (P,) horizontal motion of the frame's centre divided by that of its surround
            (1 for a pan, < 0 when the centre moves against the background; NaN when unknown).
        tracks: (P,) number of tracks that agreed with the fitted transform.
    """

    shift: np.ndarray
    log_scale: np.ndarray
    angle: np.ndarray
    parallax: np.ndarray
    center_ratio: np.ndarray
    tracks: np.ndarray


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 RGB array, got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"camera motion needs at least 2 frames, got {frames.shape[0]}")


def _gray_size(h: int, w: int, config: CameraConfig) -> tuple[int, int]:
    """(w, h) with the longer side <= max_side and the shorter >= min_side."""
    factor = min(1.0, config.max_side / max(h, w))
    if min(h, w) * factor < config.min_side:
        factor = min(config.min_side / min(h, w), max(1.0, config.max_side / max(h, w)))
    return max(8, round(w * factor)), max(8, round(h * factor))


def _to_gray(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One RGB frame as grayscale at `size` (w, h)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if size == (w, h):
        return gray
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)


def _track(prev: np.ndarray, curr: np.ndarray, config: CameraConfig) -> tuple[np.ndarray, np.ndarray]:
    """Track corners from `prev` to `curr`. Returns matched points (N, 2) in each frame."""
    h, w = prev.shape
    side = min(h, w)
    corners = cv2.goodFeaturesToTrack(
        prev, maxCorners=config.max_corners, qualityLevel=0.01, minDistance=max(2, side // 40), blockSize=5
    )
    if corners is None or len(corners) < 6:
        # Flat frames: fall back to a regular grid, tracked the same way.
        ys, xs = np.mgrid[side // 8 : h - side // 8 : max(2, side // 12), side // 8 : w - side // 8 : max(2, side // 12)]
        corners = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)[:, None, :]
    # A low eigenvalue threshold keeps corners of smooth textures; the forward-backward check below
    # is what rejects bad tracks.
    lk = dict(
        winSize=(15, 15),
        maxLevel=3,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
        minEigThreshold=1e-6,
    )
    fwd, ok1, _ = cv2.calcOpticalFlowPyrLK(prev, curr, corners, None, **lk)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(curr, prev, fwd, None, **lk)
    err = np.linalg.norm((back - corners).reshape(-1, 2), axis=1)
    good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (err < max(0.5, side / 200))
    return corners.reshape(-1, 2)[good], fwd.reshape(-1, 2)[good]


def estimate_global_motion(
    frames: np.ndarray, config: CameraConfig | None = None, pairs: np.ndarray | None = None
) -> GlobalMotion:
    """Fit a similarity transform to sparse tracks between pairs of consecutive frames.

    Args:
        frames: (T, H, W, 3) uint8 RGB, T >= 2, ideally sampled at about 8 fps.
        config: thresholds and sizes; defaults to `CameraConfig()`.
        pairs: (P,) indices k of the pairs (frame k, frame k + 1) to measure; all T - 1 by default.
            A few pairs spread over a long clip cost less than all of them and keep the per-pair
            motion at the sampling interval the thresholds assume.

    Raises:
        ValueError: if `frames` is not a (T >= 2, H, W, 3) uint8 array or a pair is out of range.
    """
    config = config or CameraConfig()
    _check_frames(frames)
    pairs = np.arange(len(frames) - 1) if pairs is None else np.asarray(pairs, np.int64)
    if len(pairs) == 0 or pairs.min() < 0 or pairs.max() >= len(frames) - 1:
        raise ValueError(f"pairs must be indices in [0, {len(frames) - 2}], got {pairs.tolist()}")
    size = _gray_size(*frames.shape[1:3], config)
    gray = {int(i): _to_gray(frames[i], size) for i in np.unique(np.concatenate([pairs, pairs + 1]))}
    w, h = size
    n = len(pairs)
    shift = np.zeros((n, 2))
    log_scale = np.zeros(n)
    angle = np.zeros(n)
    parallax = np.full(n, np.nan)
    center_ratio = np.full(n, np.nan)
    tracks = np.zeros(n, np.int64)
    center = np.array([w / 2, h / 2])
    for k, first in enumerate(pairs):
        p, q = _track(gray[int(first)], gray[int(first) + 1], config)  # (N, 2) each
        if len(p) < 3:
            continue  # nothing trackable: count the pair as still
        matrix, inliers = cv2.estimateAffinePartial2D(
            p, q, method=cv2.RANSAC, ransacReprojThreshold=max(0.75, min(h, w) / 128), maxIters=500
        )
        if matrix is None:
            continue
        a, b = matrix[0, 0], matrix[1, 0]
        scale = float(np.hypot(a, b))
        # Displacement of the frame centre = the translation part, independent of where the origin is.
        moved_center = matrix[:, :2] @ center + matrix[:, 2]
        d = moved_center - center
        shift[k] = d / np.array([w, h])
        log_scale[k] = np.log(max(scale, 1e-6))
        angle[k] = np.arctan2(b, a)
        tracks[k] = int(inliers.sum()) if inliers is not None else len(p)

        flow = q - p  # (N, 2)
        norm = float(np.linalg.norm(d))
        if norm > 0.25:  # pixels; below this the direction of the shift is noise
            u = d / norm
            along, across = flow @ u, flow @ np.array([-u[1], u[0]])  # (N,) each
            # Tracking noise spreads both components alike; parallax spreads only the one along
            # the motion, so the difference measures depth layers without a noise floor to tune.
            # The interquartile range ignores a few stray tracks.
            # Depth layers all move the way the camera makes them, at different speeds; tracks that
            # stand still or move against the shift belong to objects moving on their own.
            layer = (along > 0.3 * norm) & (along < 3.0 * norm)
            if layer.sum() >= 8:
                spread = lambda x: np.percentile(x, 75) - np.percentile(x, 25)  # noqa: E731
                parallax[k] = max(0.0, spread(along[layer]) - spread(across[layer])) / norm
        inner = (np.abs(p[:, 0] - center[0]) < 0.15 * w) & (np.abs(p[:, 1] - center[1]) < 0.2 * h)
        if inner.sum() >= 4 and (~inner).sum() >= 4:
            outer_dx = float(np.median(flow[~inner, 0]))
            if abs(outer_dx) > 0.25:
                center_ratio[k] = float(np.median(flow[inner, 0])) / outer_dx
    return GlobalMotion(shift, log_scale, angle, parallax, center_ratio, tracks)


def scores_from_motion(motion: GlobalMotion, config: CameraConfig | None = None) -> np.ndarray:
    """Per-class probabilities from measured global motion.

    Each class gets a strength (its evidence divided by its threshold; "static shot" is fixed at 1)
    and probabilities are strength**sharpness, normalised, so a class wins once its evidence passes
    its threshold and the others'.

    Returns:
        (14,) float64 probabilities in the order of `CAMERA_MOTIONS`.
    """
    config = config or CameraConfig()
    mean_shift = motion.shift.mean(0)  # (2,)
    h = mean_shift[0] / config.translation
    v = mean_shift[1] / config.translation
    z = motion.log_scale.mean() / config.zoom
    r = motion.angle.mean() / config.roll
    # Handheld: spread of the per-pair shift around its mean (a steady pan has none).
    jitter = float(np.linalg.norm(motion.shift.std(0))) / config.jitter if len(motion.shift) > 1 else 0.0

    with np.errstate(all="ignore"):
        par = np.nanmedian(motion.parallax) if np.isfinite(motion.parallax).any() else 0.0
        ratio = np.nanmedian(motion.center_ratio) if np.isfinite(motion.center_ratio).any() else 1.0
    p = float(np.clip((par - config.parallax) / config.parallax + 0.5, 0.0, 1.0))  # 0.5 at the threshold
    orbit = float(np.clip(-ratio / 0.2, 0.0, 1.0))  # centre moving against the surround

    strength = {
        "static shot": 1.0,
        "handheld shot": jitter,
        "pan left": max(h, 0.0) * (1 - orbit),
        "pan right": max(-h, 0.0) * (1 - orbit),
        "around left": max(-h, 0.0) * orbit,
        "around right": max(h, 0.0) * orbit,
        "tilt up": max(v, 0.0) * (1 - p),
        "tilt down": max(-v, 0.0) * (1 - p),
        "pan up": max(v, 0.0) * p,
        "pan down": max(-v, 0.0) * p,
        "zoom in": max(z, 0.0),
        "zoom out": max(-z, 0.0),
        "tilt left": max(r, 0.0),
        "tilt right": max(-r, 0.0),
    }
    s = np.array([strength[name] for name in CAMERA_MOTIONS], np.float64)
    weights = np.power(np.maximum(s, 0.0), config.sharpness) + 1e-12
    return weights / weights.sum()


def camera_motion_scores(frames: np.ndarray, config: CameraConfig | None = None) -> np.ndarray:
    """Per-class probabilities of the 14 camera motions for a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB, T >= 2, ideally sampled at about 8 fps.
        config: thresholds; defaults to `CameraConfig()`.

    Returns:
        (14,) float64 probabilities in the order of `kinema.caption.schema.CAMERA_MOTIONS`.
    """
    config = config or CameraConfig()
    return scores_from_motion(estimate_global_motion(frames, config), config)


def classify_camera_motion(frames: np.ndarray, config: CameraConfig | None = None) -> CameraMotion:
    """The most likely camera motion of a clip with its probability as the confidence.

    Args:
        frames: (T, H, W, 3) uint8 RGB, T >= 2, ideally sampled at about 8 fps.
        config: thresholds; defaults to `CameraConfig()`.

    Raises:
        ValueError: if `frames` is not a (T >= 2, H, W, 3) uint8 array.
    """
    scores = camera_motion_scores(frames, config)
    best = int(np.argmax(scores))
    return CameraMotion(type=CAMERA_MOTIONS[best], confidence=float(np.clip(scores[best], 0.0, 1.0)))
