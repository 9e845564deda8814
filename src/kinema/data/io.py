"""Probe and decode videos with PyAV, turning every way a file can be bad into one clear sentence.

`probe` reads the container header; `decode` walks the video stream once and yields, for every
frame, a small BGR image for shot detection and, at a fixed sampling rate, a larger RGB image for
the per-clip measurements. Both sizes are made by the decoder's scaler (swscale) straight from YUV,
which is much cheaper than converting full frames to RGB and resizing them afterwards.

Frame times come from presentation timestamps, so variable-frame-rate files get correct clip
ranges; rotation metadata is applied to the small images so they show the picture upright.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

# Files whose frames exceed this many pixels are refused: decoding them would exhaust memory.
MAX_PIXELS = 8192 * 8192


class MediaError(ValueError):
    """A video that cannot be used, with one sentence saying why."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream.

    Attributes:
        width, height: displayed size in pixels (after rotation).
        fps: average frame rate.
        frames: frame count (from the header, or estimated from the duration).
        duration: seconds.
        codec: decoder name, e.g. "h264".
        rotation: degrees the picture is turned for display (0, 90, 180, 270).
    """

    path: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    codec: str
    rotation: int


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: index, presentation time, the detection image and maybe a sample.

    Attributes:
        detect: (h, w, 3) uint8 BGR, small, for shot detection.
        sample: (H', W', 3) uint8 RGB at analysis size, or None when the frame is not sampled.
    """

    index: int
    time: float
    detect: np.ndarray
    sample: np.ndarray | None


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p} does not exist")
    if p.is_dir():
        raise MediaError(f"{p} is a folder, not a video file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p} is an empty file (0 bytes)")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"{p} is not a readable video ({type(e).__name__}: {e})") from None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header.

    Raises:
        MediaError: for a missing, empty, unreadable, audio-only or oversized file.
    """
    with _open(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise MediaError(f"{path} has no video stream (found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise MediaError(f"{path} has a video stream without a frame size")
        if width * height > MAX_PIXELS:
            raise MediaError(f"{path} has {width}x{height} frames, larger than the {MAX_PIXELS:,}-pixel limit")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 25.0  # unknown rate: times still come from timestamps, this only sizes estimates
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        else:
            duration = 0.0
        frames = int(stream.frames or round(duration * fps))
        # Decoding the first frame proves the codec works and gives the display rotation
        # (degrees counter-clockwise, from the stream's display matrix).
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: the first frame does not decode ({e})") from None
        if first is None:
            raise MediaError(f"{path} has a video stream but no decodable frames")
        rotation = int(round(float(getattr(first, "rotation", 0) or 0) / 90.0)) * 90 % 360
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(str(path), width, height, fps, frames, duration, ctx.name or "unknown", rotation)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longer side is at most `max_side`, both even (swscale likes even sizes)."""
    factor = min(1.0, max_side / max(width, height))
    return max(2, round(width * factor / 2) * 2), max(2, round(height * factor / 2) * 2)


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    # Display rotation is counter-clockwise, as is np.rot90 with positive k.
    return image if rotation == 0 else np.ascontiguousarray(np.rot90(image, k=rotation // 90))


def decode(
    info: VideoInfo,
    detect_side: int = 256,
    sample_side: int = 480,
    sample_fps: float = 8.0,
    threads: int = 1,
) -> Iterator[DecodedFrame]:
    """Decode every frame of `info.path` once.

    Args:
        info: from `probe`.
        detect_side: longer side of the BGR detection images.
        sample_side: longer side of the RGB analysis samples.
        sample_fps: rate of analysis samples (frames are picked by timestamp).
        threads: decoder threads (keep 1 when running one process per core).

    Raises:
        MediaError: if the stream cannot be decoded (e.g. a truncated file or a missing codec).
    """
    raw_w, raw_h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    det_w, det_h = fit_size(raw_w, raw_h, detect_side)
    smp_w, smp_h = fit_size(raw_w, raw_h, sample_side)
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE" if threads > 1 else "NONE"
        stream.thread_count = threads
        next_sample = -math.inf
        index = 0
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else index / info.fps
                if first_time is None:
                    first_time = t
                t -= first_time  # clip times count from the first frame shown
                detect = frame.reformat(width=det_w, height=det_h, format="bgr24", interpolation="FAST_BILINEAR").to_ndarray()
                sample = None
                if t >= next_sample - 1e-6:
                    sample = _rotate(frame.reformat(width=smp_w, height=smp_h, format="rgb24").to_ndarray(), info.rotation)
                    next_sample = max(next_sample + 1.0 / sample_fps, t + 0.5 / sample_fps)
                yield DecodedFrame(index, t, _rotate(detect, info.rotation), sample)
                index += 1
        except av.error.FFmpegError as e:
            raise MediaError(f"{info.path}: decoding failed after {index} frames ({e})") from None
    if index == 0:
        raise MediaError(f"{info.path} has a video stream but no decodable frames")


def read_frame(path: str | os.PathLike, time: float, rotation: int = 0) -> np.ndarray:
    """The full-resolution RGB frame shown at `time` seconds (the first frame at or after it).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        start = None
        last = None
        offset = int(time / stream.time_base) if stream.time_base else 0
        container.seek(max(0, offset + (stream.start_time or 0)), stream=stream, backward=True)
        for frame in container.decode(stream):
            if start is None:
                start = 0.0
            last = frame
            if frame.time is not None and frame.time - float((stream.start_time or 0) * stream.time_base) >= time - 1e-3:
                break
        if last is None:
            raise MediaError(f"{path} has no frame at {time:.3f} s")
        return _rotate(last.to_ndarray(format="rgb24"), rotation)
