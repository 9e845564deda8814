"""Frame sampling: the start frame plus evenly spaced ones, decoded from the clip's own time range."""

from __future__ import annotations

import base64
from io import BytesIO

import numpy as np
import pytest
from caption_media import encode_video, gray_ramp
from PIL import Image

from kinema.caption.frames import jpeg_data_url, load_image, sample_times, sample_video_frames


def frame_index(frame: np.ndarray) -> int:
    return int(round(frame.mean() / 10))


@pytest.fixture(scope="module")
def ramp(tmp_path_factory):
    path = tmp_path_factory.mktemp("ramp") / "ramp.mp4"
    encode_video(path, gray_ramp(24), fps=8)  # 3 s, frame i at i/8 s
    return path


def test_sample_times():
    assert sample_times(1.0, 3.0, 4) == [1.0, 1.5, 2.0, 2.5]
    with pytest.raises(ValueError):
        sample_times(0, 1, 0)


def test_whole_file(ramp):
    frames = sample_video_frames(ramp, count=4)
    assert [frame_index(f) for f in frames] == [0, 6, 12, 18]
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8


def test_clip_range_after_a_seek(ramp):
    assert [frame_index(f) for f in sample_video_frames(ramp, start=1.0, end=2.0, count=4)] == [8, 10, 12, 14]


def test_short_clip_repeats_no_frame(ramp):
    assert [frame_index(f) for f in sample_video_frames(ramp, start=1.0, end=1.25, count=4)] == [8, 9]


def test_downscale_keeps_aspect(ramp):
    assert sample_video_frames(ramp, count=1, max_side=32)[0].shape == (24, 32, 3)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        sample_video_frames(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.mp4"):
        sample_video_frames(junk)
    with pytest.raises(ValueError, match="junk.mp4"):
        load_image(junk)


def test_image_and_data_url(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (1024, 256), (10, 200, 30)).save(path)
    image = load_image(path, max_side=512)
    assert image.shape == (128, 512, 3)
    url = jpeg_data_url(image)
    assert url.startswith("data:image/jpeg;base64,")
    decoded = np.asarray(Image.open(BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert decoded.shape == image.shape and abs(decoded.astype(int) - image).mean() < 4
