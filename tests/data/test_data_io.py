"""Probe and decode: display rotation (the stream's display matrix) is honoured everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.data.analyze import process_video
from kinema.data.config import load_config
from kinema.data.io import DecodePlan, decode, probe, read_frame
from kinema.data.synthetic import write_video

from conftest import FPS, scene  # noqa: E402  (tests/data/conftest.py)

# Where the stored picture's top-left corner is shown once the picture is turned upright:
# display rotation is counter-clockwise (FFmpeg's av_display_rotation_get, PyAV's frame.rotation).
SHOWN_AT = {0: "top-left", 90: "bottom-left", 180: "bottom-right", 270: "top-right"}


def _marked(frames: int, height: int, width: int) -> np.ndarray:
    """Gray frames with a white block in the stored top-left corner."""
    video = np.full((frames, height, width, 3), 60, np.uint8)
    video[:, : height // 4, : width // 4] = 255
    return video


def _brightest_corner(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    corners = {
        "top-left": image[: h // 8, : w // 8], "top-right": image[: h // 8, -w // 8 :],
        "bottom-left": image[-h // 8 :, : w // 8], "bottom-right": image[-h // 8 :, -w // 8 :],
    }
    return max(corners, key=lambda k: float(corners[k].mean()))


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotation_turns_sizes_decoded_images_and_read_frames_upright(tmp_path, rotation):
    path = write_video(str(tmp_path / f"r{rotation}.mp4"), _marked(6, 96, 160), FPS, rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    shown_w, shown_h = (96, 160) if rotation in (90, 270) else (160, 96)
    assert (info.width, info.height) == (shown_w, shown_h)

    frames = list(decode(info, DecodePlan(side=80, ocr_side=160)))
    assert len(frames) == 6
    first = frames[0]
    assert first.small.shape == (shown_h // 2, shown_w // 2, 3)
    assert first.sample is not None and first.ocr is not None
    assert first.ocr.shape == (shown_h, shown_w, 3)
    for image in (first.small, first.sample, first.ocr):
        assert _brightest_corner(image) == SHOWN_AT[rotation]

    full = read_frame(path, 0.1)
    assert full.shape == (shown_h, shown_w, 3)
    assert _brightest_corner(full) == SHOWN_AT[rotation]


def test_a_rotated_video_is_curated_at_its_displayed_size(tmp_path):
    path = write_video(str(tmp_path / "portrait.mp4"), scene("static shot", 2.4, 41), FPS, rotation=90)
    rows = process_video(path, load_config())
    assert len(rows) == 1 and rows[0]["error"] == ""
    assert (rows[0]["width"], rows[0]["height"]) == (270, 480)  # stored 480x270, shown portrait
