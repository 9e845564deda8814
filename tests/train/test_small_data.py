"""What the trainers say about data they cannot use as it is: an uncaptioned data set, fewer clips than
`eval_clips`, and latents far from unit scale after the VAE's scaling factor. One sentence each, and no
change for well-formed data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from kinema.cli import main
from kinema.config import from_dict
from kinema.data.manifest import read_manifest, write_manifest
from kinema.models.checkpoints import load_vae, save_model
from kinema.pipeline_folder import default_checkpoint
from kinema.toyworld.dataset import render_dataset
from kinema.toyworld.scene import WorldConfig
from kinema.train.data import load_captions
from kinema.train.dit import train_dit
from kinema.train.dit_recipe import DiTRecipe
from kinema.train.latent_cache import (
    LatentBucket,
    LatentCache,
    PromptCache,
    latent_scale_warning,
    latent_std,
)
from kinema.train.vae import VAERecipe, VAEStage, VAETrainer

SHIPPED_VAE = default_checkpoint() / "vae"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 captioned toy clips of 9 frames, 32×32."""
    folder = tmp_path_factory.mktemp("toy")
    render_dataset(folder, 3, WorldConfig(height=32, width=32, frames=9), seed=0)
    return folder


def dit_recipe(run: Path, dataset: Path, vae: Path = SHIPPED_VAE) -> dict:
    return {
        "run_dir": str(run), "dataset": str(dataset), "vae": str(vae), "log_every": 1, "prompt_variants": 1,
        "warmup": 1, "ema_decay": None, "sampling": {"steps": 1, "frames": 9, "height": 32, "width": 32, "shift": 3.0},
        "stages": [{"name": "s", "steps": 1, "buckets": [{"height": 32, "width": 32, "frames": 1, "batch_size": 1}]}],
    }


# ------------------------------------------------------------------------------------- uncaptioned rows


def test_an_uncaptioned_dataset_is_one_sentence_naming_it_and_the_rows(dataset, tmp_path, capsys):
    uncaptioned = tmp_path / "uncaptioned"
    df = read_manifest(dataset)
    df["path"] = [str(dataset / p) for p in df["path"]]
    df.loc[0, "caption"] = ""
    df.loc[2, "caption"] = None  # a missing value reads as no caption too
    write_manifest(uncaptioned, df)
    config = tmp_path / "dit.yaml"
    config.write_text(yaml.safe_dump(dit_recipe(tmp_path / "run", uncaptioned)))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (f"kinema train: error: dataset {uncaptioned} has 2 rows without a caption (of 3): "
                   f"run `kinema caption {uncaptioned}` first\n")
    assert not (tmp_path / "run" / "latents.safetensors").exists()
    assert len(load_captions(dataset)) == 3  # a captioned set reads as before


# --------------------------------------------------------------------------- fewer clips than eval_clips


def vae_recipe(dataset: Path, **fields: object) -> VAERecipe:
    stage = VAEStage(steps=1, frames=5, height=16, width=16, batch_size=1)
    return VAERecipe(run_dir="unused", dataset=str(dataset), stages=[stage], **fields)


def test_a_small_dataset_evaluates_on_all_clips_but_one_and_says_so(dataset, capsys):
    trainer = VAETrainer(vae_recipe(dataset))  # eval_clips 16 by default, 3 clips
    said = [line for line in capsys.readouterr().err.splitlines() if "evaluating" in line]  # (not the progress bar)
    assert said == [f"evaluating on 2 of the 3 clips of {dataset}; eval_clips is 16"]
    assert trainer.eval_clips == 2 and len(trainer.clips) == 1 and trainer.held_out.shape[0] == 2

    trainer = VAETrainer(vae_recipe(dataset, eval_clips=2))  # enough clips: as asked, and nothing said
    assert "evaluating" not in capsys.readouterr().err
    assert trainer.eval_clips == 2 and len(trainer.clips) == 1


def test_a_dataset_of_one_clip_is_one_error_for_the_vae_trainer(dataset):
    with pytest.raises(ValueError, match=rf"^dataset {dataset} has 1 usable video clip: the VAE trainer needs at "
                                         r"least 2 \(one to evaluate on, one to train on\), or eval_clips: 0$"):
        VAETrainer(vae_recipe(dataset, max_clips=1))
    assert len(VAETrainer(vae_recipe(dataset, max_clips=1, eval_clips=0)).clips) == 1
    with pytest.raises(ValueError, match="eval_clips must be 0 or more, got -1"):
        vae_recipe(dataset, eval_clips=-1)


# ------------------------------------------------------------------------------------------ latent scale


def cache_of(means: list[torch.Tensor]) -> LatentCache:
    buckets = {str(i): LatentBucket(m, torch.ones_like(m)) for i, m in enumerate(means)}
    z = torch.zeros(1, 1, 2, 3)
    prompts = PromptCache(z, z[..., 0].bool(), z[:, :, 0], z[0, 0], z[0, 0, :, 0].bool(), z[0, 0, 0])
    return LatentCache(buckets, prompts)


def test_the_latent_std_is_measured_over_every_bucket_after_the_scaling_factor():
    g = torch.Generator().manual_seed(0)
    means = [torch.randn(4, 2, 1, 4, 4, generator=g) * 3, torch.randn(2, 2, 3, 4, 4, generator=g) * 3]
    cache = cache_of(means)
    expected = torch.cat([m.flatten() for m in means]).std().item() * 0.5
    assert latent_std(cache, 0.5) == pytest.approx(expected)
    assert latent_scale_warning(cache, 1 / 3, "vae") is None  # about 1
    warning = latent_scale_warning(cache, 100.0, "runs/vae")
    assert warning == (f"warning: latents have std {latent_std(cache, 100.0):.3g} after the VAE's scaling factor 100 "
                       "(runs/vae): was the VAE trained? (a DiT expects about 1)")
    assert latent_scale_warning(cache, 0.1, "vae") is not None  # too small is as bad as too large


def test_a_dit_run_warns_about_latents_far_from_unit_scale_and_not_about_the_shipped_vae(dataset, tmp_path, capsys):
    vae = load_vae(SHIPPED_VAE)
    vae.cfg = dataclasses.replace(vae.cfg, scaling_factor=vae.cfg.scaling_factor * 100)  # as an untrained VAE's
    save_model(vae, "vae", tmp_path / "vae")
    recipe = from_dict(DiTRecipe, dit_recipe(tmp_path / "run", dataset, tmp_path / "vae"))
    train_dit(recipe, max_steps=1)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "latents have std" in line]
    assert len(warnings) == 1 and "was the VAE trained? (a DiT expects about 1)" in warnings[0]
    # The shipped VAE's latents are about unit scale: no warning.
    cache = LatentCache.load(tmp_path / "run" / "latents.safetensors")
    shipped = load_vae(SHIPPED_VAE).cfg.scaling_factor
    assert 0.5 < latent_std(cache, shipped) < 2
    assert latent_scale_warning(cache, shipped, str(SHIPPED_VAE)) is None
