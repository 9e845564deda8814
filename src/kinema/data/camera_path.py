"""How each camera-motion class moves the camera's view: the one convention of every renderer that
draws camera motion with known truth (`kinema.data.synthetic` for the curation tests, the toy world).

A `CameraPath` describes the *camera*, as the class names and `kinema.data.camera` do (image x points
right, y points down); the frame shows the content moving the opposite way:

    offset    (T, 2) where the centre of the view is, in output-frame pixels, relative to the path's
              origin. "pan right" moves it right, so the content moves LEFT in the frame.
    log_zoom  (T,) log of the magnification. "zoom in" grows it; the view window is exp(-log_zoom)
              times the frame, so the content grows.
    roll      (T,) the camera's roll in radians, positive = clockwise on screen ("tilt right"); the
              content turns counter-clockwise.

`camera_path` takes how far the motion has progressed per frame and how much motion a progress of 1
means; each renderer chooses those (the synthetic clips move at a constant speed from frame 0, the
toy world's pans are centred on the clip's middle frame). "pan up/down" (the camera rises or lowers)
and "around left/right" (an orbit) move the view like a tilt or a pan; the parallax that tells them
apart is the renderer's to draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# class -> (offset x, offset y, log zoom, roll) of the view per unit of progress.
VIEW_MOTION: dict[str, tuple[float, float, float, float]] = {
    "static shot": (0.0, 0.0, 0.0, 0.0),
    "handheld shot": (0.0, 0.0, 0.0, 0.0),  # the shake only
    "pan left": (-1.0, 0.0, 0.0, 0.0),
    "pan right": (1.0, 0.0, 0.0, 0.0),
    "tilt up": (0.0, -1.0, 0.0, 0.0),
    "tilt down": (0.0, 1.0, 0.0, 0.0),
    "pan up": (0.0, -1.0, 0.0, 0.0),  # the camera rises
    "pan down": (0.0, 1.0, 0.0, 0.0),
    "zoom in": (0.0, 0.0, 1.0, 0.0),
    "zoom out": (0.0, 0.0, -1.0, 0.0),
    "tilt left": (0.0, 0.0, 0.0, -1.0),  # the camera rolls counter-clockwise
    "tilt right": (0.0, 0.0, 0.0, 1.0),
    "around left": (1.0, 0.0, 0.0, 0.0),  # orbiting left, the view swings right: the background moves left
    "around right": (-1.0, 0.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class CameraPath:
    """Per-frame pose of the camera's view (see the module docstring for the convention).

    Attributes:
        offset: (T, 2) view centre in output-frame pixels (x right, y down).
        log_zoom: (T,) log magnification.
        roll: (T,) roll in radians, positive = clockwise on screen.
    """

    offset: np.ndarray
    log_zoom: np.ndarray
    roll: np.ndarray


def camera_path(
    motion: str,
    progress: np.ndarray,
    frame: tuple[float, float],
    travel: float = 0.0,
    zoom: float = 0.0,
    roll: float = 0.0,
    shake: np.ndarray | None = None,
    shake_roll: np.ndarray | None = None,
) -> CameraPath:
    """The view's path for camera class `motion`.

    Args:
        motion: one of the 14 classes (`VIEW_MOTION`).
        progress: (T,) how far the motion has gone at each frame (1 = the full amounts below).
        frame: (width, height) in pixels that `travel` is a fraction of.
        travel: view offset at progress 1, as a fraction of the frame (pans, tilts, orbits).
        zoom: log magnification at progress 1 (zooms).
        roll: radians at progress 1 (tilt left/right).
        shake: (T, 2) view offsets in pixels of a "handheld shot" (ignored by other classes).
        shake_roll: (T,) roll in radians of a "handheld shot" (ignored by other classes).

    Raises:
        ValueError: for an unknown class.
    """
    if motion not in VIEW_MOTION:
        raise ValueError(f"unknown camera motion {motion!r}; expected one of {list(VIEW_MOTION)}")
    dx, dy, dz, dr = VIEW_MOTION[motion]
    t = np.asarray(progress, np.float64)
    offset = (t[:, None] * travel) * np.array([dx * frame[0], dy * frame[1]])  # (T, 2)
    log_zoom = t * (dz * zoom)
    angle = t * (dr * roll)
    if motion == "handheld shot":
        if shake is not None:
            offset = offset + shake
        if shake_roll is not None:
            angle = angle + shake_roll
    return CameraPath(offset=offset, log_zoom=log_zoom, roll=angle)
