"""Per-clip measurements on synthetic clips with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kinema.data.embed import embed_clip
from kinema.data.dedup import find_duplicates, kmeans
from kinema.data.filters.borders import detect_borders
from kinema.data.filters.motion import motion_speed
from kinema.data.filters.ocr import text_area
from kinema.data.filters.quality import dominant_colors, measure_quality
from kinema.data.filters.watermark import watermark_score
from kinema.data.frames import sharpest_frame
from kinema.data.synthetic import photo_canvas, render_camera_motion

H, W = 270, 480


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return render_camera_motion("pan left", 12, H, W, speed=0.01, seed=0)


def test_sharpest_frame_is_the_sharp_one(clip):
    frames = np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in clip[:8]])
    frames[5] = clip[5]
    times = np.arange(8) / 8.0
    assert sharpest_frame(frames, times, window=1.0) == 5
    assert sharpest_frame(frames, times, window=0.5) != 5  # outside the window


def test_blur_lowers_sharpness_and_aesthetic(clip):
    sharp = measure_quality(clip[:4])
    blurred = measure_quality(np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in clip[:4]]))
    assert blurred.sharpness < 0.2 * sharp.sharpness
    assert blurred.aesthetic < sharp.aesthetic


def test_dark_frames_measure_dark(clip):
    dark = measure_quality((clip[:2] * 0.1).astype(np.uint8))
    assert dark.brightness < 0.1 and dark.underexposed > 0.5


def test_ocr_flags_subtitles_but_not_textured_or_photographic_clips(clip):
    subtitled = clip.copy()
    for f in subtitled:
        cv2.rectangle(f, (40, 215), (440, 262), (0, 0, 0), -1)
        cv2.putText(f, "Where are you going tonight?", (50, 248), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    assert text_area(subtitled) > 0.03
    assert text_area(clip) < 0.005
    photo = np.stack([cv2.resize(photo_canvas("coffee"), (W, H))] * 2)
    assert text_area(photo) < 0.005


def test_corner_logo_is_a_watermark_and_plain_footage_is_not(clip):
    logo = clip.copy()
    for f in logo:
        cv2.rectangle(f, (400, 12), (468, 52), (255, 255, 255), 2)
        cv2.putText(f, "TV5", (406, 42), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    assert watermark_score(logo) >= 0.5
    assert watermark_score(clip) < 0.5


def test_letterbox_bars_give_the_crop_box(clip):
    boxed = clip.copy()
    boxed[:, :34] = 0
    boxed[:, -34:] = 0
    box = detect_borders(boxed)
    assert box.y0 == pytest.approx(34 / H, abs=1 / H) and box.y1 == pytest.approx(1 - 34 / H, abs=1 / H)
    assert box.x0 == 0 and box.x1 == 1
    assert detect_borders(clip).border_fraction == 0


def test_motion_speed_tracks_the_pan_speed():
    times = np.arange(10) / 8.0
    slow = motion_speed(render_camera_motion("pan left", 10, H, W, speed=0.005, seed=1), times)
    fast = motion_speed(render_camera_motion("pan left", 10, H, W, speed=0.02, seed=1), times)
    still = motion_speed(render_camera_motion("static shot", 10, H, W, seed=1), times)
    # 0.02 of the short side (270 px) per 1/8 s = 43 px/s over a 551 px diagonal = 0.078 diagonals/s.
    assert fast == pytest.approx(0.078, rel=0.25)
    assert still < 0.005 < slow < fast


def test_dominant_colors_name_a_flat_red_frame():
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:] = (210, 25, 30)
    frame[:, :15] = (30, 60, 210)
    import json

    colors = json.loads(dominant_colors(frame, k=2))
    assert colors[0]["name"] == "red" and colors[0]["fraction"] == pytest.approx(0.75, abs=0.02)
    assert colors[1]["name"] == "blue"


def test_reencoded_duplicates_are_found_and_distinct_clips_are_not(clip):
    other = render_camera_motion("tilt up", 12, H, W, speed=0.01, seed=9)
    small = np.stack([cv2.resize(cv2.resize(f, (240, 136)), (W, H)) for f in clip])
    # JPEG at low quality stands in for a low-bitrate re-encode.
    jpeg = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], 1) for f in clip])
    emb = np.stack([embed_clip(x) for x in (clip, small, jpeg, other)])
    dup = find_duplicates(emb, np.array([0.5, 0.9, 0.1, 0.5]), threshold=0.97)
    assert dup.tolist() == [1, -1, 1, -1]  # the best-quality copy (index 1) is kept


def test_kmeans_separates_two_blobs():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (20, 8)) + np.eye(8)[0]
    b = rng.normal(0, 0.05, (15, 8)) + np.eye(8)[1]
    labels, centers = kmeans(np.concatenate([a, b]), 2)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[20]
    assert centers.shape == (2, 8)
