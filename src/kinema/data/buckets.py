"""Aspect-ratio x frame-count buckets for training batches (e.g. "16:9x65")."""

from __future__ import annotations

import math

from kinema.data.config import BucketConfig


def _ratio(name: str) -> float:
    w, h = name.split(":")
    return float(w) / float(h)


def aspect_bucket(width: float, height: float, config: BucketConfig) -> str:
    """The configured aspect ratio nearest to width/height (in log space)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"aspect_bucket needs a positive size, got {width}x{height}")
    r = math.log(width / height)
    return min(config.aspect_ratios, key=lambda name: abs(math.log(_ratio(name)) - r))


def frame_bucket(frames: int, config: BucketConfig) -> int:
    """The largest configured frame count not above `frames` (0 when the clip is shorter than all)."""
    fitting = [n for n in config.frame_counts if n <= frames]
    return max(fitting) if fitting else 0


def bucket_name(width: float, height: float, frames: int, config: BucketConfig) -> str:
    """"<aspect>x<frames>", or "" when the clip has fewer frames than the smallest bucket."""
    count = frame_bucket(frames, config)
    return f"{aspect_bucket(width, height, config)}x{count}" if count else ""
