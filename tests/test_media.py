"""kinema.media: mp4 round trips, clip ranges from the first frame, rotation, contact sheets."""

import os
import stat

import numpy as np
import pytest

from kinema.media import contact_sheet, read_video, write_mp4, write_png


def ramp(frames: int = 9, h: int = 32, w: int = 48) -> np.ndarray:
    video = np.zeros((frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        video[t, :, :, 0] = 20 * t  # frame index in the red channel
        video[t, :8, :8, 1] = 255  # marker in the top-left corner
    return video


def test_mp4_round_trip_and_ranges(tmp_path):
    video = ramp()
    path = write_mp4(tmp_path / "a.mp4", video, fps=8.0, crf=0, pix_fmt="yuv444p")
    back = read_video(path)
    assert back.shape == video.shape and np.abs(back.astype(int) - video).max() <= 3
    clip = read_video(path, start=0.25, end=0.75)  # frames 2, 3, 4, 5 at 8 fps
    assert clip.shape[0] == 4 and abs(int(clip[0, 20, 20, 0]) - 40) <= 3
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # no temporary file left


def test_odd_sizes_are_padded_for_browsers(tmp_path):
    path = write_mp4(tmp_path / "odd.mp4", np.zeros((5, 15, 17, 3), np.uint8), fps=8.0)
    assert read_video(path).shape == (5, 16, 18, 3)


def test_rotation_metadata_is_applied(tmp_path):
    from kinema.data.synthetic import write_video

    video = ramp(5)
    write_video(str(tmp_path / "r90.mp4"), video, fps=8.0, rotation=90)
    upright = read_video(tmp_path / "r90.mp4")
    assert upright.shape == (5, 48, 32, 3)  # portrait once rotated
    # The marker (stored top-left) lands where a 90° counter-clockwise turn puts it: bottom-left.
    assert upright[0, -4, 2, 1] > 200 and upright[0, 2, 2, 1] < 50


def test_bad_files_get_one_sentence(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot decode video"):
        read_video(tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "y.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)


def test_contact_sheet_layout(tmp_path):
    sheet = contact_sheet(ramp(12), columns=4, scale=1)
    assert sheet.shape == (3 * 32, 4 * 48, 3)
    assert int(sheet[40, 60, 0]) == 20 * 5  # row 1, column 1 shows frame 5
    assert write_png(tmp_path / "s.png", sheet).is_file()


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_the_umask_mode_not_0600(tmp_path, umask_022):
    # A temporary file renamed into place keeps the temporary file's mode: mkstemp's 0600 used to leak.
    from kinema.data.manifest import empty_manifest, write_manifest

    mp4 = write_mp4(tmp_path / "a.mp4", ramp(3), fps=8.0)
    png = write_png(tmp_path / "a.png", ramp(1)[0])
    manifest = write_manifest(tmp_path / "ds", empty_manifest())
    assert [stat.S_IMODE(p.stat().st_mode) for p in (mp4, png, manifest)] == [0o644] * 3
