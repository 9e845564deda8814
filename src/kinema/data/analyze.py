"""One video in, manifest rows out: probe, shot split, and every per-clip measurement.

This is the unit of work the pipeline distributes (one video per task). A video that cannot be
read becomes a single row with an `error`; shots shorter than the minimum become rows rejected as
"too_short"; every other shot becomes a clip row with the measurement columns below. Stage and
bucket are assigned later, once the whole dataset is known (deduplication needs all clips).

Measurement columns (for captioners and filters; units in kinema/configs/curate.yaml):
    source              absolute path of the input video (`path` is the same, relative to the
                        dataset folder when the video lies inside it)
    shot_index          position of the clip in its video
    start_frame         frame index of the (sharpest) start frame in the source
    start_sharpness     Laplacian variance of that frame at analysis size
    sharpness, noise, brightness, contrast, underexposed, overexposed, colorfulness
    dominant_colors     JSON list [{"name", "hex", "fraction"}] of the start frame's main colors
    aesthetic_score     0..1 (classical or learned, see `aesthetic_model`), technical_score likewise
    motion_speed        optical-flow speed, frame diagonals per second
    camera_motion       one of the 14 classes; camera_confidence its probability
    camera_shift_x/y    mean content shift per 1/8 s as a fraction of the frame; camera_zoom: log scale
    text_area           share of the frame covered by text (OCR)
    watermark_score     0..1, fixed overlay in a corner
    crop_x0, crop_y0, crop_x1, crop_y1   content box without black bars, fractions of the frame
    border_fraction     share of the frame covered by black bars
    embedding           float32 list, for dedup and clustering
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from kinema.data.camera import CameraConfig, estimate_global_motion, scores_from_motion
from kinema.data.config import CurateConfig
from kinema.data.embed import embed_clip
from kinema.data.filters.borders import CropBox, detect_borders
from kinema.data.filters.motion import motion_speed
from kinema.data.filters.ocr import text_area
from kinema.data.filters.quality import dominant_colors, measure_quality
from kinema.data.filters.watermark import watermark_score
from kinema.data.frames import laplacian_variance, sharpest_frame
from kinema.data.io import DecodePlan, MediaError, VideoInfo, decode, probe
from kinema.data.manifest import clip_id
from kinema.data.scorers import learned_score
from kinema.data.shots import Shot, ShotSplitter

from kinema.caption.schema import CAMERA_MOTIONS


@dataclass(frozen=True)
class _Samples:
    frames: np.ndarray  # (S, h, w, 3) uint8 RGB at sampling.side
    times: np.ndarray  # (S,) seconds
    indices: np.ndarray  # (S,) source frame index
    ocr: np.ndarray  # (O, H', W', 3) uint8 RGB at ocr.side, O >= 0
    ocr_times: np.ndarray  # (O,) seconds


def _spread(count: int, n: int) -> np.ndarray:
    """At most `n` indices into range(count), evenly spread, ascending and unique."""
    return np.unique(np.linspace(0, count - 1, min(n, count)).round().astype(int))


def _base_row(source: str) -> dict:
    return {
        "id": clip_id(source), "kind": "video", "path": source, "start": np.nan, "end": np.nan,
        "frames": 0, "fps": 0.0, "width": 0, "height": 0, "stage": -1, "reject_reason": "",
        "bucket": "", "caption": "", "error": "", "source": source, "shot_index": -1,
    }


def error_row(source: str, message: str) -> dict:
    """The single row of a video that could not be processed."""
    row = _base_row(source)
    row.update(reject_reason="error", error=message)
    return row


def measure_clip(samples: _Samples, clip_end: float, config: CurateConfig) -> dict:
    """Every measurement of one clip from its analysis samples."""
    frames, times = samples.frames, samples.times
    # The start may move by at most `start_window`, and never so far that the clip gets too short.
    window = min(config.sampling.start_window, max(0.0, clip_end - times[0] - config.shots.min_length))
    start = sharpest_frame(frames, times, window)
    frames, times, indices = frames[start:], times[start:], samples.indices[start:]
    box = detect_borders(frames[_spread(len(frames), 32)])
    h, w = frames.shape[1:3]
    content = frames[:, round(box.y0 * h) : round(box.y1 * h), round(box.x0 * w) : round(box.x1 * w)]
    content = content if content.shape[1] >= 16 and content.shape[2] >= 16 else frames
    picks = _spread(len(content), 4)
    quality = measure_quality(content[picks])
    aesthetic = learned_score(content[picks], config.aesthetic) if config.aesthetic.learned else quality.aesthetic
    technical = learned_score(content[picks], config.technical) if config.technical.learned else quality.aesthetic
    if len(content) >= 2:
        cam_cfg = CameraConfig()
        # Pairs of consecutive samples (1/fps apart, the interval the thresholds assume), spread out.
        pairs = _spread(len(content) - 1, config.sampling.camera_pairs)
        motion = estimate_global_motion(content, cam_cfg, pairs)
        scores = scores_from_motion(motion, cam_cfg)
        best = int(np.argmax(scores))
        camera, confidence = CAMERA_MOTIONS[best], float(scores[best])
        shift, zoom = motion.shift.mean(0), float(motion.log_scale.mean())
    else:
        camera, confidence, shift, zoom = "static shot", 0.0, np.zeros(2), 0.0
    text = _text_area(samples, float(times[0]), box, content, config) if config.ocr.enabled else 0.0
    return {
        "start_frame": int(indices[0]),
        "start_time": float(times[0]),
        "start_sharpness": laplacian_variance(frames[0]),
        "sharpness": quality.sharpness,
        "noise": quality.noise,
        "brightness": quality.brightness,
        "contrast": quality.contrast,
        "underexposed": quality.underexposed,
        "overexposed": quality.overexposed,
        "colorfulness": quality.colorfulness,
        "dominant_colors": dominant_colors(content[0]),
        "aesthetic_score": float(aesthetic),
        "aesthetic_model": config.aesthetic.model,
        "technical_score": float(technical),
        "motion_speed": motion_speed(content, times, config.sampling.motion_pairs),
        "camera_motion": camera,
        "camera_confidence": confidence,
        "camera_shift_x": float(shift[0]),
        "camera_shift_y": float(shift[1]),
        "camera_zoom": zoom,
        "text_area": float(text),
        "watermark_score": watermark_score(content),
        "crop_x0": box.x0, "crop_y0": box.y0, "crop_x1": box.x1, "crop_y1": box.y1,
        "border_fraction": box.border_fraction,
        "embedding": embed_clip(content).tolist(),
    }


def _text_area(samples: _Samples, start: float, box: CropBox, content: np.ndarray, config: CurateConfig) -> float:
    """Text area of the clip's content box, on the larger OCR frames (the samples if it has none)."""
    ocr = samples.ocr[samples.ocr_times >= start - 1e-6]
    if len(ocr) == 0:
        return text_area(content, config.ocr.frames)
    h, w = ocr.shape[1:3]
    ocr = ocr[:, round(box.y0 * h) : round(box.y1 * h), round(box.x0 * w) : round(box.x1 * w)]
    return text_area(ocr, config.ocr.frames) if ocr.shape[1] >= 16 and ocr.shape[2] >= 16 else 0.0


def _clip_row(source: str, info: VideoInfo, shot: Shot, shot_index: int, splitter: ShotSplitter,
              samples: _Samples | None, config: CurateConfig) -> dict:
    row = _base_row(source)
    start, end = splitter.time_of(shot.start), splitter.time_of(shot.end)
    row.update(shot_index=shot_index, fps=info.fps, width=info.width, height=info.height)
    if end - start < config.shots.min_length - 1e-6 or samples is None or len(samples.frames) == 0:
        row.update(start=start, end=end, frames=shot.end - shot.start, reject_reason="too_short")
        row["id"] = clip_id(source, start, end)
        return row
    measures = measure_clip(samples, end, config)
    start = measures.pop("start_time")
    row.update(measures)
    row.update(start=start, end=end, frames=shot.end - measures["start_frame"])
    row["id"] = clip_id(source, start, end)
    return row


def process_video(source: str | os.PathLike, config: CurateConfig, threads: int = 1) -> list[dict]:
    """All manifest rows of one video (never raises for a bad file: it becomes an error row).

    Args:
        source: the video file.
        config: curation settings.
        threads: decoder threads (1 when every core runs a process of its own).
    """
    source = str(source)
    try:
        info = probe(source)
        if 0 < info.frames < 2:
            return [error_row(source, f"{source} has only {info.frames} frame; a video needs at least 2")]
        if 0 < info.duration < config.min_video_duration:
            row = _base_row(source)
            row.update(reject_reason="too_short", fps=info.fps, width=info.width, height=info.height,
                       frames=info.frames, start=0.0, end=info.duration)
            return [row]
        splitter = ShotSplitter(info.fps, config.shots)
        rows: list[dict] = []
        # Samples and OCR frames of shots not yet complete: (frame index, time, image).
        buffer: list[tuple[int, float, np.ndarray]] = []
        ocr_buffer: list[tuple[int, float, np.ndarray]] = []

        def finish(shots: list[Shot]) -> None:
            for shot in shots:
                picked = [s for s in buffer if shot.start <= s[0] < shot.end]
                ocr = [s for s in ocr_buffer if shot.start <= s[0] < shot.end]
                samples = None
                if picked:
                    samples = _Samples(
                        frames=np.stack([p[2] for p in picked]),
                        times=np.array([p[1] for p in picked]),
                        indices=np.array([p[0] for p in picked]),
                        ocr=np.stack([o[2] for o in ocr]) if ocr else np.zeros((0, 1, 1, 3), np.uint8),
                        ocr_times=np.array([o[1] for o in ocr], np.float64),
                    )
                rows.append(_clip_row(source, info, shot, len(rows), splitter, samples, config))
                buffer[:] = [s for s in buffer if s[0] >= shot.end]
                ocr_buffer[:] = [s for s in ocr_buffer if s[0] >= shot.end]

        plan = DecodePlan(
            side=config.sampling.side, sample_fps=config.sampling.fps,
            ocr_side=config.ocr.side if config.ocr.enabled else 0, ocr_fps=config.ocr.fps,
            skip_loop_filter=config.sampling.skip_loop_filter, threads=threads,
        )
        count = 0
        for frame in decode(info, plan):
            if frame.sample is not None:
                buffer.append((frame.index, frame.time, frame.sample))
            if frame.ocr is not None:
                ocr_buffer.append((frame.index, frame.time, frame.ocr))
            finish(splitter.push(frame.index, frame.time, frame.small))
            count += 1
        finish(splitter.finish())
        if count < 2:
            return [error_row(source, f"{source} has only {count} frame; a video needs at least 2")]
        return rows
    except MediaError as e:
        return [error_row(source, str(e))]
    except (MemoryError, RuntimeError, ValueError, OSError) as e:  # keep the run going; say what broke
        return [error_row(source, f"{source}: processing failed ({type(e).__name__}: {e})")]
