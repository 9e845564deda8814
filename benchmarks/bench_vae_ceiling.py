"""What a toy VAE lets through to the DiT: the judge on renders vs on their VAE round trips, and how far
each prompt word moves the latents.

    .venv/bin/python benchmarks/bench_vae_ceiling.py [--vae DIR] [-n 48] [--no-write]

1. Ceiling: `n` held-out scenes (the cases `kinema eval adherence` asks for) are rendered, encoded,
   decoded and judged. A DiT that drew perfect latents would score the round-trip row, so no model on
   this VAE can beat it.
2. Signal: for lone-object training scenes, the mean squared change of the (scaled) latents when one
   attribute is swapped for its counterfactual (`kinema.toyworld.sensitivity.counterfactual`), per
   latent element. The flow-matching loss pays at most this for ignoring the word, so a small value means
   a word the loss barely rewards learning. Object motion is left out: its counterfactual swaps the words,
   not the drawn path.

Appends a dated section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results  # noqa: E402

from kinema.models.checkpoints import load_vae  # noqa: E402
from kinema.pipeline_folder import default_checkpoint  # noqa: E402
from kinema.toyworld.adherence import eval_cases  # noqa: E402
from kinema.toyworld.judge import ATTRIBUTES, accuracy, judge  # noqa: E402
from kinema.toyworld.render import render_batch  # noqa: E402
from kinema.toyworld.scene import WorldConfig, sample_scenes  # noqa: E402
from kinema.toyworld.sensitivity import counterfactual  # noqa: E402
from kinema.pixels import from_model_range, to_model_range  # noqa: E402
from kinema.train.vae import psnr  # noqa: E402

BATCH = 16


@torch.no_grad()
def latents(vae: torch.nn.Module, videos: np.ndarray) -> torch.Tensor:
    """(N, T, H, W, 3) uint8 -> (N, C, t, h, w) posterior means (the mode) times the VAE's scaling factor."""
    means = [vae.encode(to_model_range(videos[i : i + BATCH])).mean for i in range(0, len(videos), BATCH)]
    return torch.cat(means) * vae.cfg.scaling_factor


@torch.no_grad()
def round_trip(vae: torch.nn.Module, videos: np.ndarray) -> np.ndarray:
    """(N, T, H, W, 3) uint8 -> the same videos encoded (posterior mode) and decoded."""
    z = latents(vae, videos) / vae.cfg.scaling_factor
    return np.concatenate([from_model_range(vae.decode(z[i : i + BATCH])) for i in range(0, len(z), BATCH)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", default=None, help="VAE folder (default: the shipped toy model's)")
    parser.add_argument("-n", type=int, default=48, help="held-out scenes judged, and training scenes for the signal")
    parser.add_argument("--no-write", action="store_true", help="print the table without appending to RESULTS.md")
    args = parser.parse_args()
    vae = load_vae(args.vae or default_checkpoint() / "vae").eval()

    cases = eval_cases(args.n)
    scenes = [c.truth for c in cases]
    renders = render_batch(scenes)
    decoded = round_trip(vae, renders)
    db = psnr(to_model_range(decoded), to_model_range(renders))
    table = ["| videos | " + " | ".join(ATTRIBUTES) + " | PSNR |", "|---" * (len(ATTRIBUTES) + 2) + "|"]
    for name, videos, quality in (("renders", renders, "—"), ("VAE round trips", decoded, f"{db:.1f} dB")):
        acc = accuracy([judge(v, s) for v, s in zip(videos, scenes)])
        table.append(f"| {name} | " + " | ".join(f"{100 * acc[a]:.1f}%" for a in ATTRIBUTES) + f" | {quality} |")

    lone = sample_scenes(args.n, WorldConfig(multi_object_fraction=0.0), seed=11)
    base = latents(vae, render_batch(lone))
    signal = {
        a: (latents(vae, render_batch([counterfactual(s, a) for s in lone])) - base).pow(2).mean().item()
        for a in ("color", "shape", "camera")
    }
    table += [
        "",
        "| word swapped | mean squared latent change | vs color |",
        "|---|---|---|",
        *(f"| {a} | {v:.4f} | {v / signal['color']:.2f}x |" for a, v in signal.items()),
    ]
    vae_flag = f" --vae {args.vae}" if args.vae else ""
    command = f".venv/bin/python benchmarks/bench_vae_ceiling.py{vae_flag} -n {args.n}"
    if args.no_write:
        print("\n".join(table))
    else:
        append_results("What the toy VAE lets through: judge ceiling and word signal", command, table)


if __name__ == "__main__":
    main()
