"""The `offline` captioning backend: honest captions from measurements, with no model and no network.

It says only what can be measured: the dominant named colors, brightness and contrast (-> lighting),
color saturation, how much the picture changes, the frame's aspect and letterboxing (-> shot type),
and the curation's motion speed when the manifest has it. It does not pretend to know subjects,
style or background: those fields stay empty, and `caption_to_prompt` leaves empty fields out.
Camera motion is merged in by the dataset runner from the classifier's columns, as for every backend.

Manifest columns read when present (written by `kinema curate`, see `kinema.data.analyze`):
    motion_speed                          optical-flow speed in frame diagonals per second
    crop_x0, crop_y0, crop_x1, crop_y1    content box inside black bars, as fractions of the frame
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kinema.caption.item import MediaItem
from kinema.caption.schema import Caption
from kinema.caption.vlm import CaptionResult
from kinema.clients.minimax import Usage

# Hue ranges in degrees -> color name, for pixels that are saturated and not dark.
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"), (300, "purple"),
         (345, "pink"), (360, "red"))
_COLOR_NAMES = ("black", "white", "gray", "brown", "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
_HUE_EDGES = np.array([upper for upper, _ in _HUES[:-1]], np.float32)
_HUE_LABELS = np.array([_COLOR_NAMES.index(name) for _, name in _HUES], np.uint8)


@dataclass(frozen=True)
class OfflineConfig:
    """Thresholds that turn numbers into words.

    Attributes:
        min_color_share: a color is named when at least this fraction of pixels has it.
        dark: mean brightness (0..1) below which lighting is "dim, low-key".
        bright: mean brightness above which lighting is "bright, high-key".
        low_contrast: luma standard deviation below which the picture is "low-contrast".
        high_contrast: luma standard deviation above which it is "high-contrast".
        vivid: mean saturation above which colors are "vivid" (below a third of it: "muted").
        motion_still: `motion_speed` (frame diagonals per second) below which there is "almost no movement".
        motion_slow: `motion_speed` below which movement is "slow".
        motion_fast: `motion_speed` above which movement is "fast" (a quarter of the frame per second).
    """

    min_color_share: float = 0.12
    dark: float = 0.25
    bright: float = 0.65
    low_contrast: float = 0.08
    high_contrast: float = 0.25
    vivid: float = 0.45
    motion_still: float = 0.01
    motion_slow: float = 0.05
    motion_fast: float = 0.25


@dataclass(frozen=True)
class FrameStats:
    """Measurements of a list of frames.

    Attributes:
        colors: (name, share) of the named colors covering at least the minimum share, largest first.
        brightness: mean HSV value (brightest channel) in [0, 1]; unlike luma it calls a saturated
            red or blue bright.
        contrast: mean per-frame luma standard deviation.
        saturation: mean HSV saturation in [0, 1].
        change: mean absolute luma difference between consecutive sampled frames (0 for one frame).
    """

    colors: list[tuple[str, float]]
    brightness: float
    contrast: float
    saturation: float
    change: float


def frame_stats(frames: list[np.ndarray], min_color_share: float = 0.12) -> FrameStats:
    """Measure colors, brightness, contrast, saturation and change of (H, W, 3) uint8 RGB frames."""
    # Every other pixel is plenty for color statistics and 4x cheaper.
    rgb = np.stack(frames)[:, ::2, ::2].astype(np.float32) / 255.0  # (T, H/2, W/2, 3)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # (T, H/2, W/2)
    high, low = rgb.max(-1), rgb.min(-1)
    saturation = (high - low) / np.maximum(high, 1e-6)
    hue = _hue_degrees(rgb, high, low)
    # Integer labels indexing `_COLOR_NAMES`: masking an object array of strings is far slower.
    labels = np.full(luma.shape, _COLOR_NAMES.index("gray"), np.uint8)
    labels[(saturation < 0.2) & (high > 0.8)] = _COLOR_NAMES.index("white")
    chromatic = (saturation >= 0.2) & (high >= 0.2)
    hue_labels = _HUE_LABELS[np.searchsorted(_HUE_EDGES, hue, side="right")]
    labels[chromatic] = hue_labels[chromatic]
    # Dark oranges and reds read as brown.
    labels[chromatic & (hue >= 10) & (hue < 45) & (high < 0.55)] = _COLOR_NAMES.index("brown")
    labels[high < 0.2] = _COLOR_NAMES.index("black")
    counts = np.bincount(labels.ravel(), minlength=len(_COLOR_NAMES))
    shares = sorted(((name, float(c) / labels.size) for name, c in zip(_COLOR_NAMES, counts)), key=lambda x: -x[1])
    change = float(np.abs(np.diff(luma, axis=0)).mean()) if len(frames) > 1 else 0.0
    return FrameStats(
        colors=[(n, s) for n, s in shares if s >= min_color_share][:3],
        brightness=float(high.mean()),
        contrast=float(luma.reshape(len(frames), -1).std(-1).mean()),
        saturation=float(saturation.mean()),
        change=change,
    )


def _hue_degrees(rgb: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    delta = np.maximum(high - low, 1e-6)
    hue = np.where(high == r, ((g - b) / delta) % 6, np.where(high == g, (b - r) / delta + 2, (r - g) / delta + 4))
    return hue * 60.0


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class OfflineCaptioner:
    """A `Captioner` that describes only what it measures (see the module docstring)."""

    def __init__(self, config: OfflineConfig | None = None):
        self.config = config or OfflineConfig()

    def caption(self, item: MediaItem) -> CaptionResult:
        c = self.config
        stats = frame_stats(item.frames, c.min_color_share)
        colors = [name for name, _ in stats.colors] or ["mixed"]
        lighting = self._lighting(stats)
        palette = "vivid" if stats.saturation >= c.vivid else "muted" if stats.saturation < c.vivid / 3 else "natural"
        motion = self._motion(item)
        thing = "A still image" if item.is_image else "A video clip"
        short = f"{thing} dominated by {_join(colors)} tones" + (f", with {motion}" if motion else "") + "."
        detail = [
            f"{thing} of {item.width}x{item.height} pixels"
            + ("" if item.is_image else f", {item.duration:.1f} seconds long ({len(item.frames)} frames sampled)"),
            "dominant colors " + ", ".join(f"{n} ({s:.0%})" for n, s in stats.colors) if stats.colors
            else "no single dominant color",
            f"{palette} colors, {lighting}",
        ]
        if motion:
            detail.append(motion)
        if not item.is_image and len(item.frames) > 1:
            detail.append("the picture changes little over time" if stats.change < 0.02 else "the picture changes visibly over time")
        caption = Caption(
            short_description=short,
            dense_description="; ".join(detail) + ".",
            background="",
            style="",
            shot_type=self._framing(item),
            lighting=lighting,
            atmosphere=self._atmosphere(lighting, motion, palette),
        )
        return CaptionResult(caption=caption, usage=Usage(), replies=0)

    def _lighting(self, stats: FrameStats) -> str:
        c = self.config
        level = "dim, low-key" if stats.brightness < c.dark else "bright, high-key" if stats.brightness > c.bright else "even"
        contrast = (
            "low-contrast" if stats.contrast < c.low_contrast
            else "high-contrast" if stats.contrast > c.high_contrast else "moderate-contrast"
        )
        return f"{level} {contrast} lighting"

    def _motion(self, item: MediaItem) -> str:
        speed = _number(item.row.get("motion_speed"))
        if item.is_image or speed is None:
            return ""
        c = self.config
        if speed < c.motion_still:
            return "almost no movement"
        if speed < c.motion_slow:
            return "slow movement"
        return "fast movement" if speed > c.motion_fast else "moderate movement"

    @staticmethod
    def _framing(item: MediaItem) -> str:
        box = [_number(item.row.get(k)) for k in ("crop_x0", "crop_y0", "crop_x1", "crop_y1")]
        fx, fy = 1.0, 1.0
        if all(v is not None for v in box):
            x0, y0, x1, y1 = box  # type: ignore[misc]
            if 0 < x1 - x0 <= 1 and 0 < y1 - y0 <= 1:
                fx, fy = x1 - x0, y1 - y0
        boxed = fx * fy < 0.95
        aspect = item.width * fx / max(item.height * fy, 1e-6)
        shape = (
            "ultra-wide frame" if aspect > 2.1 else "widescreen frame" if aspect > 1.5
            else "portrait frame" if aspect < 0.9 else "square frame" if aspect < 1.1 else "standard frame"
        )
        return f"{shape} ({aspect:.2f}:1)" + (", letterboxed" if boxed else "")

    @staticmethod
    def _atmosphere(lighting: str, motion: str, palette: str) -> str:
        mood = "energetic" if motion == "fast movement" else "calm" if motion in ("almost no movement", "slow movement") else ""
        tone = "dark" if "low-key" in lighting else "airy" if "high-key" in lighting else ""
        return ", ".join(w for w in (mood, tone, palette if palette != "natural" else "") if w)


def _number(value: object) -> float | None:
    """A finite float from a manifest cell, or None (missing column, NaN, or not a number)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
