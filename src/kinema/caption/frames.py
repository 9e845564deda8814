"""Frames a captioner looks at: the clip's start frame plus evenly spaced ones, as RGB arrays or JPEG data URLs.

The clip's start is the sharp frame curation chose (the manifest's `start`), so the first sampled
frame is the one the VLM sees best. Clips cut virtually are decoded from their source between
`start` and `end` with PyAV; images are read with Pillow.

Shapes: frames are (H, W, 3) uint8 RGB, downscaled so the long side is at most `max_side`.
"""

from __future__ import annotations

import base64
import math
from io import BytesIO
from pathlib import Path

import av
import numpy as np
from PIL import Image


def sample_times(start: float, end: float, count: int) -> list[float]:
    """`count` times in [start, end): the start itself, then evenly spaced (end is excluded)."""
    if count < 1:
        raise ValueError(f"frame count must be at least 1, got {count}")
    span = max(end - start, 0.0)
    return [start + span * i / count for i in range(count)]


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size with the long side at most `max_side`, both sides even and at least 2."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def sample_video_frames(
    path: str | Path, *, start: float | None = None, end: float | None = None, count: int = 4, max_side: int = 512
) -> list[np.ndarray]:
    """Decode `count` frames of a clip: its start frame plus evenly spaced ones up to `end`.

    Args:
        path: the video file.
        start: seconds into the file where the clip starts (None or NaN: the file's start).
        end: seconds where the clip ends (None or NaN: the file's end).
        count: how many frames to return (fewer when the clip has fewer frames).
        max_side: downscale so the long side is at most this.

    Returns:
        list of (H, W, 3) uint8 RGB frames in time order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be decoded or has no frame in the range.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise ValueError(f"cannot open video {path}: {e}") from e
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        t0 = 0.0 if start is None or math.isnan(start) else float(start)
        t1 = _stream_end(container, stream) if end is None or math.isnan(end) else float(end)
        targets = sample_times(t0, t1, count)
        size = _fit(stream.codec_context.width, stream.codec_context.height, max_side)
        if t0 > 0 and stream.time_base is not None:
            container.seek(int(t0 / stream.time_base), stream=stream, backward=True)
        half_frame = 0.5 / float(stream.average_rate or 25)
        picked: list[np.ndarray] = []
        next_target = 0
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if picked and frame.time >= t1 - half_frame:
                    break  # past the clip's end
                if frame.time + half_frame < targets[next_target]:
                    continue
                picked.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
                # One frame serves every target it reaches, so a clip shorter than `count` frames repeats none.
                while next_target < len(targets) and targets[next_target] <= frame.time + half_frame:
                    next_target += 1
                if next_target == len(targets):
                    break
        except av.FFmpegError as e:
            if not picked:
                raise ValueError(f"cannot decode video {path}: {e}") from e
    if not picked:
        raise ValueError(f"video {path} has no frame between {t0:.3f} s and {t1:.3f} s")
    return picked


def _stream_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base) + float(stream.start_time or 0) * float(stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return stream.frames / float(stream.average_rate)
    raise ValueError("the video does not say how long it is; give the clip's end time")


def load_image(path: str | Path, *, max_side: int = 512) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, long side at most `max_side`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except OSError as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    size = _fit(*rgb.size, max_side)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(rgb)


def jpeg_data_url(frame: np.ndarray, quality: int = 85) -> str:
    """A `data:image/jpeg;base64,...` URL of an (H, W, 3) uint8 RGB frame."""
    buf = BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
