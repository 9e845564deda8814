"""A DiT recipe's `init`: a run starts from a checkpoint's weights (an exported kinema pipeline, an official
.pt) and architecture; a `model:` that disagrees, a missing path and a pipeline on other latents are
told; `--resume` wins over init.

The runs read a latent + prompt cache written here (no data set, no text encoder), encoded for the shipped
toy VAE: 16 channels, 4× spatial, so 16×16 images are 4×4 latents, 2×2 tokens of 2×2 patches.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import kinema.train.dit
from kinema.config import from_dict
from kinema.models import VAEConfig, build_vae
from kinema.models.checkpoints import OFFICIAL_DIT_FILE, CheckpointError, load_dit, load_vae, save_model
from kinema.models.dit import DiT, DiTConfig
from kinema.models.sizes import dit_config
from kinema.pipeline_folder import default_checkpoint
from kinema.train.dit import DiTTrainer, dit_architecture, load_init, train_dit
from kinema.train.dit_recipe import DiTRecipe
from kinema.train.latent_cache import LatentBucket, LatentCache, PromptCache, prompt_cache_key

SHIPPED = default_checkpoint()
# Official layout needs 128-wide heads for its architecture to be read off the shapes (the RoPE split).
TINY_OFFICIAL = DiTConfig(
    in_channels=16, out_channels=16, heads=1, head_dim=128, depth_double=1, depth_single=1, depth_refiner=1,
    mlp_ratio=2.0, patch=(1, 2, 2), text_dim=384, pooled_dim=384, guidance_embed=True,  # the released model's
)


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("init")
    g = torch.Generator().manual_seed(0)
    n, k, length = 6, 2, 5
    prompts = PromptCache(
        states=torch.randn(n, k, length, 384, generator=g), mask=torch.ones(n, k, length, dtype=torch.bool),
        pooled=torch.randn(n, k, 384, generator=g), empty_states=torch.zeros(length, 384),
        empty_mask=torch.arange(length) < 2, empty_pooled=torch.zeros(384),
    )
    bucket = LatentBucket(torch.randn(n, 16, 1, 4, 4, generator=g) * 4, torch.rand(n, 16, 1, 4, 4, generator=g) * 0.1)
    LatentCache({"16x16x1": bucket}, prompts).save(root / "latents.safetensors")
    return root / "latents.safetensors"


def make_recipe(run: Path, cache_file: Path, steps: int = 2, **fields: object) -> DiTRecipe:
    """A DiT recipe on the cached 16×16 images, its run folder holding the cache made for its prompts."""
    return from_dict(DiTRecipe, recipe_fields(run, cache_file, steps, **fields))


def recipe_fields(run: Path, cache_file: Path, steps: int = 2, batch_size: int = 3, **fields: object) -> dict:
    """`make_recipe`'s recipe as a mapping (what a YAML file holds)."""
    data = {
        "run_dir": str(run), "dataset": "unused: the latent cache exists", "vae": str(SHIPPED / "vae"),
        "checkpoint_every": 1, "log_every": 1, "warmup": 1, "lr": 1e-3, "ema_decay": 0.9, "text_dropout": 0.0,
        "prompt_variants": 2, "output": str(run / "export"),
        "sampling": {"steps": 2, "frames": 1, "height": 16, "width": 16},
        "stages": [{"name": "images", "steps": steps,
                    "buckets": [{"height": 16, "width": 16, "frames": 1, "batch_size": batch_size}]}],
        **fields,
    }
    run.mkdir(exist_ok=True)
    cache = LatentCache.load(cache_file)
    cache.prompt_key = prompt_cache_key(from_dict(DiTRecipe, data))  # made for this recipe: train reads it as is
    cache.save(run / "latents.safetensors")
    return data


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def step0_loss(recipe: DiTRecipe, start: DiT | None) -> float:
    """The loss of `start` (None: fresh weights of the recipe's size) on the batch of the recipe's step 0
    (measured before the step updates `start`)."""
    cache = LatentCache.load(Path(recipe.run_dir) / "latents.safetensors")
    trainer = DiTTrainer(dataclasses.replace(recipe, init=None), cache, load_vae(recipe.vae), start=start)
    return trainer.step(0)["loss"]


def test_init_from_an_exported_pipeline_continues_from_its_weights(cache_file, tmp_path, capsys):
    recipe = make_recipe(tmp_path / "run", cache_file, init=str(SHIPPED))
    assert recipe.model is None and dit_architecture(recipe) == load_dit(SHIPPED).cfg
    assert train_dit(recipe, max_steps=1) is None
    assert "warning" not in capsys.readouterr().err  # the recipe's vae is the pipeline's own

    first = losses(tmp_path / "run")[0]
    assert first == pytest.approx(step0_loss(recipe, load_dit(SHIPPED)), rel=1e-6)
    assert abs(first - step0_loss(recipe, None)) > 1e-3  # fresh toy weights see the batch otherwise

    # The EMA starts from the loaded weights: after one step it is 0.9 · init + 0.1 · the updated model.
    step1 = tmp_path / "run" / "checkpoints" / "step-00000001"
    model, ema = load_file(step1 / "model.safetensors"), load_file(step1 / "ema.safetensors")
    init = load_dit(SHIPPED).state_dict()
    for key in ("img_in.proj.weight", "final_layer.linear.weight"):
        torch.testing.assert_close(ema[key], 0.9 * init[key] + 0.1 * model[key])


def test_a_named_model_must_be_the_architecture_of_init(cache_file, tmp_path):
    same = make_recipe(tmp_path / "a", cache_file, init=str(SHIPPED), model="toy")  # what configs/toy/dit.yaml says
    assert dit_architecture(same) == dit_config("toy")
    other = make_recipe(tmp_path / "b", cache_file, init=str(SHIPPED), model="small")
    with pytest.raises(ValueError, match=r"the recipe's model 'small' is not the architecture of init .*toy "
                                         r"\(heads 8 vs 4, head_dim 128 vs 32, .*\); leave model unset"):
        train_dit(other)
    assert not (tmp_path / "b" / "metrics.jsonl").exists()
    with pytest.raises(ValueError, match="model 'tiny' is not a DiT size"):
        dataclasses.replace(same, model="tiny")


def test_init_from_an_official_checkpoint(cache_file, tmp_path):
    torch.manual_seed(1)
    tiny = DiT(TINY_OFFICIAL)
    official = tmp_path / "official"
    official.mkdir()
    torch.save({"module": tiny.state_dict()}, official / OFFICIAL_DIT_FILE)

    recipe = make_recipe(tmp_path / "run", cache_file, init=str(official))  # the folder holding the .pt
    assert dit_architecture(recipe) == TINY_OFFICIAL  # read off its shapes
    with pytest.raises(ValueError, match="the DiT has a guidance embedding .*set the recipe's guidance:"):
        train_dit(recipe)
    recipe = dataclasses.replace(recipe, guidance=6.0)
    assert train_dit(recipe, max_steps=1) is None
    assert losses(tmp_path / "run")[0] == pytest.approx(step0_loss(recipe, tiny), rel=1e-6)

    with pytest.raises(CheckpointError, match=r"init .* does not fit the recipe's model 'toy': .*wrong shape"):
        load_init(dataclasses.replace(recipe, model="toy"), dit_architecture(dataclasses.replace(recipe, model="toy")))

    # The toy DiT's 32-wide heads hide its RoPE split from the shapes: the recipe's model names it.
    toy_pt = tmp_path / "toy.pt"
    torch.save({"module": load_dit(SHIPPED).state_dict()}, toy_pt)
    unnamed = dataclasses.replace(recipe, init=str(toy_pt))
    with pytest.raises(ValueError, match=r"RoPE split .*set model: to the checkpoint's named size"):
        dit_architecture(unnamed)
    named = dataclasses.replace(unnamed, model="toy")
    loaded = load_init(named, dit_architecture(named))
    assert loaded.cfg == dit_config("toy") and loaded.training is False
    for key, value in load_dit(SHIPPED).state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_resume_takes_precedence_over_init(cache_file, tmp_path, monkeypatch):
    straight = make_recipe(tmp_path / "a", cache_file, steps=3, init=str(SHIPPED))
    assert train_dit(straight) is not None
    reference = losses(tmp_path / "a")

    split = make_recipe(tmp_path / "b", cache_file, steps=3, init=str(SHIPPED))
    assert train_dit(split, resume=True, max_steps=1) is None  # nothing to resume yet: init seeds step 0

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("init's weights read by a resumed run")

    monkeypatch.setattr(kinema.train.dit, "load_dit", no_reading)
    assert train_dit(split, resume=True) is not None
    assert losses(tmp_path / "b") == pytest.approx(reference, rel=1e-5, abs=1e-7)


def test_a_missing_init_is_a_clear_error(cache_file, tmp_path):
    recipe = make_recipe(tmp_path / "run", cache_file, init=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"init .*nowhere does not exist: expected a DiT checkpoint"):
        train_dit(recipe)


def test_a_pipeline_trained_on_other_latents_is_warned_about_in_one_line(cache_file, tmp_path, capsys):
    torch.manual_seed(0)
    vae = build_vae(VAEConfig(latent_channels=16, block_out_channels=(8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, spatial_compression_ratio=4, scaling_factor=0.5))
    save_model(vae, "vae", tmp_path / "vae")
    recipe = make_recipe(tmp_path / "run", cache_file, init=str(SHIPPED), vae=str(tmp_path / "vae"))
    assert train_dit(recipe, max_steps=1) is None  # a warning, not an error
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1
    assert "another VAE than the recipe's vae" in warnings[0] and "scaling_factor 0.5 vs 0.2366" in warnings[0]


def test_init_under_fsdp_equals_one_process(cache_file, tmp_path):
    # The weights are loaded before FSDP2 shards the model: two ranks (1 sample each) train as one process.
    one = make_recipe(tmp_path / "one", cache_file, batch_size=2, init=str(SHIPPED))
    assert train_dit(one, max_steps=1) is None
    config = tmp_path / "fsdp.yaml"
    config.write_text(yaml.safe_dump(recipe_fields(tmp_path / "fsdp", cache_file, batch_size=2, init=str(SHIPPED),
                                                   parallel={"data": "fsdp"})))
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "kinema", "train", "--nproc", "2", str(config), "--max-steps", "1"],
                          check=False, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)


def test_init_from_a_diffusers_folder_reads_its_architecture_and_weights(cache_file, tmp_path):
    diffusers = pytest.importorskip("diffusers")
    from kinema.models.dit_convert import dit_config_to_diffusers, dit_state_to_diffusers

    torch.manual_seed(2)
    tiny = DiT(TINY_OFFICIAL)
    ref = diffusers.HunyuanVideoTransformer3DModel(**dit_config_to_diffusers(TINY_OFFICIAL))
    ref.load_state_dict(dit_state_to_diffusers(tiny.state_dict(), TINY_OFFICIAL), strict=True)
    ref.save_pretrained(tmp_path / "pipe" / "transformer")  # a diffusers pipeline folder
    recipe = make_recipe(tmp_path / "run", cache_file, init=str(tmp_path / "pipe"), guidance=6.0)
    assert dit_architecture(recipe) == TINY_OFFICIAL
    loaded = load_init(recipe, TINY_OFFICIAL)
    for key, value in tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ValueError, match="the recipe's model 'toy' is not the architecture of init"):
        dit_architecture(dataclasses.replace(recipe, model="toy"))
