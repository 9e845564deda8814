"""Synthetic videos with known ground truth, for tests and benchmarks of the curation stages.

Every generator is deterministic for a seed and returns uint8 RGB frames of shape (T, H, W, 3).
Camera motion is rendered by warping a larger textured canvas (or a real photograph) with a
per-frame similarity transform, so the true global motion of every frame is known exactly. The
camera of every one of the 14 classes moves as `kinema.data.camera_path` says (the convention of
`kinema.data.camera`: "pan left" turns the camera left, so the content moves right in the frame),
at a constant speed from the first frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from kinema.data.camera_path import CameraPath, camera_path


def textured_canvas(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colorful, feature-rich texture: smoothed noise at several scales plus random shapes.

    Returns:
        (height, width, 3) uint8 RGB.
    """
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
        h, w = max(2, height // scale), max(2, width // scale)
        noise = rng.random((h, w, 3), dtype=np.float32)
        canvas += weight * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas = np.clip(canvas * 255.0, 0, 255).astype(np.uint8)
    for _ in range(max(8, height * width // 600)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(2, max(3, min(height, width) // 12)))
        if rng.random() < 0.5:
            cv2.circle(canvas, (x, y), r, color, -1)
        else:
            cv2.rectangle(canvas, (x - r, y - r), (x + r, y + r), color, -1)
    return canvas


def photo_canvas(name: str = "astronaut") -> np.ndarray:
    """A real photograph from scikit-image's bundled data (offline), as uint8 RGB (H, W, 3)."""
    from skimage import data  # test-only dependency

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def _view(canvas: np.ndarray, height: int, width: int, shift: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """Sample an (height, width) view centred on the canvas whose content is moved by `shift` (pixels, x right,
    y down), magnified by `scale` and turned by `angle` (radians, clockwise on screen)."""
    ch, cw = canvas.shape[:2]
    # Output point p = R*s*(q - c_canvas) + c_out + shift, inverted to map output pixels to canvas.
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    forward = np.array(
        [
            [cos, -sin, width / 2 + shift[0] - (cos * cw / 2 - sin * ch / 2)],
            [sin, cos, height / 2 + shift[1] - (sin * cw / 2 + cos * ch / 2)],
        ]
    )
    return cv2.warpAffine(canvas, forward, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _synthetic_path(motion: str, frames: int, size: int, speed: float, seed: int) -> CameraPath:
    """A constant-speed path from frame 0: `speed` is the motion per frame as a fraction of `size`, the
    short side (zoom: log magnification per frame; roll: radians per frame)."""
    t = np.arange(frames, dtype=np.float64)
    if motion != "handheld shot":
        return camera_path(motion, t, (size, size), travel=speed, zoom=speed, roll=speed)
    rng = np.random.default_rng(seed)
    jitter = rng.normal(0.0, 1.0, (frames, 2))
    jitter_roll = rng.normal(0.0, 0.002, frames)
    return camera_path(motion, t, (size, size), shake=-jitter * 0.02 * size, shake_roll=-jitter_roll)


def render_camera_motion(
    motion: str,
    frames: int = 17,
    height: int = 64,
    width: int = 64,
    speed: float = 0.02,
    seed: int = 0,
    canvas: np.ndarray | None = None,
) -> np.ndarray:
    """Render a clip whose camera moves as `motion` (any of the 14 classes) over a textured (or given) canvas.

    "pan up/down" (camera translates: parallax) get a near layer in the lower half that moves
    twice as fast as the far layer; "around left/right" (orbit) get a central foreground patch that
    moves against the background, as points in front of the orbit's pivot do.

    Returns:
        (frames, height, width, 3) uint8 RGB.
    """
    rng = np.random.default_rng(seed)
    if canvas is None:
        canvas = textured_canvas(3 * height, 3 * width, seed=int(rng.integers(1 << 31)))
    path = _synthetic_path(motion, frames, min(height, width), speed, seed + 1)
    # The view's path, as the content moves in the frame: the opposite way.
    shifts, scales, angles = -path.offset, np.exp(path.log_zoom), -path.roll
    out = np.empty((frames, height, width, 3), np.uint8)
    near = textured_canvas(3 * height, 3 * width, seed=int(rng.integers(1 << 31)))
    for i in range(frames):
        out[i] = _view(canvas, height, width, shifts[i], scales[i], angles[i])
        if motion in ("pan up", "pan down"):
            near_view = _view(near, height, width, 2.0 * shifts[i], 1.0, 0.0)
            out[i, height // 2 :] = near_view[height // 2 :]
        elif motion in ("around left", "around right"):
            fg = _view(near, height, width, -0.6 * shifts[i], 1.0, 0.0)
            y0, y1, x0, x1 = height // 4, 3 * height // 4, width // 3, 2 * width // 3
            out[i, y0:y1, x0:x1] = fg[y0:y1, x0:x1]
    return out


def add_noise(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian pixel noise of standard deviation `sigma` (in 0..255 units)."""
    rng = np.random.default_rng(seed)
    noisy = frames.astype(np.float32) + rng.normal(0.0, sigma, frames.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_video(
    path: str,
    frames: np.ndarray,
    fps: float = 25.0,
    codec: str = "libx264",
    bit_rate: int | None = None,
    pts: list[int] | None = None,
    rotation: int = 0,
) -> str:
    """Encode (T, H, W, 3) uint8 RGB frames to a video file with PyAV.

    Args:
        codec: any PyAV encoder ("libx264", "mpeg4", "libvpx-vp9", ...).
        bit_rate: target bits per second (None: the encoder's default quality).
        pts: per-frame presentation times in units of 1/1000 s for variable frame rate.
        rotation: display rotation in degrees counter-clockwise, stored as the stream's display
            matrix (what phones write for portrait footage); the frames are stored as given.
    """
    import av
    from fractions import Fraction

    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if bit_rate:
            stream.bit_rate = bit_rate
        if rotation:
            stream.set_display_rotation(rotation)
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
