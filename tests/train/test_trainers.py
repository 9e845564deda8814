"""The VAE and DiT trainers on tiny recipes: finite losses, checkpoints, exact resumption, an exported
pipeline, the latent cache, and recipes checked where they can be."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kinema.caption.schema import PromptDropout
from kinema.config import ConfigError, from_dict, load_yaml
from kinema.models.checkpoints import load_vae
from kinema.models.sizes import dit_config
from kinema.models.vae import VAEConfig
from kinema.pipeline_folder import default_checkpoint
from kinema.toyworld.dataset import render_dataset
from kinema.toyworld.scene import WorldConfig
from kinema.train.distill import DistillRecipe
from kinema.train.dit import dit_architecture, train_dit
from kinema.train.dit_recipe import Bucket, DiTRecipe, check_bucket
from kinema.train.latent_cache import LatentCache, data_cache_key, prompt_cache_key
from kinema.train.vae import VAERecipe, VAEStage, train_vae


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    render_dataset(folder, 10, WorldConfig(height=32, width=32, frames=9), seed=0)
    return folder


@pytest.fixture(scope="module")
def vae_dir(dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vae")
    recipe = VAERecipe(
        run_dir=str(run), dataset=str(dataset), eval_clips=2, checkpoint_every=1, log_every=1,
        stages=[VAEStage(steps=2, frames=5, height=16, width=16, batch_size=2)],
    )
    out = train_vae(recipe)
    assert all(l == l and l < 10 for l in losses(run))  # finite
    assert len(losses(run)) == 2 and (run / "checkpoints" / "step-00000002" / "optimizer.pt").is_file()
    return out


def test_vae_export_loads_with_measured_scale(vae_dir):
    vae = load_vae(vae_dir)
    assert vae.cfg.scaling_factor > 0 and vae.cfg.scaling_factor != 1.0


def test_decoder_fine_tune_keeps_the_latent_space(dataset, vae_dir, tmp_path):
    recipe = VAERecipe(
        run_dir=str(tmp_path / "run"), dataset=str(dataset), init=str(vae_dir), freeze_encoder=True,
        reconstruction_loss="mse", eval_clips=2, log_every=1, output=str(tmp_path / "out"),
        stages=[VAEStage(steps=2, frames=5, height=16, width=16, batch_size=2)],
    )
    before, after = load_vae(vae_dir), load_vae(train_vae(recipe))
    assert after.cfg == before.cfg  # same size, same scaling factor
    old, new = before.state_dict(), after.state_dict()
    frozen = [k for k in old if k.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(old[k], new[k]) for k in frozen)
    assert not torch.equal(old["post_quant_conv.weight"], new["post_quant_conv.weight"])
    assert "mse" in json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    with pytest.raises(ValueError, match="freeze_encoder needs init"):
        dataclasses.replace(recipe, init=None)
    with pytest.raises(ValueError, match="reconstruction_loss must be one of"):
        dataclasses.replace(recipe, reconstruction_loss="l2")


def dit_recipe(run: Path, dataset: Path, vae: Path, steps: int) -> DiTRecipe:
    return from_dict(DiTRecipe, {
        "run_dir": str(run), "dataset": str(dataset), "vae": str(vae), "checkpoint_every": 2, "log_every": 1,
        "prompt_variants": 2, "warmup": 1,
        "sampling": {"steps": 2, "frames": 9, "height": 32, "width": 32, "shift": 3.0},
        "stages": [
            {"name": "images", "steps": 2, "buckets": [{"height": 16, "width": 32, "frames": 1, "batch_size": 3}]},
            {"name": "joint", "steps": steps - 2, "grad_accum": 2, "buckets": [
                {"height": 32, "width": 32, "frames": 9, "batch_size": 2},
                {"height": 32, "width": 32, "frames": 1, "batch_size": 4, "weight": 0.5}]},
        ],
    })


def test_dit_resume_continues_with_the_same_losses(dataset, vae_dir, tmp_path):
    straight = dit_recipe(tmp_path / "a", dataset, vae_dir, steps=5)
    out = train_dit(straight)
    assert (out / "pipeline.json").is_file() and (out / "dit" / "model.safetensors").is_file()
    reference = losses(tmp_path / "a")
    assert len(reference) == 5 and all(l == l for l in reference)

    split = dit_recipe(tmp_path / "b", dataset, vae_dir, steps=5)
    (tmp_path / "b").mkdir()
    shutil.copyfile(tmp_path / "a" / "latents.safetensors", tmp_path / "b" / "latents.safetensors")  # reuse the cache
    assert train_dit(split, max_steps=3) is None  # stopped early: no export yet
    resumed = train_dit(split, resume=True)
    assert resumed is not None
    assert losses(tmp_path / "b") == pytest.approx(reference, rel=1e-5, abs=1e-7)


def test_the_latent_cache_is_rebuilt_as_far_as_the_recipe_or_the_data_changed(dataset, vae_dir, tmp_path):
    full = dit_recipe(tmp_path / "a", dataset, vae_dir, steps=3)
    assert train_dit(full, max_steps=1) is None
    before = LatentCache.load(tmp_path / "a" / "latents.safetensors")
    assert before.prompt_key == prompt_cache_key(full) and before.data_key == data_cache_key(full)

    def rerun(recipe: DiTRecipe) -> LatentCache:
        Path(recipe.run_dir).mkdir()
        shutil.copyfile(tmp_path / "a" / "latents.safetensors", Path(recipe.run_dir) / "latents.safetensors")
        assert train_dit(recipe, max_steps=1) is None
        return LatentCache.load(Path(recipe.run_dir) / "latents.safetensors")

    # Every optional caption field dropped: the variants after the first shrink to description + camera,
    # and only the text is encoded again.
    terse = rerun(dataclasses.replace(full, run_dir=str(tmp_path / "b"), prompt_dropout=PromptDropout(
        dense=0.0, background=1.0, style=1.0, shot_type=1.0, lighting=1.0, atmosphere=1.0, camera_motion=0.0)))
    assert terse.prompt_key != before.prompt_key and terse.data_key == before.data_key
    for name, bucket in before.buckets.items():
        assert torch.equal(terse.buckets[name].mean, bucket.mean)
    assert torch.equal(terse.prompts.mask[:, 0], before.prompts.mask[:, 0])  # the full prompt is unchanged
    assert (terse.prompts.mask[:, 1].sum(-1) < before.prompts.mask[:, 0].sum(-1)).all()

    # The data set rendered again (other scenes): the latents are encoded again.
    other = tmp_path / "other"
    render_dataset(other, 10, WorldConfig(height=32, width=32, frames=9), seed=1)
    moved = dataclasses.replace(full, run_dir=str(tmp_path / "c"), dataset=str(other))
    rebuilt = rerun(moved)
    assert rebuilt.data_key == data_cache_key(moved) != before.data_key
    assert not torch.equal(rebuilt.buckets["32x32x9"].mean, before.buckets["32x32x9"].mean)


def test_every_shipped_recipe_loads_and_its_buckets_fit_its_models():
    root = Path(__file__).parents[2]
    recipes = sorted(root.joinpath("configs").rglob("*.yaml"))
    kinds = {"vae": VAERecipe, "dit": DiTRecipe, "distill": DistillRecipe}
    # The VAE each recipe family trains on: the shipped toy VAE, the reference's (8× space, 4× time).
    vaes = {"toy": load_vae(default_checkpoint() / "vae").cfg, "hunyuan": VAEConfig()}
    checked = 0
    for path in recipes:
        kind = path.stem.split("-")[0]
        if kind in kinds:
            recipe = load_yaml(kinds[kind], path)
            checked += 1
            if isinstance(recipe, DiTRecipe):
                recipe.check_buckets(vaes[path.parent.name], dit_architecture(recipe))
            elif isinstance(recipe, DistillRecipe):
                check_bucket(recipe.bucket, vaes[path.parent.name], dit_config("toy"))
    assert checked >= 4


def test_a_bucket_the_vae_and_dit_cannot_take_stops_the_run_before_any_encoding(dataset, vae_dir, tmp_path):
    # The toy VAE compresses 4× in space and time, the toy DiT has 2×2 patches: sizes in units of 8.
    recipe = dit_recipe(tmp_path / "r", dataset, vae_dir, steps=3)
    joint = recipe.stages[1]
    odd_size = dataclasses.replace(joint, buckets=[*joint.buckets, Bucket(height=36, width=32, frames=1, batch_size=1)])
    with pytest.raises(ValueError, match=r"bucket 36x32x1 in stage 'joint': height must be a multiple of 8 and "
                                         r"width of 8 \(the VAE's 4× spatial compression × the DiT's 2×2 patches\)"):
        train_dit(dataclasses.replace(recipe, stages=[recipe.stages[0], odd_size]))
    odd_frames = dataclasses.replace(joint, buckets=[Bucket(height=32, width=32, frames=8, batch_size=1)])
    with pytest.raises(ValueError, match=r"bucket 32x32x8 in stage 'joint': frames must be 4k\+1"):
        train_dit(dataclasses.replace(recipe, stages=[odd_frames]))
    assert not (tmp_path / "r" / "latents.safetensors").exists()


def test_bad_recipes_name_the_problem(tmp_path):
    bad = tmp_path / "dit.yaml"
    bad.write_text(yaml.safe_dump({"run_dir": "r", "dataset": "d", "vae": "v", "stages": [
        {"name": "s", "steps": 1, "buckets": [{"height": 0, "width": 32, "frames": 1, "batch_size": 1}]}]}))
    with pytest.raises(ConfigError, match="bucket 0x32x1 needs height, width, frames and batch_size ≥ 1"):
        load_yaml(DiTRecipe, bad)
    bad.write_text(yaml.safe_dump({"run_dir": "r", "dataset": "d", "vae": "v", "stages": [], "learning_rate": 1}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_yaml(DiTRecipe, bad)
    with pytest.raises(FileNotFoundError):
        load_yaml(DiTRecipe, tmp_path / "missing.yaml")


def test_the_vae_is_evaluated_on_every_held_out_clip_once():
    from kinema.pixels import to_model_range
    from kinema.train.data import Clip
    from kinema.train.vae import held_out_video

    rng = np.random.default_rng(0)
    clips = [Clip(str(i), rng.integers(0, 256, (11 + 4 * i, 20, 24, 3), dtype=np.uint8), "{}") for i in range(3)]
    recipe = VAERecipe(run_dir="unused", dataset="unused", stages=[VAEStage(steps=1, frames=17, height=16, width=16, batch_size=1)])
    video = held_out_video(recipe, clips)  # 9 frames: the most the shortest clip (11) allows as 4k+1
    assert video.shape == (3, 3, 9, 16, 16)
    for clip, window in zip(clips, video):
        torch.testing.assert_close(window, to_model_range(clip.video[:9, 2:18, 4:20])[0], rtol=0, atol=0)
