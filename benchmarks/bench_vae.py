"""VAE speed and tiled-decode memory, side by side with diffusers' AutoencoderKLHunyuanVideo on the same weights.

    .venv/bin/python benchmarks/bench_vae.py [--repeats 3] [--no-write]

Speed: encode and decode, untiled (diffusers' 16-frame splitting off, so both do the same work) for
the toy, small and reference (`hunyuan`) sizes, and tiled with the same tile settings on both.
Runs alternate between the two models; medians and min are reported, ratio = diffusers / kinema.

Memory: peak resident memory of one tiled decode, for a video and one with 4× the pixels, each in a
fresh process (ru_maxrss; tracemalloc does not see PyTorch's allocations). "Working" is the peak
above the model and input; "working − output" leaves out the decoded video itself, which any
decoder must hold. Tiles are scaled down (64 px, 16+1 frames, 25% overlap, like the reference's
256 px / 64+1 frames) so the CPU run takes minutes.

Appends a dated section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results  # noqa: E402

from kinema.models.tiling import TilingConfig  # noqa: E402
from kinema.models.vae import VAE_SIZES, CausalVAE  # noqa: E402
from kinema.models.vae_convert import vae_config_to_diffusers, vae_state_from_diffusers  # noqa: E402

BENCH_TILING = TilingConfig(tile_size=64, tile_stride=48, tile_frames=16, tile_frame_stride=12)
# (size, frames, height, width, tiled): video shapes where diffusers and kinema place the same tiles.
SPEED_CASES = [
    ("toy", 17, 64, 64, False),
    ("small", 17, 128, 128, False),
    ("hunyuan", 9, 64, 64, False),
    ("small", 33, 96, 96, True),
]
MEMORY_SIZE, MEMORY_VIDEOS = "small", [(25, 96, 96), (25, 192, 192)]


def build_pair(size: str) -> tuple[CausalVAE, torch.nn.Module]:
    """diffusers' model with random weights (every parameter perturbed) and kinema's with the same ones."""
    from diffusers import AutoencoderKLHunyuanVideo

    cfg = VAE_SIZES[size]()
    torch.manual_seed(0)
    ref = AutoencoderKLHunyuanVideo(**vae_config_to_diffusers(cfg)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ours = CausalVAE(cfg).eval()
    ours.load_state_dict(vae_state_from_diffusers(ref.state_dict()), strict=True)
    return ours, ref


def set_tiling(ours: CausalVAE, ref: torch.nn.Module, tiling: TilingConfig | None) -> None:
    ours.tiling = tiling
    if tiling is None:
        ref.disable_tiling()
        ref.use_framewise_encoding = ref.use_framewise_decoding = False
    else:
        ref.enable_tiling(
            tile_sample_min_height=tiling.tile_size, tile_sample_min_width=tiling.tile_size,
            tile_sample_min_num_frames=tiling.tile_frames, tile_sample_stride_height=tiling.tile_stride,
            tile_sample_stride_width=tiling.tile_stride, tile_sample_stride_num_frames=tiling.tile_frame_stride,
        )
        ref.use_framewise_encoding = ref.use_framewise_decoding = True


def interleaved(fns: dict[str, object], repeats: int) -> dict[str, tuple[list[float], list[float]]]:
    """(wall, CPU) seconds of each fn, alternating between them every round (after one warm-up round).

    CPU time is the steadier number on a shared machine with one thread; with more threads it also
    counts time spent spinning at barriers.
    """
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for r in range(repeats + 1):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            if r:
                times[name][0].append(time.perf_counter() - wall)
                times[name][1].append(time.process_time() - cpu)
    return times


def speed(repeats: int) -> list[str]:
    table = [
        "| size | video (T×H×W) | tiled | op | kinema wall s (median / min) | diffusers wall s (median / min) "
        "| wall ratio | kinema CPU s | diffusers CPU s | CPU ratio | max rel diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, t, h, w, tiled in SPEED_CASES:
        ours, ref = build_pair(size)
        set_tiling(ours, ref, BENCH_TILING if tiled else None)
        g = torch.Generator().manual_seed(1)
        video = torch.rand(1, 3, t, h, w, generator=g) * 2 - 1
        latents = torch.randn(1, ours.cfg.latent_channels, *ours.cfg.latent_size(t, h, w), generator=g)
        with torch.inference_mode():
            ops = {
                "encode": (lambda: ours.encode(video).mean, lambda: ref.encode(video).latent_dist.mean),
                "decode": (lambda: ours.decode(latents), lambda: ref.decode(latents).sample),
            }
            for op, (mine, theirs) in ops.items():
                diff = ((mine() - theirs()).abs().max() / theirs().abs().max()).item()
                (kw, kc), (dw, dc) = interleaved({"kinema": mine, "diffusers": theirs}, repeats).values()
                k, d = statistics.median(kw), statistics.median(dw)
                kc, dc = statistics.median(kc), statistics.median(dc)
                table.append(
                    f"| {size} | {t}×{h}×{w} | {'yes' if tiled else 'no'} | {op} | {k:.3f} / {min(kw):.3f} "
                    f"| {d:.3f} / {min(dw):.3f} | {d / k:.2f}x | {kc:.3f} | {dc:.3f} | {dc / kc:.2f}x | {diff:.1e} |"
                )
                print(table[-1], flush=True)
    return table


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(which: str, t: int, h: int, w: int) -> None:
    """In a fresh process: one tiled decode; prints JSON with baseline, peak and output bytes.

    Only the measured model is built (default initialisation: memory does not depend on the values),
    so nothing before the decode sets a higher peak.
    """
    cfg = VAE_SIZES[MEMORY_SIZE]()
    if which == "kinema":
        model = CausalVAE(cfg).eval()
        model.tiling = BENCH_TILING
    else:
        from diffusers import AutoencoderKLHunyuanVideo

        model = AutoencoderKLHunyuanVideo(**vae_config_to_diffusers(cfg)).eval()
        set_tiling(CausalVAE(VAE_SIZES["toy"]()), model, BENCH_TILING)
    latents = torch.randn(1, cfg.latent_channels, *cfg.latent_size(t, h, w))
    baseline = _rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.inference_mode():
        out = model.decode(latents) if which == "kinema" else model.decode(latents).sample
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline": baseline, "peak": peak, "peak_before": peak_before, "output": out.numel() * out.element_size()}))


def memory() -> list[str]:
    table = [
        "| decoder | video (T×H×W) | tiles | peak RSS MiB | working MiB | working − output MiB | vs 1× video |",
        "|---|---|---|---|---|---|---|",
    ]
    for which in ("kinema", "diffusers"):
        first = None
        for t, h, w in MEMORY_VIDEOS:
            cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--memory-child", which, str(t), str(h), str(w)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            assert r["peak"] > r["peak_before"], "the decode did not set the process's peak; measurement invalid"
            working = r["peak"] - r["baseline"]
            net = working - r["output"]
            first = first or (working, net)
            mib = 1 << 20
            table.append(
                f"| {which} | {t}×{h}×{w} | {BENCH_TILING.tile_size} px / {BENCH_TILING.tile_frames}+1 frames "
                f"| {r['peak'] / mib:.0f} | {working / mib:.0f} | {net / mib:.0f} "
                f"| {working / first[0]:.2f}x working, {net / first[1]:.2f}x without output |"
            )
            print(table[-1], flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--only", choices=["speed", "memory"], help="run one part (default: both)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: PyTorch's)")
    parser.add_argument("--memory-child", nargs=4, metavar=("WHICH", "T", "H", "W"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        which, t, h, w = args.memory_child
        memory_child(which, int(t), int(h), int(w))
        return
    load_before = os.getloadavg()[0]
    table = speed(args.repeats) if args.only != "memory" else []
    if args.only != "speed":
        table += ([""] if table else []) + memory()
    notes = (
        f"{torch.get_num_threads()} intra-op thread(s); load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} "
        "after (other sessions share the cores): wall times are noisy; ratios come from alternating runs. Random weights, fp32, "
        f"batch 1. Tiled rows use {BENCH_TILING} on both sides (shapes where both place the same tiles). "
        "Memory rows: tiled decode of the `small` VAE; diffusers keeps every decoded tile until the end, "
        "kinema streams tiles into the output and keeps only the strips a later tile blends with."
    )
    if not args.no_write:
        append_results("bench_vae: causal VAE vs diffusers AutoencoderKLHunyuanVideo", "python benchmarks/bench_vae.py "
                       + " ".join(sys.argv[1:]), table, notes)
    else:
        print(notes)


if __name__ == "__main__":
    main()
