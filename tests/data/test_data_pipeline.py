"""End to end: `kinema curate` on synthetic videos and bad files; kill -9 and resume; Ray equals local."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from kinema.cli import main
from kinema.data import io as data_io
from kinema.data.analyze import process_video
from kinema.data.cli import failure_lines
from kinema.data.config import load_config
from kinema.data.manifest import COLUMNS, media_path, read_manifest
from kinema.data.pipeline import PARTS_DIR, collect_inputs, curate
from kinema.data.synthetic import write_video

from conftest import FPS, scene  # noqa: E402  (tests/data/conftest.py)


def _config():
    cfg = load_config()
    return dataclasses.replace(
        cfg,
        shots=dataclasses.replace(cfg.shots, min_length=1.0),
        sampling=dataclasses.replace(cfg.sampling, start_window=0.25),
        clusters=2,
    )


def _config_file(folder: Path) -> Path:
    """The shipped config with the test settings of `_config`, as a file for the CLI."""
    text = Path(load_config.__globals__["default_config_path"]()).read_text().replace("min_length: 2.0", "min_length: 1.0")
    path = folder / "cfg.yaml"
    path.write_text(text.replace("clusters: 16", "clusters: 2").replace("start_window: 1.0", "start_window: 0.25"))
    return path


def _write_audio(path: Path) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        t = np.arange(16000, dtype=np.float32) / 16000
        frame = av.AudioFrame.from_ndarray(np.sin(2 * np.pi * 440 * t)[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, cut_video) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    shutil.copy(cut_video[0], folder / "a_cuts.mp4")
    write_video(str(folder / "b_static.mp4"), scene("handheld shot", 2.4, 11), FPS)
    write_video(str(folder / "c_mpeg4.avi"), scene("tilt up", 2.4, 12), FPS, codec="mpeg4")
    (folder / "d_empty.mp4").write_bytes(b"")
    (folder / "e_notes.mp4").write_text("this is not a video\n" * 50)
    good = (folder / "a_cuts.mp4").read_bytes()
    (folder / "f_truncated.mp4").write_bytes(good[: len(good) // 3])
    _write_audio(folder / "g_audio.mp4")
    write_video(str(folder / "h_oneframe.mp4"), scene("static shot", 0.04, 13), FPS)
    return folder


@pytest.fixture(scope="module")
def dataset(videos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dataset")
    curate([videos], out, _config(), workers=1, progress=False)
    return out


def test_manifest_has_contract_columns_and_measurements(dataset):
    df = read_manifest(dataset)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    clips = df[(df["kind"] == "video") & (df["reject_reason"] != "too_short") & (df["error"] == "")]
    assert len(clips) >= 4  # three shots of the cut video, plus the single-shot videos
    for col in ("camera_motion", "camera_confidence", "motion_speed", "text_area", "watermark_score",
                "aesthetic_score", "sharpness", "dominant_colors", "crop_x0", "cluster", "bucket"):
        assert col in df.columns, col
        assert clips[col].notna().all(), col
    assert df["id"].is_unique
    kept = df[(df["kind"] == "video") & (df["stage"] >= 0)]
    assert len(kept) >= 1 and (kept["bucket"] != "").all()
    images = df[df["kind"] == "image"]
    assert len(images) >= 1 and all((dataset / p).is_file() for p in images["path"])


def test_clip_measurements_match_the_ground_truth(dataset):
    df = read_manifest(dataset)
    cuts = df[(df["kind"] == "video") & (df["source"].str.endswith("a_cuts.mp4"))].sort_values("shot_index")
    assert cuts["camera_motion"].tolist() == ["pan left", "static shot", "zoom in"]
    clips = df[(df["kind"] == "video") & (df["error"] == "") & (df["reject_reason"] != "too_short")]
    by_name = {Path(s).name: set(g["camera_motion"]) for s, g in clips.groupby("source")}
    assert by_name["b_static.mp4"] == {"handheld shot"} and by_name["c_mpeg4.avi"] == {"tilt up"}
    assert (cuts["text_area"] < 0.005).all() and (cuts["border_fraction"] == 0).all()


def test_subtitles_inside_letterbox_bars_are_measured_on_the_content(tmp_path):
    import cv2

    frames = scene("pan left", 2.4, 22).copy()
    frames[:, :34] = 0
    frames[:, -34:] = 0
    for f in frames:
        cv2.putText(f, "Where are you going tonight?", (50, 222), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    rows = process_video(write_video(str(tmp_path / "subtitled.mp4"), frames, FPS), _config())
    assert len(rows) == 1 and rows[0]["error"] == ""
    assert rows[0]["crop_y0"] == pytest.approx(34 / 270, abs=2 / 270)
    assert rows[0]["crop_y1"] == pytest.approx(1 - 34 / 270, abs=2 / 270)
    assert rows[0]["text_area"] > 0.03


def test_progress_bar_reports_videos_clips_throughput_and_eta(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i, motion in enumerate(("pan left", "tilt up")):
        write_video(str(raw / f"{i}.mp4"), scene(motion, 2.4, 50 + i), FPS)
    config = dataclasses.replace(_config(), ocr=dataclasses.replace(_config().ocr, enabled=False))
    curate([raw], tmp_path / "out", config, workers=1, write_images=False, progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    # e.g. "100%|##########| 2/2 [00:01<00:00,  1.71video/s, clips=2, speed=4.1x realtime]"
    match = re.search(r"2/2 \[\d+:\d\d<\d+:\d\d, .*video/s, clips=(\d+), speed=([\d.]+)x realtime\]", bar)
    assert match, bar
    assert int(match.group(1)) == 2 and float(match.group(2)) > 0


def test_each_bad_file_becomes_one_row_with_a_clear_error(dataset):
    df = read_manifest(dataset)
    by_name = {Path(s).name: g for s, g in df.groupby("source")}
    expected = {
        "d_empty.mp4": "empty file",
        "e_notes.mp4": "not a readable video",
        "f_truncated.mp4": "not a readable video",
        "g_audio.mp4": "no video stream",
        "h_oneframe.mp4": "only 1 frame",
    }
    for name, phrase in expected.items():
        rows = by_name[name]
        assert len(rows) == 1, name
        assert phrase in rows["error"].iloc[0], (name, rows["error"].iloc[0])
        assert rows["stage"].iloc[0] == -1
    assert (by_name["c_mpeg4.avi"]["error"] == "").all()  # an unusual codec is fine


def test_huge_frames_are_refused_before_decoding(videos, monkeypatch):
    monkeypatch.setattr(data_io, "MAX_PIXELS", 100 * 100)
    rows = process_video(str(videos / "b_static.mp4"), _config())
    assert len(rows) == 1 and "pixel limit" in rows[0]["error"]


def test_variable_frame_rate_clips_use_timestamps(tmp_path):
    frames = scene("static shot", 3.0, 21)
    pts = np.cumsum(np.where(np.arange(len(frames)) % 2, 20, 60)).tolist()  # 20/60 ms alternating
    pts = [0] + pts[:-1]
    path = write_video(str(tmp_path / "vfr.mkv"), frames, 25.0, pts=pts)
    rows = process_video(path, _config())
    assert rows[0]["error"] == ""
    assert rows[-1]["end"] == pytest.approx(pts[-1] / 1000 + 0.02, abs=0.07)  # 3 s of frames last ~3 s


def test_cli_exit_codes_and_stats(dataset, videos, tmp_path, capsys):
    assert main(["dataset", "stats", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "rejected video clips by reason" in out and "stage 0" in out and "buckets of the" in out
    assert main(["dataset", "report", str(dataset), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "data:image/jpeg;base64," in page and "<svg" in page
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(videos / "d_empty.mp4", bad / "x.mp4")
    assert main(["curate", str(bad), "--out", str(tmp_path / "o"), "--workers", "1"]) == 1
    assert main(["curate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_relative_inputs_give_paths_that_resolve_from_any_directory(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    (work / "raw").mkdir(parents=True)
    (work / "ds" / "media").mkdir(parents=True)
    write_video(str(work / "raw" / "outside.mp4"), scene("pan left", 2.4, 31), FPS)
    write_video(str(work / "ds" / "media" / "inside.mp4"), scene("tilt up", 2.4, 32), FPS)
    cfg = _config_file(tmp_path)
    monkeypatch.chdir(work)
    # Two workers: the process-pool path (workers get absolute paths, whatever directory they run in).
    assert main(["curate", "raw/outside.mp4", "ds/media", "--out", "ds", "--workers", "2", "--config", str(cfg)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # what `kinema caption ds` or a trainer started elsewhere sees
    df = read_manifest(work / "ds")
    videos = df[df["kind"] == "video"]
    # Outside the dataset folder: absolute; inside it: relative to the folder.
    assert set(videos["path"]) == {str(work / "raw" / "outside.mp4"), "media/inside.mp4"}
    assert set(videos["source"]) == {str(work / "raw" / "outside.mp4"), str(work / "ds" / "media" / "inside.mp4")}
    assert (df["kind"] == "image").any()
    assert all(media_path(work / "ds", p).is_file() for p in df["path"])
    # The printed summary counts the manifest's rows the way `kinema dataset stats` does.
    kept = int((videos["stage"] >= 0).sum())
    assert capsys.readouterr().out.splitlines()[:2] == [
        "videos: 2 (0 unreadable, 0 done by an earlier run)",
        f"video clips: {len(videos)} (kept {kept}, rejected {len(videos) - kept}), images: {int((df['kind'] == 'image').sum())}",
    ]


def test_relative_entries_of_a_list_file_are_read_against_its_folder(tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.mp4").write_bytes(b"x")
    (tmp_path / "lists" / "paths.txt").write_text("# clips\na.mp4\n\n")
    monkeypatch.chdir(tmp_path)
    assert collect_inputs(["lists/paths.txt", "lists/a.mp4"]) == [str(tmp_path / "lists" / "a.mp4")]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("id").reset_index(drop=True)


@pytest.mark.timeout(240)
def test_kill_and_resume_gives_the_uninterrupted_manifest(videos, dataset, tmp_path):
    out = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "kinema", "curate", str(videos), "--out", str(out), "--workers", "1"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    cmd += ["--config", str(_config_file(tmp_path))]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / PARTS_DIR).is_dir() or not any((out / PARTS_DIR).glob("*.parquet")):
        time.sleep(0.05)
        assert time.time() < deadline
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((out / PARTS_DIR).glob("*.parquet")))
    assert 1 <= done < 8, "the kill should land mid-run"
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    pd.testing.assert_frame_equal(_sorted(read_manifest(out)), _sorted(read_manifest(dataset)))


@pytest.mark.timeout(300)
def test_ray_run_equals_local_run(videos, dataset, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    out = tmp_path / "ray"
    try:
        curate([videos], out, _config(), workers=1, ray_address="local", progress=False)
        assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(_sorted(read_manifest(out)), _sorted(read_manifest(dataset)))


def test_curate_says_why_each_failed_video_failed_and_caps_the_list(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("this is not a video\n" * 50)
    assert main(["curate", str(bad), "--out", str(tmp_path / "o"), "--workers", "1", "--no-progress"]) == 1
    errors = dict(zip(*read_manifest(tmp_path / "o")[["source", "error"]].to_numpy().T, strict=True))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "videos: 2 (2 unreadable, 0 done by an earlier run)"
    # One line per failed file: the manifest's error column, which names the file.
    assert sorted(lines[1:3]) == sorted(f"  {error}" for error in errors.values())
    assert errors[str(bad / "empty.mp4")] == f"{bad / 'empty.mp4'} is an empty file (0 bytes)"
    assert errors[str(bad / "notes.mp4")].startswith(f"{bad / 'notes.mp4'} is not a readable video")

    many = tmp_path / "many"
    many.mkdir()
    for i in range(23):
        (many / f"{i:02d}.mp4").write_bytes(b"")
    assert main(["curate", str(many), "--out", str(tmp_path / "m"), "--workers", "1", "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.endswith("is an empty file (0 bytes)")]) == 20
    assert "  ... and 3 more; see the manifest's error column" in lines


def test_a_failure_whose_error_does_not_name_the_file_gets_its_name_in_front():
    assert failure_lines((("a.mp4", "a.mp4 is an empty file (0 bytes)"), ("b.mp4", "processing failed"))) == [
        "  a.mp4 is an empty file (0 bytes)", "  b.mp4: processing failed"]
    assert failure_lines((("a.mp4", "x"),) * 3, limit=1) == ["  a.mp4: x", "  ... and 2 more; see the manifest's error column"]
