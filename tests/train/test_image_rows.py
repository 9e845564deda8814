"""The DiT trains on a data set's image rows too: an image row fills only the image buckets (frames 1), a
video row every bucket its length allows, and each cached latent keeps its row's prompts. The VAE trainer
reads the video rows only."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from kinema.caption.schema import Caption, caption_to_prompt
from kinema.config import ConfigError, from_dict
from kinema.models.checkpoints import load_vae
from kinema.models.text import build_text_encoder
from kinema.pipeline_folder import default_checkpoint
from kinema.toyworld.dataset import render_dataset
from kinema.toyworld.scene import WorldConfig
from kinema.train.data import VIDEOS_AND_IMAGES, load_clips
from kinema.train.dit import DiTTrainer, train_dit
from kinema.train.dit_recipe import DiTRecipe
from kinema.train.latent_cache import (
    LatentCache,
    build_latent_cache,
    data_cache_key,
    encode_bucket,
    fit_to_bucket,
    load_rows,
)

SHIPPED_VAE = default_checkpoint() / "vae"
VIDEO_BUCKET, IMAGE_BUCKET = "32x32x9", "32x32x1"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """A folder of 3 videos and 2 images (rendered into one folder), and a second folder of 2 images."""
    root = tmp_path_factory.mktemp("mixed")
    render_dataset(root / "mixed", 3, WorldConfig(height=32, width=32, frames=9), seed=0)
    render_dataset(root / "mixed", 2, WorldConfig(height=32, width=32, frames=1), seed=1, append=True)
    render_dataset(root / "images", 2, WorldConfig(height=32, width=32, frames=1), seed=2)
    return root / "mixed", root / "images"


def recipe(run: Path, datasets: list[Path], **fields: object) -> DiTRecipe:
    return from_dict(DiTRecipe, {
        "run_dir": str(run), "datasets": [str(d) for d in datasets], "vae": str(SHIPPED_VAE), "log_every": 1,
        "prompt_variants": 2, "warmup": 1, "ema_decay": None,
        "sampling": {"steps": 2, "frames": 9, "height": 32, "width": 32, "shift": 3.0},
        "stages": [{"name": "joint", "steps": 3, "grad_accum": 2, "buckets": [
            {"height": 32, "width": 32, "frames": 9, "batch_size": 2},
            {"height": 32, "width": 32, "frames": 1, "batch_size": 3}]}],
        **fields,
    })


def test_the_vae_trainer_reads_videos_and_the_dit_videos_and_images(data):
    mixed, _ = data
    assert [len(c.video) for c in load_clips(mixed)] == [9, 9, 9]
    clips = load_clips(mixed, kinds=VIDEOS_AND_IMAGES)
    assert [c.video.shape for c in clips] == [(9, 32, 32, 3)] * 3 + [(1, 32, 32, 3)] * 2


def test_image_rows_fill_only_image_buckets_and_each_latent_keeps_its_rows_prompt(data, tmp_path):
    r = recipe(tmp_path, list(data))
    clips = load_rows(r)
    assert [len(c.video) for c in clips] == [9, 9, 9, 1, 1, 1, 1]  # the folders joined in order
    vae = load_vae(SHIPPED_VAE)
    cache = build_latent_cache(r, clips, vae)
    assert cache.buckets[VIDEO_BUCKET].rows.tolist() == [0, 1, 2]  # the videos only
    assert cache.buckets[IMAGE_BUCKET].rows.tolist() == list(range(7))  # the videos' first frames and the images
    assert len(cache.prompts.states) == 7
    # Latent i of a bucket is row rows[i]'s media fitted to the bucket ...
    bucket = r.buckets[IMAGE_BUCKET]
    image = encode_bucket(vae, fit_to_bucket(clips[5].video, bucket)[None], [5], IMAGE_BUCKET)
    torch.testing.assert_close(cache.buckets[IMAGE_BUCKET].mean[5:6], image.mean, rtol=1e-4, atol=1e-5)
    # ... and prompt row r is row r's caption (variant 0: the full prompt).
    prompt = caption_to_prompt(Caption.model_validate_json(clips[5].caption))
    alone = build_text_encoder(r.text_encoder).encode([prompt])
    torch.testing.assert_close(cache.prompts.states[5, 0], alone.states[0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(cache.prompts.states[4, 0], alone.states[0])  # another image's prompt differs


def test_a_dataset_of_videos_and_images_trains_and_draws_prompts_through_the_rows(data, tmp_path):
    r = recipe(tmp_path / "run", list(data))
    assert train_dit(r, max_steps=2) is None
    cache = LatentCache.load(tmp_path / "run" / "latents.safetensors")
    assert cache.data_key == data_cache_key(r)
    assert cache.buckets[VIDEO_BUCKET].rows.tolist() == [0, 1, 2]
    assert cache.buckets[IMAGE_BUCKET].rows.tolist() == list(range(7))

    # The trainer draws latents within a bucket and their rows' prompts: move the image bucket's rows
    # around and the prompts asked for follow.
    cache.buckets[IMAGE_BUCKET].rows = torch.tensor([6, 5, 4, 3, 2, 1, 0])
    trainer = DiTTrainer(r, cache, load_vae(SHIPPED_VAE))
    asked = []
    text = cache.prompts.text
    cache.prompts.text = lambda rows, variant, empty=None: asked.append(rows) or text(rows, variant, empty)
    sampled = []
    sample = cache.buckets[IMAGE_BUCKET].sample
    cache.buckets[IMAGE_BUCKET].sample = lambda idx, g, scale: sampled.append(idx) or sample(idx, g, scale)
    loss = trainer.micro_batch_loss(r.buckets[IMAGE_BUCKET], torch.Generator().manual_seed(3))
    assert torch.isfinite(loss)
    assert torch.equal(asked[0], 6 - sampled[0])


def test_a_bucket_no_row_fits_is_one_error_naming_it(data, tmp_path):
    _, images = data
    r = recipe(tmp_path, [images])  # images only: nothing fills the 9-frame bucket
    with pytest.raises(ValueError, match=r"bucket 32x32x9: no row of the data fits it \(it needs clips of at least "
                                         r"9 frames; the longest has 1\)"):
        build_latent_cache(r, load_rows(r), load_vae(SHIPPED_VAE))


def test_a_cache_without_rows_reads_as_every_row_in_order(data, tmp_path):
    mixed, _ = data
    r = recipe(tmp_path, [mixed], max_clips=3)  # the three videos
    build_latent_cache(r, load_rows(r), load_vae(SHIPPED_VAE)).save(tmp_path / "new.safetensors")
    tensors = {k: v for k, v in load_file(tmp_path / "new.safetensors").items() if not k.endswith("/rows")}
    save_file(tensors, tmp_path / "old.safetensors")  # as caches were written before image rows
    old, new = LatentCache.load(tmp_path / "old.safetensors"), LatentCache.load(tmp_path / "new.safetensors")
    for name, bucket in new.buckets.items():
        assert torch.equal(old.buckets[name].rows, torch.arange(3)) and torch.equal(bucket.rows, torch.arange(3))
        assert torch.equal(old.buckets[name].mean, bucket.mean)


def key_before_image_rows(dataset: Path) -> str:
    """`data_cache_key` as it was computed before image rows were read (max_clips None, the shipped VAE)."""
    digest = hashlib.sha256(b"None")
    for file in [dataset / "manifest.parquet", *sorted(f for f in SHIPPED_VAE.rglob("*") if f.is_file())]:
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def test_the_data_key_of_a_videos_only_set_is_unchanged_and_one_with_images_differs(data, tmp_path):
    mixed, _ = data
    videos_only = tmp_path / "videos"
    render_dataset(videos_only, 2, WorldConfig(height=32, width=32, frames=9), seed=0)
    one = recipe(tmp_path, [videos_only])
    # Caches made before from videos only stay valid; `dataset:` and a one-folder `datasets:` are alike.
    assert data_cache_key(one) == key_before_image_rows(videos_only)
    assert data_cache_key(dataclasses.replace(one, dataset=str(videos_only), datasets=[])) == data_cache_key(one)
    # One made before from a folder with image rows holds its videos only: it is built again.
    assert data_cache_key(recipe(tmp_path, [mixed])) != key_before_image_rows(mixed)


def test_a_recipe_names_its_data_once():
    base = {"run_dir": "unused", "vae": "unused",
            "stages": [{"name": "images", "steps": 1,
                        "buckets": [{"height": 16, "width": 16, "frames": 1, "batch_size": 1}]}]}
    assert from_dict(DiTRecipe, {**base, "dataset": "a"}).data == ["a"]
    assert from_dict(DiTRecipe, {**base, "datasets": ["a", "b"]}).data == ["a", "b"]
    for wrong in ({}, {"dataset": "a", "datasets": ["b"]}, {"datasets": []}):
        with pytest.raises(ConfigError, match="exactly one of dataset: .* and datasets:"):
            from_dict(DiTRecipe, {**base, **wrong})
