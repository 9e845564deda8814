"""The offline captioner says what it measures and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.caption.item import MediaItem
from kinema.caption.offline import OfflineCaptioner, frame_stats


def solid(rgb, size=(48, 64)):
    return np.full((*size, 3), rgb, np.uint8)


def test_named_colors_and_shares():
    frame = solid((20, 40, 200))
    frame[:, :16] = (230, 220, 30)  # a quarter yellow
    stats = frame_stats([frame])
    assert [name for name, _ in stats.colors] == ["blue", "yellow"]
    assert stats.colors[0][1] == pytest.approx(0.75)


@pytest.mark.parametrize("rgb, word", [((10, 10, 12), "dim"), ((250, 250, 245), "bright"), ((128, 128, 128), "even")])
def test_lighting_follows_brightness(rgb, word):
    item = MediaItem("x", "image", [solid(rgb)], 0.0, 64, 48)
    assert OfflineCaptioner().caption(item).caption.lighting.startswith(word)


def test_video_caption_uses_measurements():
    frames = [solid((200, 30, 30)), solid((30, 30, 200))]
    item = MediaItem("x", "video", frames, 2.0, 1920, 1080,
                     {"motion_speed": 0.4, "crop_x0": 0.0, "crop_y0": 140 / 1080, "crop_x1": 1.0, "crop_y1": 940 / 1080})
    result = OfflineCaptioner().caption(item)
    caption = result.caption
    assert result.replies == 0 and result.usage.total_tokens == 0
    assert "blue" in caption.short_description and "red" in caption.short_description
    assert "fast movement" in caption.short_description
    assert caption.shot_type == "ultra-wide frame (2.40:1), letterboxed"
    assert "energetic" in caption.atmosphere
    assert caption.style == "" and caption.background == ""  # not measurable: left out, not invented
    assert "changes visibly" in caption.dense_description


def test_missing_measurements_are_not_invented():
    item = MediaItem("x", "video", [solid((90, 90, 90))] * 2, 1.0, 64, 64, {"motion_speed": float("nan")})
    caption = OfflineCaptioner().caption(item).caption
    assert "movement" not in caption.short_description
    assert caption.shot_type.startswith("square frame")
