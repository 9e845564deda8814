"""Toy world side by side: batched vs per-clip rendering, the judge's camera tracking at clip size vs
upscaled, 4:4:4 vs 4:2:0 training files, and MiniLM text encoding with and without context past L.

    .venv/bin/python benchmarks/bench_toyworld.py [--clips 512] [--judge 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, median_time  # noqa: E402

from kinema.caption.schema import caption_to_prompt  # noqa: E402
from kinema.data.camera import CameraConfig  # noqa: E402
from kinema.toyworld.captions import scene_caption  # noqa: E402
from kinema.media import read_video, write_mp4  # noqa: E402
from kinema.toyworld.judge import JudgeConfig, accuracy, judge  # noqa: E402
from kinema.toyworld.render import render, render_batch  # noqa: E402
from kinema.toyworld.scene import WorldConfig, sample_scenes  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--judge", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = ["| what | variant | median | unit | ratio |", "|---|---|---|---|---|"]

    # 1. Rendering 64x64x17 clips: one vectorised batch vs one clip at a time.
    scenes = sample_scenes(args.clips, WorldConfig(), seed=0, split="all")
    batch = median_time(lambda: render_batch(scenes), args.repeats, 1)
    single = median_time(lambda: [render(s) for s in scenes], args.repeats, 1)
    table += [
        f"| render {args.clips} clips 64x64x17 | render_batch | {args.clips / batch:.0f} | clips/s | {single / batch:.2f}x |",
        f"| | render() per clip | {args.clips / single:.0f} | clips/s | 1.00x |",
    ]

    # 2. Judge on ground-truth renders: camera tracking at the clip's size vs upscaled to 128 px.
    jscenes = scenes[: args.judge]
    videos = render_batch(jscenes)
    for name, cfg in (("min_side 64 (judge default)", JudgeConfig()), ("min_side 128 (classifier default)", JudgeConfig(camera=CameraConfig()))):
        start = time.perf_counter()
        verdicts = [judge(v, s, cfg) for s, v in zip(jscenes, videos)]
        per_clip = (time.perf_counter() - start) / len(jscenes)
        acc = accuracy(verdicts)
        scores = " ".join(f"{k} {100 * v:.0f}%" for k, v in acc.items())
        table.append(f"| judge {len(jscenes)} renders | {name}: {scores} | {1000 * per_clip:.0f} | ms/clip | |")

    # 3. Training files: H.264 crf 12 at 4:4:4 vs 4:2:0 (PSNR against the render, file size).
    with tempfile.TemporaryDirectory() as tmp:
        for pix in ("yuv444p", "yuv420p"):
            values, sizes = [], []
            start = time.perf_counter()
            for i, v in enumerate(videos[:50]):
                path = Path(tmp) / f"{pix}{i}.mp4"
                write_mp4(path, v, 8.0, pix_fmt=pix)
                values.append(psnr(read_video(path), v))
                sizes.append(path.stat().st_size)
            ms = 1000 * (time.perf_counter() - start) / 50
            table.append(
                f"| H.264 crf 12, 50 clips | {pix}: PSNR min {min(values):.1f} / median {np.median(values):.1f} dB, "
                f"{np.mean(sizes) / 1024:.1f} KiB | {ms:.0f} | ms/clip (encode+decode) | |"
            )

    # 4. MiniLM: 64 full toy prompts, states at L=32 reading 128 tokens of context vs truncated to 32.
    from kinema.models.text import MiniLMConfig, MiniLMEncoder

    prompts = [caption_to_prompt(scene_caption(s)) for s in scenes[:64]]
    times = {}
    for context in (128, 32):
        encoder = MiniLMEncoder(MiniLMConfig(max_length=32, context_length=context))
        times[context] = median_time(lambda: encoder.encode(prompts), args.repeats, 1)
    for context in (128, 32):
        table.append(
            f"| MiniLM encode 64 full prompts (~45 tokens) | context {context} | {1000 * times[context]:.0f} | ms/batch | "
            f"{times[context] / times[32]:.2f}x |"
        )

    append_results(
        "Toy world: rendering, judging, training files, text encoding",
        "python benchmarks/bench_toyworld.py " + " ".join(sys.argv[1:]),
        table,
        "Other sessions shared the 2 cores during the run; ratios come from the same run.",
    )


if __name__ == "__main__":
    main()
