"""Distributed DiT training on 2 CPU processes (torchrun, gloo on 127.0.0.1): FSDP2, DDP with Ulysses
sequence parallelism and FSDP2 with it give one process's losses and weights (fp32), and checkpoints
move between 2 ranks and 1 process in both directions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from kinema.cli import main as kinema_main
from kinema.models import VAEConfig, build_vae
from kinema.models.checkpoints import save_model
from kinema.models.sizes import build_dit
from kinema.train.checkpoint import EMA, latest_checkpoint
from kinema.train.dit import train_dit
from kinema.train.dit_recipe import DiTRecipe
from kinema.train.latent_cache import LatentBucket, LatentCache, PromptCache, prompt_cache_key
from kinema.train.distributed import DCP_DIR, Parallel, ParallelConfig, init_parallel, load_training_checkpoint
from kinema.config import ConfigError, from_dict, load_yaml

STEPS = 2  # one image step, then one step accumulating a video and an image micro-batch


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny VAE (for its scale and the export) and a cached latent + prompt set: no dataset or text encoder."""
    root = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    # 4× spatial like the toy VAE, so the toy DiT's 2×2 patches tile its latents.
    vae = build_vae(VAEConfig(latent_channels=16, block_out_channels=(8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, spatial_compression_ratio=4, scaling_factor=0.5))
    save_model(vae, "vae", root / "vae")
    g = torch.Generator().manual_seed(0)
    n, k, length = 6, 2, 6

    def bucket(*latent: int) -> LatentBucket:
        return LatentBucket(torch.randn(n, 16, *latent, generator=g), torch.rand(n, 16, *latent, generator=g) * 0.1)

    real = torch.randint(2, length + 1, (n, k), generator=g)  # text lengths: the DiT sees padding masks
    prompts = PromptCache(
        states=torch.randn(n, k, length, 384, generator=g), mask=torch.arange(length) < real[..., None],
        pooled=torch.randn(n, k, 384, generator=g), empty_states=torch.zeros(length, 384),
        empty_mask=torch.arange(length) < 2, empty_pooled=torch.zeros(384),
    )
    # 16×48 images: 2×6 video tokens; 32×32×9: 3×4×4. Odd token counts, which sequence parallelism
    # pads, are covered by tests/models/test_parallel.py (and here by the text lengths).
    LatentCache({"32x32x9": bucket(3, 8, 8), "16x48x1": bucket(1, 4, 12)}, prompts).save(root / "latents.safetensors")
    return root


def write_recipe(root: Path, name: str, parallel: dict, **extra: object) -> Path:
    run = root / name
    run.mkdir()
    shutil.copy(root / "latents.safetensors", run / "latents.safetensors")
    recipe = {
        "run_dir": str(run), "dataset": "unused: the latent cache exists", "vae": str(root / "vae"), "model": "toy",
        "checkpoint_every": 1, "log_every": 1, "warmup": 1, "lr": 1e-3, "ema_decay": 0.9, "parallel": parallel,
        "sampling": {"steps": 2, "frames": 9, "height": 32, "width": 32},
        "stages": [
            {"name": "images", "steps": 1, "buckets": [{"height": 16, "width": 48, "frames": 1, "batch_size": 2}]},
            {"name": "joint", "steps": STEPS - 1, "grad_accum": 2, "buckets": [
                {"height": 32, "width": 32, "frames": 9, "batch_size": 2},
                {"height": 16, "width": 48, "frames": 1, "batch_size": 2}]},
        ],
        **extra,
    }
    cache = LatentCache.load(run / "latents.safetensors")  # made for this recipe's prompts: train reads it as is
    cache.prompt_key = prompt_cache_key(from_dict(DiTRecipe, recipe))
    cache.save(run / "latents.safetensors")
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def launch(*argv: str, torchrun: bool = False) -> None:
    """`kinema ARGV` in a fresh process (through torchrun when asked), all traffic on the loopback interface."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore"}
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else [sys.executable]
    done = subprocess.run([*prefix, "-m", "kinema", *argv], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def losses(run: Path, key: str = "loss") -> list[float]:
    return [json.loads(line)[key] for line in (run / "metrics.jsonl").read_text().splitlines()]


def final_state(run: Path) -> dict[str, torch.Tensor]:
    """Model and EMA weights of a run's last checkpoint, loaded into one process whatever wrote it."""
    torch.manual_seed(0)
    model = build_dit("toy")
    optimizer = torch.optim.AdamW(model.parameters())
    ema = EMA(model, 0.9)
    found = latest_checkpoint(run)
    assert found is not None and found.name == f"step-{STEPS:08d}"
    assert load_training_checkpoint(Parallel(), found, model, optimizer, ema)["step"] == STEPS
    return {**model.state_dict(), **{f"ema.{k}": v for k, v in ema.shadow.items()}}


def assert_same_run(run: Path, reference: Path) -> None:
    assert losses(run) == pytest.approx(losses(reference), rel=1e-5, abs=1e-7)
    # The gradient before clipping: Adam would hide a wrongly scaled one from the losses and weights.
    assert losses(run, "grad_norm") == pytest.approx(losses(reference, "grad_norm"), rel=1e-5)
    got, want = final_state(run), final_state(reference)
    assert got.keys() == want.keys()
    for k, v in want.items():
        # AdamW divides by √v, so float rounding in near-zero gradients (summed in another order over 2
        # ranks) moves a weight by a small fraction of one lr step (1e-3): allow 2% of one step.
        torch.testing.assert_close(got[k], v, atol=2e-5, rtol=1e-5, msg=k)
    assert want["final_layer.linear.weight"].abs().max() > 1e-3  # trained away from its zero init
    exported, expected = (load_file(r / "pipeline" / "dit" / "model.safetensors") for r in (run, reference))
    for k, v in expected.items():  # the EMA weights, gathered from FSDP's shards where there are any
        torch.testing.assert_close(exported[k], v, atol=2e-5, rtol=1e-5, msg=k)


@pytest.fixture(scope="module")
def reference(workspace) -> Path:
    """The one-process run every distributed run must reproduce."""
    recipe = load_yaml(DiTRecipe, write_recipe(workspace, "one", {}))
    assert train_dit(recipe) is not None
    assert len(losses(workspace / "one")) == STEPS
    return workspace / "one"


def test_fsdp_two_ranks_equal_one_process(workspace, reference):
    config = write_recipe(workspace, "fsdp", {"data": "fsdp"})  # 2 data-parallel ranks, 1 sample each
    launch("train", "--nproc", "2", str(config))  # kinema starts torchrun itself
    assert_same_run(workspace / "fsdp", reference)
    step = latest_checkpoint(workspace / "fsdp")
    assert len(list((step / DCP_DIR).glob("*.distcp"))) == 2  # each rank wrote its own shard
    assert json.loads((step / "state.json").read_text())["world_size"] == 2


def test_sequence_parallel_checkpoint_resumes_on_one_process(workspace, reference):
    # DDP over the 2 ranks of one sequence-parallel group, with activation checkpointing.
    config = write_recipe(workspace, "sp", {"data": "ddp", "sequence": 2}, gradient_checkpointing=True)
    launch("train", str(config), "--max-steps", "1", torchrun=True)
    assert len(losses(workspace / "sp")) == 1 and not (workspace / "sp" / "pipeline").exists()
    recipe = load_yaml(DiTRecipe, config)
    assert train_dit(recipe, resume=True) is not None  # 2 ranks -> 1 process
    assert_same_run(workspace / "sp", reference)


def test_one_process_checkpoint_resumes_on_fsdp_with_sequence_parallel(workspace, reference):
    config = write_recipe(workspace, "fsp", {"data": "fsdp", "sequence": 2})
    assert train_dit(load_yaml(DiTRecipe, config), max_steps=1) is None
    assert (workspace / "fsp" / "checkpoints" / "step-00000001" / "model.safetensors").is_file()
    launch("train", "--nproc", "2", str(config), "--resume")  # 1 process -> 2 ranks
    assert_same_run(workspace / "fsp", reference)


def test_parallel_section_is_validated(tmp_path, monkeypatch):
    base = {"run_dir": "r", "dataset": "d", "vae": "v",
            "stages": [{"name": "s", "steps": 1, "buckets": [{"height": 16, "width": 16, "frames": 1, "batch_size": 2}]}]}
    assert from_dict(DiTRecipe, base).parallel == ParallelConfig()
    recipe = from_dict(DiTRecipe, {**base, "parallel": {"data": "fsdp", "sequence": 4, "mixed_precision": "bf16"}})
    assert recipe.parallel == ParallelConfig("fsdp", 4, "bf16")
    with pytest.raises(ConfigError, match="bf16 needs data: fsdp"):
        from_dict(DiTRecipe, {**base, "parallel": {"mixed_precision": "bf16"}})
    with pytest.raises(ConfigError, match="parallel.data must be one of"):
        from_dict(DiTRecipe, {**base, "parallel": {"data": "zero3"}})
    with pytest.raises(ConfigError, match="sequence must be at least 1"):
        from_dict(DiTRecipe, {**base, "parallel": {"sequence": 0}})
    # A lone process trains alone whatever the section says; under torchrun the degree must divide the world.
    assert not init_parallel(ParallelConfig(sequence=2)).distributed
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="sequence 2 must divide the number of processes \\(3\\)"):
        init_parallel(ParallelConfig(sequence=2))


def test_nproc_must_be_positive(tmp_path, capsys):
    assert kinema_main(["train", "--nproc", "0", str(tmp_path / "dit.yaml")]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
