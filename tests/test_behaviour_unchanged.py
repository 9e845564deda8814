"""What the code does must not drift when it is reorganised: the shipped model's videos for fixed seeds,
and the losses of the three trainers on tiny recipes, against values recorded before a refactor.

The fixtures in tests/fixtures/ were written by this file (`python tests/test_behaviour_unchanged.py`):
the losses at commit d73cd0a, the videos again when the shipped VAE's decoder was fine-tuned further
(configs/toy/vae-decoder-long.yaml; the latents, so the losses, unchanged). Record them again only for a
change that is meant to alter behaviour, and say so in the commit message.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from kinema.config import from_dict
from kinema.options import SamplingOptions
from kinema.pipeline import Pipeline
from kinema.pipeline_folder import default_checkpoint
from kinema.toyworld.dataset import render_dataset
from kinema.toyworld.scene import WorldConfig
from kinema.train.dit import train_dit
from kinema.train.dit_recipe import DiTRecipe
from kinema.train.distill import DistillRecipe, distill
from kinema.train.vae import VAERecipe, VAEStage, train_vae

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED_VAE = default_checkpoint() / "vae"
VIDEOS = {  # name: (prompt, seed, steps or None for the checkpoint's default)
    "default": ("a red circle moves to the right", 0, None),
    "eight_steps": ("a blue square moves up. camera: pan left", 3, 8),
}


@functools.cache
def shipped_videos() -> dict[str, np.ndarray]:
    pipe = Pipeline.from_pretrained()
    return {name: pipe(prompt, SamplingOptions(steps=steps, seed=seed)).frames for name, (prompt, seed, steps) in VIDEOS.items()}


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def trainer_losses(root: Path) -> dict[str, list[float]]:
    """Losses of a tiny VAE run (with the discriminator), a DiT run on the shipped VAE's latents, and both
    distillations of that DiT. (Not on the tiny VAE's latents: Adam turns the float rounding of near-zero
    gradients, which depends on memory alignment, into visibly different weights within three steps.)"""
    torch.set_num_threads(1)
    data = root / "data"
    render_dataset(data, 8, WorldConfig(height=32, width=32, frames=9), seed=0)
    train_vae(VAERecipe(
        run_dir=str(root / "vae"), dataset=str(data), eval_clips=2, log_every=1, adversarial_weight=0.1,
        adversarial_start=1, stages=[VAEStage(steps=3, frames=5, height=16, width=16, batch_size=2)],
    ))
    teacher = train_dit(from_dict(DiTRecipe, {
        "run_dir": str(root / "dit"), "dataset": str(data), "vae": str(SHIPPED_VAE), "log_every": 1, "prompt_variants": 2,
        "warmup": 1, "ema_decay": 0.9,
        "sampling": {"steps": 2, "frames": 9, "height": 32, "width": 32, "shift": 3.0, "cfg_scale": 2.0},
        "stages": [
            {"name": "images", "steps": 2, "buckets": [{"height": 16, "width": 32, "frames": 1, "batch_size": 3}]},
            {"name": "joint", "steps": 2, "grad_accum": 2, "buckets": [
                {"height": 32, "width": 32, "frames": 9, "batch_size": 2},
                {"height": 32, "width": 32, "frames": 1, "batch_size": 4, "weight": 0.5}]},
        ],
    }))
    base = {
        "teacher": str(teacher), "cache": str(root / "dit" / "latents.safetensors"),
        "bucket": {"height": 32, "width": 32, "frames": 9, "batch_size": 2}, "steps": 3, "lr": 1e-3, "warmup": 1,
        "log_every": 1,
    }
    distill(from_dict(DistillRecipe, {
        **base, "run_dir": str(root / "guidance"), "output": str(root / "guidance" / "out"),
        "guidance": {"low": 1.0, "high": 6.0, "shift": 3.0},
        "sampling": {"steps": 2, "shift": 3.0, "guidance": 3.0, "frames": 9, "height": 32, "width": 32},
    }))
    distill(from_dict(DistillRecipe, {
        **base, "run_dir": str(root / "steps"), "output": str(root / "steps" / "out"),
        "trajectory": {"steps": 2, "shift": 3.0, "substeps": 2, "trajectories": 3, "cfg_scale": 2.0, "chunk": 2},
        "sampling": {"steps": 2, "shift": 3.0, "frames": 9, "height": 32, "width": 32},
    }))
    return {name: losses(root / name) for name in ("vae", "dit", "guidance", "steps")}


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_the_shipped_model_draws_the_recorded_videos(name):
    recorded = np.load(FIXTURES / "shipped_videos.npz")[name]
    video = shipped_videos()[name]
    assert video.shape == recorded.shape
    diff = np.abs(video.astype(np.int16) - recorded.astype(np.int16))
    # Bit-identical on the machine that recorded them; other CPUs may round a few pixels differently.
    assert (diff <= 2).mean() > 0.99 and diff.max() <= 24, (diff.mean(), diff.max())


def test_the_trainers_give_the_recorded_losses(tmp_path):
    recorded = json.loads((FIXTURES / "trainer_losses.json").read_text())
    measured = trainer_losses(tmp_path)
    assert set(measured) == set(recorded)
    for name, values in recorded.items():
        # The first loss comes before any update and must match to rounding. After an update, Adam's
        # g/sqrt(g²) turns rounding differences of near-zero gradients (which depend on memory
        # alignment) into per-mille loss differences; a changed recipe moves them by far more.
        assert measured[name][0] == pytest.approx(values[0], rel=1e-5, abs=1e-9), name
        assert measured[name] == pytest.approx(values, rel=1e-2, abs=1e-5), name


if __name__ == "__main__":  # record the fixtures
    FIXTURES.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURES / "shipped_videos.npz", **shipped_videos())
    with tempfile.TemporaryDirectory() as tmp:
        (FIXTURES / "trainer_losses.json").write_text(json.dumps(trainer_losses(Path(tmp)), indent=1) + "\n")
    print(f"wrote {FIXTURES}", file=sys.stderr)
