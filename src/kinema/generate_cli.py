"""`kinema generate`: a prompt in, an mp4 and a contact-sheet PNG out.

The sampling flags become one `SamplingOptions` (validated when it is made); under torchrun the
processes join through `kinema.distributed` and share each video's tokens. Nothing here imports
`kinema.train`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate a video from a text prompt",
        description="Generate a video with a kinema pipeline (default: the shipped toy model). Writes OUT.mp4 "
        "(H.264) and OUT.png (a contact sheet). Unset options take the checkpoint's defaults.",
    )
    p.add_argument("prompt", help="what the video shows")
    p.add_argument("-o", "--output", default="outputs/video.mp4", help="mp4 path (default: outputs/video.mp4)")
    p.add_argument("--checkpoint", default=None, help="pipeline folder (default: the shipped toy model)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps")
    p.add_argument("--shift", type=float, default=None,
                   help="time shift of the schedule (default: the checkpoint's for this number of steps)")
    p.add_argument("--guidance", type=float, default=None, help="embedded guidance (guidance-distilled models)")
    p.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--negative-prompt", default="", help="what to steer away from (with --cfg-scale > 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    p.add_argument("--frames", type=int, default=None, help="number of frames, 4k+1")
    p.add_argument("--height", type=int, default=None, help="height in pixels")
    p.add_argument("--width", type=int, default=None, help="width in pixels")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    import time

    import torch

    from kinema.distributed import check_device, join_torchrun, torchrun_world_size
    from kinema.models.parallel import enable_sequence_parallel
    from kinema.options import SamplingOptions
    from kinema.pipeline import Pipeline

    options = SamplingOptions(  # a value out of range is a ValueError: `kinema` prints its one sentence
        steps=args.steps, shift=args.shift, cfg_scale=args.cfg_scale, guidance=args.guidance, frames=args.frames,
        height=args.height, width=args.width, seed=args.seed, negative_prompt=args.negative_prompt,
    )
    # Under torchrun every process holds a share of each video's tokens (Ulysses sequence parallelism).
    job = join_torchrun(sequence=torchrun_world_size())
    device = job.device if job.distributed else check_device(args.device)  # a ValueError: one sentence too
    dtype = torch.bfloat16 if device.type == "cuda" else None
    start = time.perf_counter()
    pipe = Pipeline.from_pretrained(args.checkpoint, device=device, dtype=dtype)
    if job.distributed:
        enable_sequence_parallel(pipe.dit, job.sp_group)
    loaded = time.perf_counter()
    video = pipe(args.prompt, options, progress=job.is_main)
    done = time.perf_counter()
    job.close()
    if not job.is_main:
        return 0  # every rank holds the same video; rank 0 writes it
    mp4, png = video.save(args.output)
    t, h, w = video.frames.shape[:3]
    print(f"wrote {mp4} ({t} frames, {w}×{h}, {video.fps:g} fps) and preview {png}")
    total = _seconds_since_process_start()
    print(f"load {loaded - start:.1f} s, generate {done - loaded:.1f} s"
          + (f", total {total:.1f} s (process start to saved video)" if total is not None else ""))
    return 0


def _seconds_since_process_start() -> float | None:
    """Wall-clock seconds since this process started (Python's start and the imports included), from
    Linux's /proc; None elsewhere."""
    try:
        # /proc/self/stat field 22 is the start time in clock ticks after boot; the name (field 2) may hold spaces.
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
