"""Probe and decode videos with PyAV, turning every way a file can be bad into one clear sentence.

`probe` reads the container header; `decode` walks the video stream once and downscales every
frame once, with the decoder's scaler (swscale, area filter) straight from YUV, to a small image
that both shot detection and the per-clip measurements use; a few larger frames per second are
kept for OCR. Scaling in swscale from YUV costs about a third of decoding a 720p frame, where
converting the full frame to RGB and resizing it with OpenCV costs several times the decode.

Frame times come from presentation timestamps, so variable-frame-rate files get correct clip
ranges; display rotation (the stream's display matrix) is applied to every image handed out, so
pictures are upright and `VideoInfo` sizes are the displayed ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

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
    """One decoded frame: index, presentation time, its small image and maybe larger copies.

    Attributes:
        small: (h, w, 3) uint8 BGR, longer side `DecodePlan.side`, area-downscaled; every frame.
        sample: `small` as RGB when the frame is an analysis sample (`DecodePlan.sample_fps`), else None.
        ocr: (H', W', 3) uint8 RGB, longer side `DecodePlan.ocr_side`, at `DecodePlan.ocr_fps`, else None.
    """

    index: int
    time: float
    small: np.ndarray
    sample: np.ndarray | None
    ocr: np.ndarray | None


@dataclass(frozen=True)
class DecodePlan:
    """What `decode` makes of the frames of a video.

    Attributes:
        side: longer side of the small image made of every frame (PySceneDetect's own default
            downscale targets 256 px too).
        sample_fps: rate at which small images are also handed out as RGB analysis samples.
        ocr_side: longer side of the larger RGB frames kept for text detection (0: none).
        ocr_fps: rate of those frames.
        skip_loop_filter: skip H.264/HEVC in-loop deblocking. About a quarter less decoding work;
            the blocking it leaves is a fraction of a pixel once frames are downscaled for analysis.
        threads: decoder threads; 1 when one process runs per core. More use frame threading,
            which also decodes ahead while the caller analyses.
    """

    side: int = 256
    sample_fps: float = 8.0
    ocr_side: int = 0
    ocr_fps: float = 2.0
    skip_loop_filter: bool = False
    threads: int = 1

    def __post_init__(self) -> None:
        if self.side < 16 or self.sample_fps <= 0 or self.ocr_side < 0 or self.ocr_fps <= 0 or self.threads < 1:
            raise ValueError(f"decode plan out of range: {self}")


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


def frame_rotation(frame: av.VideoFrame) -> int:
    """Display rotation of a decoded frame in degrees counter-clockwise (0, 90, 180 or 270).

    PyAV reads it from the frame's display matrix (FFmpeg's av_display_rotation_get: the angle by
    which the picture must turn counter-clockwise to be shown upright).
    """
    return int(round(float(frame.rotation or 0) / 90.0)) * 90 % 360


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
        rotation = frame_rotation(first)
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


class _RateGate:
    """Picks frames at about `fps` by timestamp: the first frame, then the first at or after each tick."""

    def __init__(self, fps: float) -> None:
        self.period, self.next = 1.0 / fps, -math.inf

    def __call__(self, t: float) -> bool:
        if t < self.next - 1e-6:
            return False
        self.next = max(self.next + self.period, t + 0.5 * self.period)
        return True


def decode(info: VideoInfo, plan: DecodePlan | None = None) -> Iterator[DecodedFrame]:
    """Decode every frame of `info.path` once, downscaling each once.

    Args:
        info: from `probe`.
        plan: sizes, rates and decoder settings; defaults to `DecodePlan()`.

    Raises:
        MediaError: if the stream cannot be decoded (e.g. a truncated file or a missing codec).
    """
    plan = plan or DecodePlan()
    raw_w, raw_h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    small_w, small_h = fit_size(raw_w, raw_h, plan.side)
    ocr_w, ocr_h = fit_size(raw_w, raw_h, plan.ocr_side) if plan.ocr_side else (0, 0)
    take_sample, take_ocr = _RateGate(plan.sample_fps), _RateGate(plan.ocr_fps)
    # One scaler per output size, kept for the whole stream: `frame.reformat` would set up a new
    # swscale context for every frame, which costs more than the scaling itself.
    to_small, to_ocr = VideoReformatter(), VideoReformatter()
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "FRAME" if plan.threads > 1 else "NONE"
        stream.thread_count = plan.threads
        if plan.skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        index = 0
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else index / info.fps
                if first_time is None:
                    first_time = t
                t -= first_time  # clip times count from the first frame shown
                # (h, w, 3) BGR, what PySceneDetect expects; upright.
                small = _rotate(to_small.reformat(frame, small_w, small_h, "bgr24", interpolation="AREA").to_ndarray(), info.rotation)
                sample = np.ascontiguousarray(small[..., ::-1]) if take_sample(t) else None
                ocr = None
                if ocr_w and take_ocr(t):
                    ocr = _rotate(to_ocr.reformat(frame, ocr_w, ocr_h, "rgb24", interpolation="AREA").to_ndarray(), info.rotation)
                yield DecodedFrame(index, t, small, sample, ocr)
                index += 1
        except av.error.FFmpegError as e:
            raise MediaError(f"{info.path}: decoding failed after {index} frames ({e})") from None
    if index == 0:
        raise MediaError(f"{info.path} has a video stream but no decodable frames")


def read_frame(path: str | os.PathLike, time: float) -> np.ndarray:
    """The full-resolution RGB frame shown at `time` seconds (the first frame at or after it), upright.

    Returns:
        (H, W, 3) uint8 RGB, display rotation applied.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        last = None
        offset = int(time / stream.time_base) if stream.time_base else 0
        container.seek(max(0, offset + (stream.start_time or 0)), stream=stream, backward=True)
        for frame in container.decode(stream):
            last = frame
            if frame.time is not None and frame.time - float((stream.start_time or 0) * stream.time_base) >= time - 1e-3:
                break
        if last is None:
            raise MediaError(f"{path} has no frame at {time:.3f} s")
        return _rotate(last.to_ndarray(format="rgb24"), frame_rotation(last))
