"""The curation config: one frozen dataclass tree, loaded from YAML (defaults: kinema/configs/curate.yaml).

Every key is checked when the file is read: an unknown or misspelled key is an error naming it,
not a silently ignored setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from kinema.config import load_yaml
from kinema.data.filters.ocr import OcrConfig
from kinema.data.scorers import ScorerConfig
from kinema.data.shots import ShotConfig


@dataclass(frozen=True)
class SamplingConfig:
    """How clips are looked at.

    Attributes:
        side: longer side, in pixels, of the one downscaled copy made of every frame; shot
            detection sees all of them, the measurements the samples among them.
        fps: analysis samples per second (the camera classifier's thresholds assume about 8).
        start_window: seconds from a clip's start within which the sharpest frame becomes its start.
        camera_pairs: pairs of consecutive samples, spread over the clip, that the camera
            classifier tracks.
        motion_pairs: pairs of consecutive samples, spread over the clip, measured with dense flow.
        skip_loop_filter: decode without H.264/HEVC deblocking (about a quarter less decoding work;
            see `kinema.data.io.DecodePlan`).
    """

    side: int = 256
    fps: float = 8.0
    start_window: float = 1.0
    camera_pairs: int = 8
    motion_pairs: int = 4
    skip_loop_filter: bool = True

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.side < 64 or self.start_window < 0 or self.camera_pairs < 1 or self.motion_pairs < 1:
            raise ValueError(f"sampling settings out of range: {self}")


@dataclass(frozen=True)
class StageThresholds:
    """What a clip needs to enter one training stage. A clip's stage is the highest it passes."""

    name: str
    min_side: int = 256  # shorter side of the cropped picture, pixels
    min_duration: float = 2.0  # seconds
    min_aesthetic: float = 0.0
    min_sharpness: float = 0.0  # Laplacian variance at 256 px (longer side)
    max_noise: float = 1e9
    min_brightness: float = 0.0
    max_brightness: float = 1.0
    max_text_area: float = 1.0
    max_watermark: float = 1.0
    max_border: float = 1.0  # share of the frame covered by black bars
    min_motion: float = 0.0  # frame diagonals per second
    max_motion: float = 1e9


@dataclass(frozen=True)
class ImageSetThresholds:
    """Which start frames enter an image set."""

    name: str
    min_side: int = 256
    min_aesthetic: float = 0.0
    max_text_area: float = 1.0
    max_watermark: float = 1.0


@dataclass(frozen=True)
class BucketConfig:
    """Aspect-ratio x frame-count buckets (Open-Sora style)."""

    aspect_ratios: tuple[str, ...] = ("9:16", "3:4", "1:1", "4:3", "16:9", "21:9")
    frame_counts: tuple[int, ...] = (17, 33, 65, 129)


@dataclass(frozen=True)
class CurateConfig:
    """All curation settings."""

    min_video_duration: float = 2.0
    shots: ShotConfig = field(default_factory=ShotConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    dedup_threshold: float = 0.97
    clusters: int = 16
    aesthetic: ScorerConfig = field(default_factory=ScorerConfig)
    technical: ScorerConfig = field(default_factory=ScorerConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    stages: tuple[StageThresholds, ...] = (StageThresholds(name="256p"),)
    image_sets: tuple[ImageSetThresholds, ...] = (ImageSetThresholds(name="start_frames"),)
    buckets: BucketConfig = field(default_factory=BucketConfig)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("the curation config needs at least one stage")
        if not 0 < self.dedup_threshold <= 1:
            raise ValueError(f"dedup_threshold must be in (0, 1], got {self.dedup_threshold}")
        if self.clusters < 1:
            raise ValueError(f"clusters must be at least 1, got {self.clusters}")


def default_config_path() -> Path:
    """The shipped default config (package data)."""
    return Path(str(resources.files("kinema") / "configs" / "curate.yaml"))


def load_config(path: str | os.PathLike | None = None) -> CurateConfig:
    """Read a curation config from YAML (the shipped defaults when `path` is None).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: for malformed YAML, unknown keys or values out of range.
    """
    return load_yaml(CurateConfig, path if path is not None else default_config_path(), "curation config")
