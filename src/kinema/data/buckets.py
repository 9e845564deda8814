"""Buckets: the sizes clips are grouped by, named one way everywhere, height before width.

Two kinds of name:
- `bucket_name(height, width, frames)`: an exact training size in pixels, "HxWxF" (e.g. "32x48x1"). The
  trainers' latent cache keys its latents by it (kinema.train.latent_cache) and the toy world's manifest
  rows carry it.
- `aspect_frame_bucket(height, width, frames, config)`: curation's coarse group, the nearest configured
  aspect ratio × the largest configured frame count that fits (e.g. "16:9x129"), for real footage of
  any size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinema.data.config import BucketConfig


def bucket_name(height: int, width: int, frames: int) -> str:
    """"HxWxF": the name of an exact training size (frames 1: images)."""
    return f"{height}x{width}x{frames}"


def _ratio(name: str) -> float:
    w, h = name.split(":")
    return float(w) / float(h)


def aspect_bucket(height: float, width: float, config: BucketConfig) -> str:
    """The configured aspect ratio ("W:H") nearest to width/height (in log space)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"aspect_bucket needs a positive size, got height {height}, width {width}")
    r = math.log(width / height)
    return min(config.aspect_ratios, key=lambda name: abs(math.log(_ratio(name)) - r))


def frame_bucket(frames: int, config: BucketConfig) -> int:
    """The largest configured frame count not above `frames` (0 when the clip is shorter than all)."""
    fitting = [n for n in config.frame_counts if n <= frames]
    return max(fitting) if fitting else 0


def aspect_frame_bucket(height: float, width: float, frames: int, config: BucketConfig) -> str:
    """"<aspect>x<frames>", or "" when the clip has fewer frames than the smallest bucket."""
    count = frame_bucket(frames, config)
    return f"{aspect_bucket(height, width, config)}x{count}" if count else ""
