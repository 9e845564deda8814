"""Media for caption tests, encoded by the tests themselves (PyAV, Pillow)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from kinema.data.manifest import clip_id


def encode_video(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 with a keyframe every 8 frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "g": "8"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def gray_ramp(count: int = 24, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose gray level is 10 x their index, so a decoded frame tells which one it is."""
    return np.repeat(np.arange(count, dtype=np.uint8)[:, None, None, None] * 10, height * width * 3).reshape(
        count, height, width, 3)


def moving_square(color: tuple[int, int, int], background: tuple[int, int, int], count: int = 16) -> np.ndarray:
    """A 24 px square of `color` moving right over `background`."""
    frames = np.empty((count, 48, 64, 3), np.uint8)
    frames[:] = background
    for t in range(count):
        frames[t, 12:36, 2 + 2 * t : 26 + 2 * t] = color
    return frames


def row(dataset: Path, path: str, kind: str = "video", start: float = float("nan"), end: float = float("nan"),
        stage: int = 0, error: str = "", **extra: object) -> dict:
    return {
        "id": clip_id(path, None if start != start else start, None if end != end else end), "kind": kind,
        "path": path, "start": start, "end": end, "frames": 16 if kind == "video" else 1, "fps": 8.0,
        "width": 64, "height": 48, "stage": stage, "reject_reason": "" if stage >= 0 else "too blurry",
        "bucket": "", "caption": "", "error": error, **extra,
    }
